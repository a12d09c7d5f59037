"""Total deadlines for captures, enforced by cutting the socket: the pprof transports use it.

Socket timeouts bound each read, not the whole body: a server that sends one byte a second never
trips them. So each transport registers its connection with the process-wide `WATCHDOG` once the
response has started; when the capture's deadline passes, the watchdog shuts the socket down,
which makes any blocked read return at once, and the transport reports a timeout. One thread
serves every capture and ends itself after a short idle spell. A `Group` (one per transport) lets
a stopping process cut all of a transport's captures at once, before their deadlines.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import math
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

IDLE_EXIT_SECONDS = 5.0


class Group:
    """Watches that are cut together by `Watchdog.cut_group`: a transport's, when its process stops.
    Once cut, a group stays cut: a watch added later fires at once."""

    __slots__ = ("cut",)

    def __init__(self) -> None:
        self.cut = False


class Watch:
    """One registered deadline. `fired` tells whether the watchdog cut the connection."""

    __slots__ = ("_cut", "_owner", "done", "fired", "group")

    def __init__(self, owner: Watchdog, cut: Callable[[], None], group: Group | None = None):
        self.group = group
        self._owner = owner
        self._cut: Callable[[], None] | None = cut
        self.fired = False
        self.done = False

    def cancel(self) -> bool:
        """Stop watching (call it before the socket is closed or reused); True if it had fired."""
        with self._owner.lock:
            if not self.done:
                self.done = True
                self._cut = None
                self._owner.forget()
            return self.fired

    def _fire(self) -> None:
        cut, self._cut = self._cut, None
        self.fired = True
        self.done = True
        if cut is not None:
            with contextlib.suppress(OSError):
                cut()


class Watchdog:
    """Fires each `Watch` whose deadline (a `time.monotonic()` value) has passed.

    Its thread sleeps until the earliest deadline and is woken only for an earlier one; a watch
    that ends in time is left in the heap and dropped when the thread next looks, so a capture
    costs no thread wake-up.
    """

    def __init__(self, idle_exit: float = IDLE_EXIT_SECONDS) -> None:
        self.idle_exit = idle_exit
        self.lock = threading.Lock()
        self._changed = threading.Condition(self.lock)
        self._heap: list[tuple[float, int, Watch]] = []
        self._order = itertools.count()
        self._live = 0
        self._thread: threading.Thread | None = None
        self._sleeping_until = math.inf

    def watch(self, deadline: float, cut: Callable[[], None], group: Group | None = None) -> Watch:
        """Call `cut` at `deadline` (or when `group` is cut) unless the returned watch is cancelled
        first."""
        entry = Watch(self, cut, group)
        with self.lock:
            if group is not None and group.cut:
                # Fired here, not by the thread: an exchange quicker than the thread's wake-up (a
                # heap profile) would otherwise be done before it was cut.
                entry._fire()
                return entry
            heapq.heappush(self._heap, (deadline, next(self._order), entry))
            self._live += 1
            if self._thread is None:
                self._sleeping_until = math.inf
                self._thread = threading.Thread(target=self._run, name="kprof-capture-deadlines", daemon=True)
                self._thread.start()
            elif deadline < self._sleeping_until:
                self._changed.notify()
        return entry

    def cut_group(self, group: Group) -> int:
        """Cut every live watch of `group` now, and any added to it later; how many were cut."""
        with self.lock:
            group.cut = True
            due = [entry for _, _, entry in self._heap if entry.group is group and not entry.done]
            for entry in due:
                self._live -= 1
                entry._fire()
        return len(due)

    @property
    def running(self) -> bool:
        """Whether its thread is alive (it ends itself after `idle_exit` seconds without watches)."""
        with self.lock:
            return self._thread is not None

    def forget(self) -> None:
        """Called with the lock held when a watch ends without firing."""
        self._live -= 1
        if self._live == 0:
            self._heap.clear()

    def _run(self) -> None:
        idle_since: float | None = None
        with self.lock:
            while True:
                while self._heap and self._heap[0][2].done:
                    heapq.heappop(self._heap)
                now = time.monotonic()
                if not self._heap:
                    # Stay a little for the next capture rather than starting a thread per capture.
                    idle_since = now if idle_since is None else idle_since
                    if now - idle_since >= self.idle_exit:
                        self._thread = None
                        return
                    self._sleep_until(idle_since + self.idle_exit, now)
                    continue
                idle_since = None
                deadline = self._heap[0][0]
                if now < deadline:
                    self._sleep_until(deadline, now)
                    continue
                _, _, due = heapq.heappop(self._heap)
                self._live -= 1
                # Under the lock, so a concurrent cancel() either comes first or sees `fired`.
                due._fire()

    def _sleep_until(self, moment: float, now: float) -> None:
        self._sleeping_until = moment
        self._changed.wait(moment - now)
        self._sleeping_until = math.inf


WATCHDOG = Watchdog()


def shutdown_socket(sock: Any) -> None:
    """Cut a connection so that blocked reads on it return; the owner still closes it.

    An SSL socket is shut down at the TCP level: its own shutdown() would tear down the TLS state
    under a reader in another thread.
    """
    if isinstance(sock, socket.socket):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    elif sock is not None:
        sock.shutdown(socket.SHUT_RDWR)

"""Ctrl-C and SIGTERM in two stages, for the commands that capture (`kprof capture`, `kprof local`,
`kprof sidecar`; `kprof run` has its own grace period): the first signal drains (no new profile
starts, those in flight end) and says in one line what is being finished and the longest it may
take; the second aborts (in-flight captures cut through their transports, nothing more stored)."""

from __future__ import annotations

import math
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from kprof_lib.execution.executor import Executor

SIGNALS = (signal.SIGINT, signal.SIGTERM)
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for a command ended by Ctrl-C
# How long a process that aborted waits for its capture threads before it returns anyway: cut
# sockets end them in milliseconds, and a store write in progress is given a moment to finish.
ABORT_WAIT_SECONDS = 0.8


def later(say: Callable[..., None], *args: object, **kwargs: Any) -> None:
    """Run `say(*args)` (a print, a log line) on a thread of its own, not in the signal handler: a
    second signal may come while the first handler is writing, and a handler that writes to the
    same stream again would deadlock on its lock (or be refused by the buffered writer). Not a
    daemon thread, so the line is out before the process exits."""
    threading.Thread(target=say, args=args, kwargs=kwargs, name="kprof-signal-line").start()


def finishing(executor: Executor, *, again: str = "Ctrl-C again to abort") -> str:
    """`finishing cpu of local/app-1 (about 16 s, at most 31 s); Ctrl-C again to abort`: a CPU
    profile answers when its seconds are up, anything may take until its deadline."""
    flying = executor.in_flight()
    if not flying:
        return f"nothing in flight; {again}" if again else "nothing in flight"
    what = ", ".join(f"{entry.profile_type} of {entry.pod}" for entry in flying)
    longest = math.ceil(max(entry.seconds_left for entry in flying))
    expected = [entry.expected_left for entry in flying if entry.expected_left is not None]
    about = f"about {math.ceil(max(expected))} s, " if expected else ""
    return f"finishing {what} ({about}at most {longest} s){'; ' + again if again else ''}"


class TwoStages:
    """Counts the signals; `first(signum)` runs on the first, `second(signum)` on every later one."""

    def __init__(self, first: Callable[[int], None], second: Callable[[int], None]):
        self.first = first
        self.second = second
        self.received = 0

    @property
    def aborted(self) -> bool:
        return self.received > 1

    def handle(self, signum: int, _frame: FrameType | None = None) -> None:
        self.received += 1
        (self.first if self.received == 1 else self.second)(signum)

    @contextmanager
    def installed(self, signals: tuple[signal.Signals, ...] = SIGNALS) -> Iterator[TwoStages]:
        previous = {sig: signal.signal(sig, self.handle) for sig in signals}
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

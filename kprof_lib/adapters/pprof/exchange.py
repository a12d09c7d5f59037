"""One deadline for a whole HTTP exchange over urllib3 (connect, TLS, request, headers and body),
for the direct and proxy transports.

urllib3's timeouts bound each socket operation, so a server that sends its status line and headers
one byte a second never trips them, and eight such servers would hold every capture slot for good.
So the deadline watchdog is armed before the request is sent: `watched(deadline)` registers the
exchange of the calling thread, the connection classes below (installed in a PoolManager with
`watch_pools`) attach themselves to it as they connect or send, and when the deadline passes the
watchdog shuts the connection's socket, which makes the blocked read return at once. Once the
response is in, the response itself is cut instead (urllib3 refuses that after the connection went
back to its pool, so a late deadline never cuts a connection another capture reuses). A transport
passes its `Group`, and cuts all its exchanges at once when its process stops (`abort`).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from kprof_lib.adapters.pprof.deadlines import WATCHDOG, Group, Watch, shutdown_socket

_current = threading.local()


class Exchange:
    """The connection (then the response) carrying one capture, for the watchdog to cut."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._connection: Any = None
        self._response: urllib3.BaseHTTPResponse | None = None
        self.cut = False
        self.watch: Watch | None = None

    def attach(self, connection: Any) -> None:
        with self._lock:
            self._connection = connection
            late = self.cut
        if late:
            # The deadline passed while connecting: end it now rather than after the next read.
            _shut(connection)

    def responded(self, response: urllib3.BaseHTTPResponse) -> None:
        with self._lock:
            self._response = response
            self._connection = None

    def cut_now(self) -> None:
        with self._lock:
            self.cut = True
            connection, response = self._connection, self._response
        if response is not None:
            # shutdown() ends a read blocked in another thread; urllib3 refuses it once the body
            # is complete and the connection is back in its pool.
            with contextlib.suppress(RuntimeError, ValueError, OSError):
                response.shutdown()
        elif connection is not None:
            _shut(connection)


def _shut(connection: Any) -> None:
    with contextlib.suppress(OSError):
        shutdown_socket(getattr(connection, "sock", None))


@contextlib.contextmanager
def watched(deadline: float, group: Group | None = None) -> Iterator[Exchange]:
    """The calling thread's next urllib3 exchange (through a `watch_pools` PoolManager) is cut at
    `deadline` (a `time.monotonic()` value), or when `group` is cut. The caller cancels
    `exchange.watch` before it lets go of the response."""
    exchange = Exchange()
    exchange.watch = WATCHDOG.watch(deadline, exchange.cut_now, group)
    previous = getattr(_current, "exchange", None)
    _current.exchange = exchange
    try:
        yield exchange
    finally:
        _current.exchange = previous
        exchange.watch.cancel()


def _attach(connection: Any) -> None:
    exchange = getattr(_current, "exchange", None)
    if exchange is not None:
        exchange.attach(connection)


class _Watched:
    """Attaches an HTTP(S) connection to the calling thread's exchange; mixed in before the
    connection class."""

    def connect(self) -> None:
        _attach(self)
        super().connect()  # type: ignore[misc]
        _attach(self)

    def request(self, *args: Any, **kwargs: Any) -> None:
        _attach(self)  # a kept-alive connection: connect() is not called again
        super().request(*args, **kwargs)  # type: ignore[misc]


class _WatchedHTTPConnection(_Watched, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_Watched, HTTPSConnection):
    pass


class _WatchedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


def watch_pools(manager: urllib3.PoolManager) -> urllib3.PoolManager:
    """`manager`, its future pools built from connection classes that `watched` can cut."""
    manager.pool_classes_by_scheme = {"http": _WatchedHTTPConnectionPool, "https": _WatchedHTTPSConnectionPool}
    return manager

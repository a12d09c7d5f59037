"""A transport wrapper for tests and benchmarks that measure what goes through a real transport:
`CountingTransport` counts the body bytes read through it and the exchanges in flight at once
(and the most at one time), passing everything on to the transport it wraps."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from kprof_lib.execution.ports import ForwardingTransport, ProfileRequest, Response, Transport


class CountingTransport(ForwardingTransport):
    def __init__(self, inner: Transport) -> None:
        super().__init__(inner)
        self.bytes_read = 0
        self.in_flight = 0
        self.most_in_flight = 0
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def open(self, request: ProfileRequest, timeout: float) -> Iterator[Response]:
        with self._lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            with self.inner.open(request, timeout) as response:
                response.chunks = self._counted(response.chunks)
                yield response
        finally:
            with self._lock:
                self.in_flight -= 1

    def _counted(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            with self._lock:
                self.bytes_read += len(chunk)
            yield chunk

"""Small HTTP endpoints the long-running runtimes serve: `/healthz`, `/readyz` and, for the operator,
`/metrics`. `Endpoints` answers GET on a fixed set of paths from a thread; the operator and the
sidecar both build on it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

log = logging.getLogger("kprof.http")


@dataclass(frozen=True)
class Address:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host or '0.0.0.0'}:{self.port}"


def parse_address(text: str) -> Address:
    """`HOST:PORT`, `:PORT` (every interface) or `[v6]:PORT`; ValueError with the reason otherwise."""
    host, sep, port = text.rpartition(":")
    if not sep:
        raise ValueError(f"{text!r} is not HOST:PORT (e.g. :8080 or 127.0.0.1:8080)")
    host = host.strip("[]")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{text!r}: the port must be a number from 0 to 65535")
    return Address(host, int(port))


Route = Callable[[], tuple[int, str, bytes]]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class Endpoints:
    """One HTTP server answering GET on a fixed set of paths; `address` is where it listens (the
    port it got when asked for port 0)."""

    def __init__(self, address: Address, routes: Mapping[str, Route], name: str):
        self.name = name
        self._routes = dict(routes)
        try:
            self._server = _Server((address.host, address.port), self._handler())
        except OSError as error:
            raise OSError(error.errno, f"cannot serve {name} on {address}: {error.strerror}") from None
        host, port = self._server.server_address[:2]
        self.address = Address(str(host), int(port))
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"kprof-http-{name}", daemon=True)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        routes = self._routes

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                route = routes.get(self.path.split("?", 1)[0])
                if route is None:
                    status, content_type, body = 404, "text/plain; charset=utf-8", b"not found\n"
                else:
                    try:
                        status, content_type, body = route()
                    except Exception:
                        log.exception("endpoint %s failed", self.path)
                        status, content_type, body = 500, "text/plain; charset=utf-8", b"internal error\n"
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass  # probes every few seconds would drown the decision log

        return Handler

    def start(self) -> None:
        self._thread.start()
        extra = {"action": "listen", "endpoint": self.name, "address": str(self.address)}
        log.info("serving %s on %s", ", ".join(sorted(self._routes)), self.address, extra=extra)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def text(status: int, body: str) -> tuple[int, str, bytes]:
    return status, "text/plain; charset=utf-8", body.encode()


def health_routes(ready: Callable[[], tuple[bool, str]]) -> dict[str, Route]:
    """/healthz answers while the process serves; /readyz says 200 only when `ready()` is true,
    with its explanation either way."""

    def readyz() -> tuple[int, str, bytes]:
        ok, why = ready()
        return text(200 if ok else 503, f"{'ok' if ok else 'not ready'}: {why}\n")

    return {"/healthz": lambda: text(200, "ok\n"), "/readyz": readyz}

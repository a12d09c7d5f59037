"""HTTP front of the emulator: routes kube-apiserver URLs (collections, objects, status,
pods/proxy, pods/portforward) to the store, answers like kube-apiserver (JSON bodies, Status
errors, chunked watch streams with ADDED/MODIFIED/DELETED/BOOKMARK/ERROR events), applies armed
faults before any state change and records every answered request. Built on the standard
library's ThreadingHTTPServer; one handler class per emulator (see `make_handler`)."""

from __future__ import annotations

import json
import queue
import select
import socket
import time
import traceback
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit

from . import status as st
from . import tunnels
from .faults import Fault, RequestRecord
from .resources import ResourceType
from .selectors import Predicate
from .store import Entry, ListResult, Watcher, WatchEvent, dumps

if TYPE_CHECKING:
    from .emulator import KubeEmulator

_PUBLIC_PATHS = {"/version", "/version/", "/healthz", "/livez", "/readyz"}
_TRUE = {"true", "True", "TRUE", "1", "t", "T"}
_DEFAULT_FAULT_MESSAGES = {
    500: "Internal error occurred: injected fault",
    503: "the server is currently unable to handle the request",
    504: "Timeout: request did not complete within the allotted timeout",
}
# How often an idle watch checks whether its client went away.
_CLIENT_CHECK_INTERVAL = 1.0


def parse_bool(value: str | None) -> bool:
    return value in _TRUE


@dataclass
class Route:
    rt: ResourceType | None = None
    document: Any = None  # /version and health answers
    namespace: str | None = None
    name: str | None = None
    subresource: str | None = None
    subpath: str = ""
    legacy_watch: bool = False


class _DropConnection(Exception):
    """Raised inside a watch stream to cut the connection without a clean end."""


def resolve_route(emulator: KubeEmulator, path: str) -> Route:
    registry = emulator.registry
    if path in ("/version", "/version/"):
        return Route(document=emulator.version_info)
    if path in ("/healthz", "/livez", "/readyz"):
        return Route(document="ok")
    segments = [s for s in path.split("/") if s]
    if len(segments) >= 3 and segments[0] == "api":
        group, version, rest, consumed = "", segments[1], segments[2:], 2
    elif len(segments) >= 4 and segments[0] == "apis":
        group, version, rest, consumed = segments[1], segments[2], segments[3:], 3
    else:
        raise st.no_such_route()  # no discovery documents: no client of the emulator reads them
    legacy_watch = rest[0] == "watch"
    if legacy_watch:
        rest, consumed = rest[1:], consumed + 1
    namespaced_rt = registry.lookup(group, version, rest[2]) if len(rest) >= 3 and rest[0] == "namespaces" else None
    if namespaced_rt is not None and namespaced_rt.namespaced:
        rt, namespace, tail, consumed = namespaced_rt, rest[1], rest[3:], consumed + 3
    else:
        rt, namespace, tail, consumed = (
            registry.lookup(group, version, rest[0] if rest else ""),
            None,
            rest[1:],
            consumed + 1,
        )
        if rt is None or (rt.namespaced and tail):
            raise st.no_such_route()
    route = Route(rt=rt, namespace=namespace, legacy_watch=legacy_watch)
    if tail:
        route.name = tail[0]
    if len(tail) > 1:
        route.subresource = tail[1]
        # Everything after {name}/{subresource}, as written (trailing slash kept) — the proxied path.
        raw = path.lstrip("/").split("/", consumed + 2)
        route.subpath = raw[consumed + 2] if len(raw) > consumed + 2 else ""
    return route


class EmulatorRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kube-emulator"
    sys_version = ""
    # Small answers go out at once instead of waiting on the client's delayed ACK.
    disable_nagle_algorithm = True
    emulator: KubeEmulator

    # ----------------------------------------------------------------- connection lifecycle

    def setup(self) -> None:
        super().setup()
        self.emulator.track_socket(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.emulator.untrack_socket(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def send_response(self, code: int, message: str | None = None) -> None:
        super().send_response(code, message)
        self._record(code)

    def _record(self, code: int) -> None:
        if not self._recorded:
            self._recorded = True
            method, path, query = self._request_parts
            self.emulator.log.append(RequestRecord(method, path, query, code, self._is_watch))

    def abort_connection(self) -> None:
        """Cut the connection at once: the client sees it end mid-answer."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # ----------------------------------------------------------------- entry point

    def do_GET(self) -> None:
        self._handle()

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_GET

    def _handle(self) -> None:
        self._recorded = False
        self._is_watch = False
        self._drop_after: int | None = None
        split = urlsplit(self.path)
        path = unquote(split.path)
        pairs = parse_qsl(split.query, keep_blank_values=True)
        self._query_pairs = pairs
        query = dict(pairs)
        self._request_parts = (self.command, path, query)
        self._raw_query = split.query
        try:
            body = self._read_body()
            route: Route | None = None
            route_error: st.ApiError | None = None
            try:
                route = resolve_route(self.emulator, path)
            except st.ApiError as exc:
                route_error = exc
            is_collection = route is not None and route.rt is not None and route.name is None
            self._is_watch = (
                is_collection and self.command == "GET" and (parse_bool(query.get("watch")) or route.legacy_watch)
            )
            fault = self.emulator.faults.take(
                self.command, path, is_watch=self._is_watch, is_list=is_collection and self.command == "GET"
            )
            if fault is not None and self._apply_fault(fault):
                return
            if path not in _PUBLIC_PATHS:
                self._check_auth()
            if route_error is not None:
                raise route_error
            assert route is not None
            self._dispatch(route, query, body)
        except st.ApiError as exc:
            self._fail(exc)
        except (BrokenPipeError, ConnectionResetError, _DropConnection):
            self.abort_connection()
        except Exception as exc:
            # An emulator bug: answer like kube-apiserver's panic handler and keep the trace visible.
            traceback.print_exc()
            self._fail(st.ApiError(500, f"Internal error occurred: {type(exc).__name__}: {exc}"))
        finally:
            if not self._recorded:
                self._record(0)

    def _fail(self, error: st.ApiError) -> None:
        if self._recorded:  # the answer has begun: all that is left is to cut it short
            self.abort_connection()
        else:
            try:
                self._send_error(error)
            except OSError:
                self.abort_connection()

    def _read_body(self) -> bytes:
        if (self.headers.get("Transfer-Encoding") or "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _check_auth(self) -> None:
        if not self.emulator.require_auth:
            return
        if self.headers.get("Authorization") != f"Bearer {self.emulator.token}":
            raise st.unauthorized()

    def _apply_fault(self, fault: Fault) -> bool:
        """Apply `fault`; True when it answered (or dropped) the request itself."""
        if fault.delay:
            self.emulator.sleep(fault.delay)
        if fault.close_connection:
            self._record(0)
            self.abort_connection()
            return True
        if fault.drop_after_events is not None:
            self._drop_after = fault.drop_after_events
            return False
        if fault.status is None:
            return False
        if fault.status == 429:
            error = st.too_many_requests(fault.retry_after)
        else:
            message = fault.message or _DEFAULT_FAULT_MESSAGES.get(fault.status, "injected fault")
            error = st.ApiError(fault.status, message)
            if fault.retry_after is not None:
                error.headers["Retry-After"] = str(fault.retry_after)
                error.details = {"retryAfterSeconds": fault.retry_after}
        if fault.message and fault.status == 429:
            error.message = fault.message
        self._send_error(error)
        return True

    # ----------------------------------------------------------------- responses

    def _send_bytes(
        self, code: int, body: bytes, content_type: str = "application/json", headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_error(self, error: st.ApiError) -> None:
        self._send_bytes(error.code, error.body(), headers=error.headers)

    def _send_json(self, code: int, document: Any) -> None:
        self._send_bytes(code, dumps(document))

    # ----------------------------------------------------------------- dispatch

    def _dispatch(self, route: Route, query: dict[str, str], body: bytes) -> None:
        if route.rt is None:
            if isinstance(route.document, str):
                self._send_bytes(200, route.document.encode(), "text/plain; charset=utf-8")
            else:
                self._send_json(200, route.document)
            return
        rt, method = route.rt, self.command
        store = self.emulator.store
        if route.subresource is not None:
            self._dispatch_subresource(route, query, body)
        elif route.name is not None:
            if method in ("GET", "HEAD"):
                self._send_bytes(200, store.get(rt, route.namespace, route.name).full)
            elif method == "PUT":
                entry, created = store.update(rt, route.namespace, route.name, self._decode(body))
                self._send_bytes(201 if created else 200, entry.full)
            elif method == "PATCH":
                entry, _ = store.patch(rt, route.namespace, route.name, self.headers.get("Content-Type") or "", body)
                self._send_bytes(200, entry.full)
            elif method == "DELETE":
                self._send_deleted(rt, store.delete(rt, route.namespace, route.name))
            else:
                raise st.method_not_allowed()
        elif method in ("GET", "HEAD"):
            if self._is_watch:
                self._watch(rt, route.namespace, query)
            else:
                self._list(rt, route.namespace, query)
        elif method == "POST" and (route.namespace is not None or not rt.namespaced):
            entry = store.create(rt, route.namespace, self._decode(body))
            self._send_bytes(201, entry.full)
        else:
            raise st.method_not_allowed()

    def _dispatch_subresource(self, route: Route, query: dict[str, str], body: bytes) -> None:
        rt, method, store = route.rt, self.command, self.emulator.store
        assert rt is not None and route.name is not None
        sub = route.subresource
        if sub == "status" and rt.status_subresource:
            if method in ("GET", "HEAD"):
                self._send_bytes(200, store.get(rt, route.namespace, route.name).full)
            elif method == "PUT":
                entry, _ = store.update(rt, route.namespace, route.name, self._decode(body), subresource="status")
                self._send_bytes(200, entry.full)
            elif method == "PATCH":
                entry, _ = store.patch(
                    rt,
                    route.namespace,
                    route.name,
                    self.headers.get("Content-Type") or "",
                    body,
                    subresource="status",
                )
                self._send_bytes(200, entry.full)
            else:
                raise st.method_not_allowed()
        elif rt.key == ("", "v1", "pods") and sub in ("proxy", "portforward"):
            if sub == "proxy":
                _, pod_name, _ = tunnels.split_proxy_target(route.name)
                pod = store.get(rt, route.namespace, pod_name).obj
                tunnels.serve_proxy(self, pod, route.name, route.subpath, self._raw_query, body)
            elif method in ("GET", "POST"):
                pod = store.get(rt, route.namespace, route.name).obj
                ports = tunnels.parse_ports([v for k, v in self._query_pairs if k == "ports"])
                tunnels.serve_portforward(self, pod, ports)
            else:
                raise st.method_not_allowed()
        else:
            raise st.no_such_route()

    def _decode(self, body: bytes) -> Any:
        try:
            return json.loads(body or b"null")
        except ValueError as exc:
            raise st.bad_request(f"couldn't get version/kind; json parse error: {exc}") from None

    def _send_deleted(self, rt: ResourceType, entry: Entry) -> None:
        if rt.return_deleted_object:
            self._send_bytes(200, entry.full)
        else:
            uid = entry.obj["metadata"].get("uid")
            self._send_json(200, st.success_status(entry.name, rt.group, rt.plural, uid))

    # ----------------------------------------------------------------- list and watch

    @staticmethod
    def _list_body(rt: ResourceType, result: ListResult) -> bytes:
        meta: dict[str, Any] = {}
        if result.resource_version is not None:
            meta["resourceVersion"] = result.resource_version
        if result.continue_token:
            meta["continue"] = result.continue_token
        if result.remaining is not None:
            meta["remainingItemCount"] = result.remaining
        head = b'{"apiVersion":%s,"kind":%s,"metadata":%s,"items":[' % (
            dumps(rt.api_version),
            dumps(rt.list_kind_name),
            dumps(meta),
        )
        return head + b",".join(entry.item for entry in result.entries) + b"]}"

    def _list(self, rt: ResourceType, namespace: str | None, query: dict[str, str]) -> None:
        limit_text = query.get("limit") or "0"
        if not limit_text.isdigit():
            raise st.bad_request(f'limit: Invalid value: "{limit_text}"')
        result = self.emulator.store.list(
            rt,
            namespace,
            label_selector=query.get("labelSelector"),
            field_selector=query.get("fieldSelector"),
            limit=int(limit_text) or None,
            continue_token=query.get("continue") or None,
            resource_version=query.get("resourceVersion"),
        )
        self._send_bytes(200, self._list_body(rt, result))

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")

    def _watch(self, rt: ResourceType, namespace: str | None, query: dict[str, str]) -> None:
        if not rt.versioned:
            raise st.method_not_allowed()
        store = self.emulator.store
        predicate = store.predicate(rt, query.get("labelSelector"), query.get("fieldSelector"))
        timeout_text = query.get("timeoutSeconds")
        if timeout_text is not None and not timeout_text.isdigit():
            raise st.bad_request(f'timeoutSeconds: Invalid value: "{timeout_text}"')
        timeout = float(timeout_text) if timeout_text else self.emulator.default_watch_timeout
        bookmarks = parse_bool(query.get("allowWatchBookmarks"))
        send_initial = parse_bool(query.get("sendInitialEvents"))
        try:
            watcher, initial = store.open_watch(rt, namespace, query.get("resourceVersion"), send_initial=send_initial)
        except st.ApiError as exc:
            if exc.code != 410:
                raise
            # kube answers an expired watch with 200 and a single ERROR event carrying the Status.
            self._start_stream()
            self._write_chunk(b'{"type":"ERROR","object":%s}\n' % exc.body())
            self._end_stream()
            return
        try:
            _WatchStream(self, rt, watcher, predicate, bookmarks, timeout).run(initial, send_initial)
        finally:
            store.close_watch(watcher)


class _WatchStream:
    """Writes one watch response: initial ADDED events, then live events as they happen, bookmarks
    when asked for, and a clean end at timeoutSeconds."""

    def __init__(
        self,
        handler: EmulatorRequestHandler,
        rt: ResourceType,
        watcher: Watcher,
        predicate: Predicate | None,
        bookmarks: bool,
        timeout: float | None,
    ) -> None:
        self._handler = handler
        self._rt = rt
        self._watcher = watcher
        self._predicate = predicate
        self._bookmarks = bookmarks
        self._timeout = timeout
        self._sent = 0
        self._store = handler.emulator.store

    def _check_drop(self) -> None:
        drop_after = self._handler._drop_after
        if drop_after is not None and self._sent >= drop_after:
            raise _DropConnection()

    def _send_event(self, event_type: str, entry: Entry) -> None:
        self._handler._write_chunk(b'{"type":"%s","object":%s}\n' % (event_type.encode(), entry.full))
        self._sent += 1
        self._check_drop()

    def _send_bookmark(self, rv: int, initial_events_end: bool = False) -> None:
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        if initial_events_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        obj = {"kind": self._rt.kind, "apiVersion": self._rt.api_version, "metadata": meta}
        self._handler._write_chunk(b'{"type":"BOOKMARK","object":%s}\n' % dumps(obj))

    def _visible_type(self, event: WatchEvent) -> str | None:
        """The event type this watcher sees: objects entering or leaving the selector show up as
        ADDED and DELETED, as kube-apiserver's watch cache reports them."""
        namespace = self._watcher.namespace
        if namespace is not None and self._rt.namespaced and event.namespace != namespace:
            return None
        if self._predicate is None:
            return event.type
        now = self._predicate(event.entry.obj)
        if event.type == "MODIFIED" and event.prev is not None:
            before = self._predicate(event.prev.obj)
            if now and before:
                return "MODIFIED"
            if now:
                return "ADDED"
            return "DELETED" if before else None
        return event.type if now else None

    def _deliver(self, event: WatchEvent) -> None:
        event_type = self._visible_type(event)
        if event_type is not None:
            self._send_event(event_type, event.entry)

    def _client_gone(self) -> bool:
        connection = self._handler.connection
        try:
            readable, _, _ = select.select([connection], [], [], 0)
            return bool(readable) and connection.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True

    def run(self, initial: list[Entry], send_initial: bool) -> None:
        handler = self._handler
        handler._start_stream()
        self._check_drop()
        for entry in initial:
            if self._predicate is None or self._predicate(entry.obj):
                self._send_event("ADDED", entry)
        if send_initial and self._bookmarks:
            self._send_bookmark(self._store.resource_version, initial_events_end=True)
        start = time.monotonic()
        deadline = start + self._timeout if self._timeout else None
        interval = handler.emulator.bookmark_interval
        next_bookmark = start + interval
        while True:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                self._finish_before_timeout()
                # Unsubscribe before the client can see the end, so it never finds its watch still open.
                self._store.close_watch(self._watcher)
                handler._end_stream()
                return
            if self._bookmarks and now >= next_bookmark:
                rv = self._store.bookmark_rv(self._watcher)
                if rv is not None:
                    self._send_bookmark(rv)
                    next_bookmark = now + interval
            waits = [_CLIENT_CHECK_INTERVAL]
            if deadline is not None:
                waits.append(deadline - now)
            if self._bookmarks:
                waits.append(next_bookmark - now)
            try:
                event = self._watcher.events.get(timeout=max(0.0, min(waits)))
            except queue.Empty:
                if self._client_gone():
                    return
                continue
            if event is None:  # the emulator is stopping
                handler.abort_connection()
                return
            self._deliver(event)

    def _finish_before_timeout(self) -> None:
        """Deliver what is queued, then (when asked for) a last bookmark, so a client resuming
        from it misses nothing."""
        for _ in range(10_000):
            rv = self._store.bookmark_rv(self._watcher)
            if rv is not None:
                if self._bookmarks:
                    self._send_bookmark(rv)
                return
            try:
                event = self._watcher.events.get_nowait()
            except queue.Empty:
                continue
            if event is None:
                return
            self._deliver(event)


def make_handler(emulator: KubeEmulator) -> type[EmulatorRequestHandler]:
    return type("BoundEmulatorRequestHandler", (EmulatorRequestHandler,), {"emulator": emulator})

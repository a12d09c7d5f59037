"""`KubeFront`: a front proxy on plain HTTP before the real kube-apiserver of the tests
(tests.support.controlplane), for what that API server cannot do here. It passes every request
through as the control plane's admin, so objects live in the real etcd and the answers (errors,
lists, watches, bookmarks) are the real ones, except where a test asks otherwise:

- pods/portforward and pods/proxy are served here (tunnels.py), to the pod's IP as the real API
  server reads it: with no kubelet there is no port-forward, and the real pods/proxy refuses the
  loopback addresses test pods have;
- an armed `Fault` (faults.py) answers, delays, cuts or drops a matching request or watch;
- `compact()` expires every resourceVersion before a chosen one: a watch from an older one gets the
  ERROR 410 event the real server sends after etcd compaction (its watch cache hides compaction);
- `set_pod_metrics()` makes the metrics API report the usage a test chooses (metrics-server reports
  real processes only, after two scrapes); labelSelector is not applied to those answers;
- every request is logged (`requests`, `count`) for tests and benchmarks to count.
"""

from __future__ import annotations

import http.client
import json
import re
import select
import socket
import ssl
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit

import yaml

from . import tunnels
from .faults import ApiError, FaultSet, RequestLog, RequestRecord
from .tunnels import cut

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

    from tests.support.controlplane import ControlPlane

_POD_SUBRESOURCE = re.compile(r"^/api/v1/namespaces/([^/]+)/pods/([^/]+)/(proxy|portforward)(?:/(.*))?$", re.S)
_POD_METRICS = re.compile(r"^/apis/metrics\.k8s\.io/v1beta1(?:/namespaces/([^/]+))?/pods$")
_TRUE = {"true", "1"}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


class KubeFront:
    """Started, it answers on `url`; a context manager, or start()/stop() (stop cuts every open
    connection, start again listens on the same port)."""

    def __init__(self, plane: ControlPlane, *, proxy_timeout: float = 120.0) -> None:
        self.plane = plane
        self.proxy_timeout = proxy_timeout  # how long pods/proxy waits on a silent pod
        self.port = 0
        self.faults = FaultSet()
        self.log = RequestLog()
        self.pod_metrics: dict[tuple[str, str], dict[str, Any]] = {}
        self.compacted = 0
        upstream = urlsplit(plane.server)
        self._upstream = (upstream.hostname or "127.0.0.1", upstream.port or 443)
        self._tls = ssl.create_default_context(cafile=str(plane.ca.cert))
        self._tls.load_cert_chain(str(plane.admin.cert), str(plane.admin.key))
        self._server: _Server | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._watches: Counter[str] = Counter()

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> KubeFront:
        if self._server is None:
            self._stopping.clear()
            handler = type("FrontHandler", (Handler,), {"front": self})
            self._server = _Server(("127.0.0.1", self.port), handler)
            self.port = self._server.server_address[1]
            threading.Thread(target=self._server.serve_forever, args=(0.05,), name="kube-front", daemon=True).start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            cut(sock)

    def __enter__(self) -> KubeFront:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def track_socket(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)

    def untrack_socket(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(sock)

    def sleep(self, seconds: float) -> None:
        """Wait, but no longer than until the front stops."""
        self._stopping.wait(seconds)

    # -- clients ---------------------------------------------------------------------------

    def write_kubeconfig(self, path: str | Path, namespace: str = "default") -> Path:
        """A kubeconfig (plain HTTP, no credentials: the front holds them) whose context points here."""
        path = Path(path)
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "front", "cluster": {"server": self.url}}],
            "users": [{"name": "front", "user": {}}],
            "contexts": [{"name": "front", "context": {"cluster": "front", "user": "front", "namespace": namespace}}],
            "current-context": "front",
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def api_client(self) -> ApiClient:
        from kubernetes import client

        configuration = client.Configuration()
        configuration.host = self.url
        return client.ApiClient(configuration)

    def connect(self, timeout: float | None) -> http.client.HTTPSConnection:
        """A connection to the real API server as its admin, tracked so that stop() cuts it."""
        connection = http.client.HTTPSConnection(*self._upstream, context=self._tls, timeout=timeout)
        connection.connect()
        assert connection.sock is not None
        self.track_socket(connection.sock)
        return connection

    # -- what tests arrange and read -------------------------------------------------------

    @property
    def requests(self) -> list[RequestRecord]:
        return self.log.snapshot()

    def count(self, method: str | None = None, path_regex: str | None = None, watch: bool | None = None) -> int:
        """How many requests match; `path_regex` is searched in the decoded path."""
        return self.log.count(method, path_regex, watch)

    def reset_requests(self) -> None:
        self.log.reset()

    def resource_version(self) -> int:
        """The real API server's current resourceVersion (a one-item list's)."""
        from kubernetes import client

        return int(client.CoreV1Api(self.plane.api()).list_namespace(limit=1).metadata.resource_version)

    def compact(self, resource_version: int | None = None) -> None:
        """From now on a watch from a resourceVersion older than `resource_version` (default: the
        current one) is answered 410 Expired, as after an etcd compaction."""
        self.compacted = resource_version if resource_version is not None else self.resource_version()

    def set_pod_metrics(self, namespace: str, name: str, usage: dict[str, dict[str, str]]) -> None:
        """The PodMetrics the metrics API reports for a pod from now on: `usage` per container."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.pod_metrics[(namespace, name)] = {
            "metadata": {"name": name, "namespace": namespace, "creationTimestamp": stamp},
            "timestamp": stamp,
            "window": "30s",
            "containers": [{"name": container, "usage": dict(values)} for container, values in usage.items()],
        }

    def active_watches(self, plural: str | None = None) -> int:
        """Watch streams open through the front, optionally only on one resource ("pods")."""
        with self._lock:
            return self._watches[plural] if plural else sum(self._watches.values())

    def wait_for_watches(self, count: int = 1, plural: str | None = None, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while self.active_watches(plural) < count:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{self.active_watches(plural)} watches open on {plural or 'any resource'}")
            self._stopping.wait(0.02)

    def watch_changed(self, plural: str, delta: int) -> None:
        with self._lock:
            self._watches[plural] += delta


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # small answers go out at once, not after the client's delayed ACK
    front: KubeFront
    pending: RequestRecord  # this request, logged once its answer begins or its connection is cut
    logged: bool

    def setup(self) -> None:
        super().setup()
        self.front.track_socket(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.front.untrack_socket(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def send_response(self, code: int, message: str | None = None) -> None:
        super().send_response(code, message)
        self._log(code)

    def _log(self, status: int) -> None:
        """Before the client can see anything: a watch is counted while it runs, a cut one (status 0)
        by the time the client finds the connection closed."""
        if not self.logged:
            self.logged = True
            self.front.log.append(self.pending._replace(status=status))

    def abort_connection(self) -> None:
        self._log(0)
        self.close_connection = True
        cut(self.connection)

    def do_GET(self) -> None:
        split = urlsplit(self.path)
        path = unquote(split.path)
        self.query_pairs = parse_qsl(split.query, keep_blank_values=True)
        query = dict(self.query_pairs)
        self.logged = False
        is_watch = self.command == "GET" and ((query.get("watch") or "").lower() in _TRUE or "/watch/" in path)
        self.pending = RequestRecord(self.command, path, query, 0, is_watch)
        # After /api/v1 or /apis/GROUP/VERSION, "pods" and "namespaces/NS/pods" name a collection.
        rest = path.split("/")[3 if path.startswith("/api/") else 4 :]
        is_list = self.command == "GET" and not is_watch and len(rest) in (1, 3)
        try:
            body = self._read_body()
            fault = self.front.faults.take(self.command, path, is_watch=is_watch, is_list=is_list)
            if fault is not None:
                self.front.sleep(fault.delay)
                if fault.close_connection:
                    return self.abort_connection()
                if fault.status is not None and fault.drop_after_events is None:
                    return self._send_error(fault.error())
            self._dispatch(path, split.query, query, body, is_watch, fault.drop_after_events if fault else None)
        except ApiError as error:
            if self.logged:  # the answer has begun: all that is left is to cut it short
                self.abort_connection()
            else:
                self._send_error(error)
        except OSError:
            self.abort_connection()
        finally:
            self._log(0)

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send_bytes(self, code: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _send_error(self, error: ApiError) -> None:
        self._send_bytes(error.code, error.body(), error.headers)

    def _dispatch(
        self, path: str, raw_query: str, query: dict[str, str], body: bytes, is_watch: bool, drop_after: int | None
    ) -> None:
        pod_route = _POD_SUBRESOURCE.match(path)
        metrics_route = _POD_METRICS.match(path)
        if pod_route is not None:
            namespace, target, subresource, subpath = pod_route.groups()
            pod = self._read_pod(namespace, tunnels.split_proxy_target(target)[1])
            if pod is None:
                return
            if subresource == "proxy":
                return tunnels.serve_proxy(self, pod, target, subpath or "", raw_query, body)
            ports = tunnels.parse_ports([value for key, value in self.query_pairs if key == "ports"])
            return tunnels.serve_portforward(self, pod, ports)
        if metrics_route is not None and self.front.pod_metrics and self.command == "GET":
            namespace = metrics_route.group(1)
            items = [m for (ns, _), m in self.front.pod_metrics.items() if namespace in (None, ns)]
            listed = {"apiVersion": "metrics.k8s.io/v1beta1", "kind": "PodMetricsList", "metadata": {}, "items": items}
            return self._send_bytes(200, json.dumps(listed).encode())
        version = query.get("resourceVersion") or "0"
        if is_watch and version.isdigit() and 0 < int(version) < self.front.compacted:
            expired = ApiError(410, f"too old resource version: {version} ({self.front.compacted})")
            return self._stream_events(iter([b'{"type":"ERROR","object":%s}\n' % expired.body()]), None)
        upstream = self.front.connect(None if is_watch else 60.0)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in tunnels.HOP_BY_HOP}
            upstream.request(self.command, self.path, body=body or None, headers=headers)
            answer = upstream.getresponse()
            if is_watch and answer.status == 200:
                plural = path.rstrip("/").rsplit("/", 1)[-1]
                self.front.watch_changed(plural, 1)
                try:
                    self._stream_events(iter(answer.readline, b""), drop_after, upstream.sock)
                finally:
                    self.front.watch_changed(plural, -1)
            else:
                tunnels.stream_response(self, answer)
        finally:
            if upstream.sock is not None:
                self.front.untrack_socket(upstream.sock)
            upstream.close()

    def _read_pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The pod from the real API server; None once its answer (a 404, say) went to the client."""
        upstream = self.front.connect(30.0)
        try:
            upstream.request("GET", f"/api/v1/namespaces/{namespace}/pods/{name}")
            answer = upstream.getresponse()
            document = answer.read()
        finally:
            if upstream.sock is not None:
                self.front.untrack_socket(upstream.sock)
            upstream.close()
        if answer.status != 200:
            self._send_bytes(answer.status, document)
            return None
        pod: dict[str, Any] = json.loads(document)
        return pod

    def _stream_events(self, lines: Any, drop_after: int | None, upstream: socket.socket | None = None) -> None:
        """A chunked watch answer, one event per line; cut (no last chunk) after `drop_after` events.
        A client that leaves ends the upstream watch too."""
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        done = threading.Event()
        if upstream is not None:
            threading.Thread(target=self._cut_when_client_leaves, args=(upstream, done), daemon=True).start()
        try:
            if drop_after != 0:
                for sent, line in enumerate(lines, 1):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                    if sent == drop_after:
                        break
                else:
                    self.wfile.write(b"0\r\n\r\n")
                    return
            self.abort_connection()
        finally:
            done.set()

    def _cut_when_client_leaves(self, upstream: socket.socket, done: threading.Event) -> None:
        while not done.is_set():
            try:
                readable, _, _ = select.select([self.connection], [], [], 0.2)
                if readable and self.connection.recv(1, socket.MSG_PEEK) == b"":
                    break
            except (OSError, ValueError):
                break
        if not done.is_set():
            cut(upstream)

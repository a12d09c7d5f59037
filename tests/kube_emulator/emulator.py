"""`KubeEmulator`: a Kubernetes API server emulator listening on real HTTP, for the tests that need
what the real control plane (tests.support.controlplane) cannot do here (port-forward, injected
faults, a watch cut or expired at a chosen moment) and for the benchmarks that count requests. It
owns the kinds it serves, the store, the armed faults and the request log, starts and stops the
threaded HTTP server, and offers a Python API to seed and inspect state without HTTP
(create/apply/get/list/delete, pod metrics, compaction)."""

from __future__ import annotations

import socket
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from .faults import FaultSet, RequestLog, RequestRecord
from .resources import ResourceRegistry, ResourceType, builtin_types, custom_type
from .server import make_handler
from .store import Store, now_rfc3339

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

DEFAULT_TOKEN = "kube-emulator-token"
DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


class KubeEmulator:
    """A started emulator answers on `url`; use it as a context manager or call start()/stop().

    Args:
        host, port: where to listen (port 0 picks a free port).
        token: the bearer token clients must send (the kubeconfig and api_client() carry it).
        require_auth: answer 401 to requests without the token, as a real cluster would.
        history_size: how many watch events are kept; older resourceVersions answer 410 Expired.
        bookmark_interval: seconds between BOOKMARK events on watches that allow them.
        default_watch_timeout: how long a watch without timeoutSeconds lasts (None: until the
            client leaves or the emulator stops).
        proxy_timeout: seconds pods/proxy waits on a silent pod before giving up.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        token: str = DEFAULT_TOKEN,
        require_auth: bool = True,
        history_size: int = 1000,
        bookmark_interval: float = 1.0,
        default_watch_timeout: float | None = None,
        proxy_timeout: float = 120.0,
    ) -> None:
        self.host = host
        self.port = port
        self.token = token
        self.require_auth = require_auth
        self.bookmark_interval = bookmark_interval
        self.default_watch_timeout = default_watch_timeout
        self.proxy_timeout = proxy_timeout
        self.version_info = {
            "major": "1",
            "minor": "31",
            "gitVersion": "v1.31.0-kube-emulator",
            "gitCommit": "",
            "gitTreeState": "clean",
            "buildDate": "2024-08-13T00:00:00Z",
            "goVersion": "go1.22.5",
            "compiler": "gc",
            "platform": "linux/amd64",
        }
        self.registry = ResourceRegistry(builtin_types())
        self.store = Store(self.registry, history_size)
        self.faults = FaultSet()
        self.log = RequestLog()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._sockets_lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        namespaces = self.registry.resolve("v1", "namespaces")
        for name in DEFAULT_NAMESPACES:
            self.store.create(namespaces, None, {"metadata": {"name": name}}, seed=True)
        self.registry.register(custom_type("profiling.io", "v1alpha1", "profilingconfigs", "ProfilingConfig"))

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> KubeEmulator:
        if self._server is not None:
            return self
        self._stopping.clear()
        self._server = _Server((self.host, self.port), make_handler(self))
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="kube-emulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and cut every open connection: watches, proxies and port-forwards end now."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        self.store.close_all_watches()
        with self._sockets_lock:
            sockets = list(self._sockets)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> KubeEmulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the emulator is not started")
        return f"http://{self.host}:{self.port}"

    def track_socket(self, sock: socket.socket) -> None:
        with self._sockets_lock:
            self._sockets.add(sock)

    def untrack_socket(self, sock: socket.socket) -> None:
        with self._sockets_lock:
            self._sockets.discard(sock)

    def sleep(self, seconds: float) -> None:
        """Wait, but no longer than until the emulator stops."""
        self._stopping.wait(seconds)

    # ----------------------------------------------------------------- clients

    def write_kubeconfig(self, path: str | Path, namespace: str = "default") -> Path:
        """Write a kubeconfig (token auth, plain HTTP) whose current context points here."""
        path = Path(path)
        name = "kube-emulator"
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": name, "cluster": {"server": self.url}}],
            "users": [{"name": name, "user": {"token": self.token}}],
            "contexts": [{"name": name, "context": {"cluster": name, "user": name, "namespace": namespace}}],
            "current-context": name,
            "preferences": {},
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def api_client(self) -> ApiClient:
        """A `kubernetes.client.ApiClient` configured for this emulator."""
        from kubernetes import client

        configuration = client.Configuration()
        configuration.host = self.url
        configuration.api_key = {"BearerToken": f"Bearer {self.token}"}
        return client.ApiClient(configuration)

    # ----------------------------------------------------------------- request log

    @property
    def requests(self) -> list[RequestRecord]:
        return self.log.snapshot()

    def count(self, method: str | None = None, path_regex: str | None = None, watch: bool | None = None) -> int:
        """How many answered requests match; `path_regex` is searched in the decoded path."""
        return self.log.count(method, path_regex, watch)

    def reset_requests(self) -> None:
        self.log.reset()

    # ----------------------------------------------------------------- kinds

    def resource(self, api_version: str, kind_or_plural: str) -> ResourceType:
        return self.registry.resolve(api_version, kind_or_plural)

    # ----------------------------------------------------------------- state without HTTP

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create like POST (AlreadyExists raises `ApiError`) but keep .status and create the
        namespace if missing. Watchers see ADDED."""
        rt = self.resource(obj["apiVersion"], obj["kind"])
        return self.store.create(rt, (obj.get("metadata") or {}).get("namespace"), obj, seed=True).copy()

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create or replace, status included; watchers see ADDED or MODIFIED (nothing if unchanged)."""
        rt = self.resource(obj["apiVersion"], obj["kind"])
        return self.store.seed(rt, obj).copy()

    def get(self, api_version: str, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        entry = self.store.find(self.resource(api_version, kind), namespace or "", name)
        return entry.copy() if entry is not None else None

    def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[dict[str, Any]]:
        result = self.store.list(
            self.resource(api_version, kind), namespace, label_selector=label_selector, field_selector=field_selector
        )
        return [entry.copy() for entry in result.entries]

    def delete(self, api_version: str, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        """Delete now (watchers see DELETED); None when there was nothing to delete."""
        from .status import ApiError

        try:
            return self.store.delete(self.resource(api_version, kind), namespace, name, internal=True).copy()
        except ApiError as exc:
            if exc.code == 404:
                return None
            raise

    def set_pod_metrics(
        self,
        namespace: str,
        name: str,
        containers: list[dict[str, Any]],
        window: str = "30s",
        timestamp: str | None = None,
        labels: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Upsert the metrics.k8s.io PodMetrics metrics-server would report for a pod: labels are
        copied from the pod when it exists (as metrics-server does) unless given."""
        if labels is None:
            pod = self.get("v1", "Pod", namespace, name)
            labels = ((pod or {}).get("metadata") or {}).get("labels") or {}
        stamp = timestamp or now_rfc3339()
        metrics = {
            "apiVersion": "metrics.k8s.io/v1beta1",
            "kind": "PodMetrics",
            "metadata": {"name": name, "namespace": namespace, "creationTimestamp": stamp, "labels": dict(labels)},
            "timestamp": stamp,
            "window": window,
            "containers": [{"name": c["name"], "usage": dict(c.get("usage") or {})} for c in containers],
        }
        return self.apply(metrics)

    def compact(self) -> None:
        """Forget the event history: watches and exact lists from any earlier resourceVersion get 410."""
        self.store.compact()

    @property
    def resource_version(self) -> str:
        return str(self.store.resource_version)

    # ----------------------------------------------------------------- waiting on clients

    def active_watches(self, plural: str | None = None) -> int:
        """Open watch streams, optionally only on one resource (by plural, e.g. "pods")."""
        return self.store.watch_count(plural)

    def wait_for_watches(self, count: int = 1, plural: str | None = None, timeout: float = 10.0) -> None:
        """Block until at least `count` watches are open; TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        while self.active_watches(plural) < count:
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"{self.active_watches(plural)} watches open on {plural or 'any resource'}, "
                    f"wanted {count} within {timeout}s"
                )
            self._stopping.wait(0.02)

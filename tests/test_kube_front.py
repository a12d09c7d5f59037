"""The front of the real API server (tests/kube_emulator), exercised only through the real
`kubernetes` client (CoreV1Api, CustomObjectsApi, watch.Watch, stream.portforward, ApiClient.call_api)
over HTTP: requests pass through to the session's kube-apiserver, and what the front adds (faults,
expired resourceVersions, chosen pod metrics, pods/proxy and pods/portforward to loopback pods, the
request log) behaves as kprof's tests rely on."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import urllib3
from kubernetes import client, watch
from kubernetes.client.rest import ApiException
from kubernetes.stream import portforward

from tests.kube_emulator import Fault, KubeFront
from tests.support.controlplane import ControlPlane

pytestmark = pytest.mark.timeout(60)


def status_body(exc: ApiException) -> dict[str, Any]:
    return json.loads(exc.body)


def names(pods: Any) -> list[str]:
    return sorted(p.metadata.name for p in pods.items)


# --------------------------------------------------------------------------- a pod's HTTP server


class _PodHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    gate: threading.Event

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if self.path.startswith("/stream"):
            # Two chunks with the test in between: the second is only written once the test has
            # read the first through the proxy, so a buffering proxy would never deliver either.
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(b"6\r\nfirst-\r\n")
            self.wfile.flush()
            released = self.gate.wait(10)
            tail = b"second" if released else b"gate-timeout"
            self.wfile.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(tail), tail))
            return
        body = json.dumps({"path": self.path, "auth": self.headers.get("Authorization")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Pod", "yes")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def pod_server() -> Iterator[tuple[int, threading.Event]]:
    """An HTTP server on 127.0.0.1 standing in for a pod; yields (port, gate for /stream)."""
    gate = threading.Event()
    handler = type("PodHandler", (_PodHandler,), {"gate": gate})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], gate
    finally:
        gate.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------- faults
def new_pod(name: str) -> dict[str, Any]:
    """A pod as a user creates it: Pending, no node, no IP."""
    return {"metadata": {"name": name}, "spec": {"containers": [{"name": "app", "image": "kprof/sample-app:test"}]}}


# --------------------------------------------------------------------------- passing through


def test_requests_pass_through_and_are_logged(
    kube_front: KubeFront, kube_api: client.ApiClient, kubeconfig_path: Any, kube_namespace: str
) -> None:
    from kubernetes import config

    listed = client.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig_path))).list_namespace()
    assert {"default", "kube-system", kube_namespace} <= {ns.metadata.name for ns in listed.items}
    core = client.CoreV1Api(kube_api)
    kube_front.reset_requests()
    core.list_namespaced_pod(kube_namespace, label_selector="app=web")
    core.list_pod_for_all_namespaces(limit=1)
    with pytest.raises(ApiException) as caught:
        core.read_namespaced_pod("missing", kube_namespace)
    assert status_body(caught.value)["message"] == 'pods "missing" not found'  # the real server's answer
    list(watch.Watch().stream(core.list_namespaced_pod, kube_namespace, timeout_seconds=1))
    assert kube_front.count() == 4
    assert kube_front.count("GET", r"/pods$", watch=False) == 2
    assert kube_front.count(watch=True) == 1
    assert kube_front.count(path_regex=r"/pods/missing$") == 1
    first = kube_front.requests[0]
    assert (first.method, first.path, first.query, first.status, first.is_watch) == (
        "GET",
        f"/api/v1/namespaces/{kube_namespace}/pods",
        {"labelSelector": "app=web"},
        200,
        False,
    )
    assert [r.status for r in kube_front.requests][2] == 404
    kube_front.reset_requests()
    assert kube_front.requests == []


# --------------------------------------------------------------------------- faults


def test_injected_500_does_not_write(kube_front: KubeFront, kube_api: client.ApiClient, kube_namespace: str) -> None:
    fault = kube_front.faults.add(Fault(method="POST", path=r"/pods$", status=500))
    core = client.CoreV1Api(kube_api)
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_pod(kube_namespace, new_pod("web"))
    assert caught.value.status == 500 and status_body(caught.value)["reason"] == "InternalError"
    assert names(core.list_namespaced_pod(kube_namespace)) == [] and fault.hits == 1
    core.create_namespaced_pod(kube_namespace, new_pod("web"))  # the fault is used up
    assert names(core.list_namespaced_pod(kube_namespace)) == ["web"]


def test_injected_429_carries_retry_after(
    kube_front: KubeFront, kube_api: client.ApiClient, kube_namespace: str
) -> None:
    kube_front.faults.add(Fault(method="POST", path=r"/leases$", status=429, retry_after=3))
    with pytest.raises(ApiException) as caught:
        client.CoordinationV1Api(kube_api).create_namespaced_lease(
            kube_namespace, client.V1Lease(metadata=client.V1ObjectMeta(name="l"))
        )
    assert caught.value.status == 429 and caught.value.headers["Retry-After"] == "3"
    assert status_body(caught.value)["details"]["retryAfterSeconds"] == 3
    # urllib3 retries idempotent requests answered 429/503 with Retry-After, so a single such
    # fault on a GET is absorbed; one without Retry-After reaches the caller.
    kube_front.reset_requests()
    absorbed = kube_front.faults.add(Fault(method="GET", path=r"/pods$", status=429, retry_after=0))
    assert client.CoreV1Api(kube_api).list_namespaced_pod(kube_namespace).items == []
    assert absorbed.hits == 1 and [r.status for r in kube_front.requests] == [429, 200]
    kube_front.faults.add(Fault(method="GET", path=r"/pods$", status=503))
    with pytest.raises(ApiException) as caught:
        client.CoreV1Api(kube_api).list_namespaced_pod(kube_namespace)
    assert caught.value.status == 503


def test_delay_fault_slows_then_serves(kube_front: KubeFront, kube_api: client.ApiClient, kube_namespace: str) -> None:
    fault = kube_front.faults.add(Fault(method="GET", path=r"/pods$", status=None, delay=0.3))
    started = time.monotonic()
    result = client.CoreV1Api(kube_api).list_namespaced_pod(kube_namespace)
    assert result.items == [] and fault.hits == 1
    assert time.monotonic() - started >= 0.3  # a lower bound only: the front waited before passing it on


def test_dropped_watch_cuts_the_stream(
    kube_front: KubeFront, kube_api: client.ApiClient, control_plane: ControlPlane, kube_namespace: str
) -> None:
    for name in ("a", "b", "c"):
        control_plane.run_pod(kube_namespace, name, port=6060)
    kube_front.faults.add(Fault(path=r"/pods$", status=None, drop_after_events=1))
    core = client.CoreV1Api(kube_api)
    received = []
    with pytest.raises(urllib3.exceptions.ProtocolError):
        for event in watch.Watch().stream(core.list_namespaced_pod, kube_namespace, timeout_seconds=5):
            received.append(event["object"].metadata.name)
    assert len(received) == 1
    # A plain list is not affected by a watch fault, and the next watch is whole again.
    assert len(core.list_namespaced_pod(kube_namespace).items) == 3
    assert len(list(watch.Watch().stream(core.list_namespaced_pod, kube_namespace, timeout_seconds=1))) == 3


def test_closed_connection_fault(kube_front: KubeFront, kube_api: client.ApiClient, kube_namespace: str) -> None:
    kube_front.faults.add(Fault(method="POST", path=r"/configmaps$", close_connection=True))
    core = client.CoreV1Api(kube_api)
    with pytest.raises(urllib3.exceptions.HTTPError):
        core.create_namespaced_config_map(kube_namespace, {"metadata": {"name": "state"}})
    assert kube_front.count("POST", r"/configmaps$") == 1
    assert kube_front.requests[-1].status == 0
    assert core.list_namespaced_config_map(kube_namespace, field_selector="metadata.name=state").items == []


def test_watch_from_a_compacted_resource_version_gets_410(
    kube_front: KubeFront, kube_api: client.ApiClient, control_plane: ControlPlane, kube_namespace: str
) -> None:
    core = client.CoreV1Api(kube_api)
    old = core.list_namespaced_pod(kube_namespace).metadata.resource_version
    control_plane.run_pod(kube_namespace, "after", port=6060)
    kube_front.compact()
    with pytest.raises(ApiException) as caught:
        list(watch.Watch().stream(core.list_namespaced_pod, kube_namespace, resource_version=old, timeout_seconds=5))
    assert caught.value.status == 410 and "too old resource version" in caught.value.reason
    # The raw answer is a 200 stream carrying a single ERROR event with the Expired Status.
    raw = core.list_namespaced_pod(kube_namespace, watch=True, resource_version=old, _preload_content=False)
    assert raw.status == 200
    [line] = raw.data.decode().splitlines()
    event = json.loads(line)
    assert event["type"] == "ERROR" and event["object"]["reason"] == "Expired" and event["object"]["code"] == 410
    assert event["object"]["message"] == f"too old resource version: {old} ({kube_front.compacted})"
    # From the current version a watch works again: the real server answers it.
    current = core.list_namespaced_pod(kube_namespace).metadata.resource_version
    stream = watch.Watch().stream(core.list_namespaced_pod, kube_namespace, resource_version=current, timeout_seconds=1)
    assert list(stream) == []


def test_stop_ends_open_watches(kube_front: KubeFront, kube_namespace: str) -> None:
    core = client.CoreV1Api(kube_front.api_client())
    outcome: list[str] = []

    def consume() -> None:
        try:
            list(watch.Watch().stream(core.list_namespaced_pod, kube_namespace, _request_timeout=30))
            outcome.append("ended")
        except Exception as exc:  # a cut stream surfaces as a protocol error
            outcome.append(type(exc).__name__)

    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()
    kube_front.wait_for_watches(1, "pods")
    kube_front.stop()
    consumer.join(10)
    assert not consumer.is_alive() and outcome


def test_chosen_pod_metrics_are_served_per_namespace_and_cluster_wide(
    kube_front: KubeFront, kube_api: client.ApiClient
) -> None:
    usage = {"app": {"cpu": "250m", "memory": "64Mi"}}
    for namespace, name in (("a", "web-1"), ("a", "db-1"), ("b", "web-2")):
        kube_front.set_pod_metrics(namespace, name, usage)
    custom = client.CustomObjectsApi(kube_api)
    listed = custom.list_namespaced_custom_object("metrics.k8s.io", "v1beta1", "a", "pods")
    assert listed["kind"] == "PodMetricsList"
    assert [i["metadata"]["name"] for i in listed["items"]] == ["web-1", "db-1"]
    item = listed["items"][0]
    assert item["containers"] == [{"name": "app", "usage": {"cpu": "250m", "memory": "64Mi"}}]
    assert item["window"] == "30s" and item["timestamp"].endswith("Z")
    everywhere = custom.list_cluster_custom_object("metrics.k8s.io", "v1beta1", "pods")
    assert [i["metadata"]["name"] for i in everywhere["items"]] == ["web-1", "db-1", "web-2"]


# --------------------------------------------------------------------------- pods/proxy and port-forward


def proxy_get(
    api: client.ApiClient, namespace: str, name: str, path: str, query: list[tuple[str, str]] | None = None
) -> Any:
    return api.call_api(
        "/api/v1/namespaces/{namespace}/pods/{name}/proxy/{path}",
        "GET",
        path_params={"namespace": namespace, "name": name, "path": path},
        query_params=query or [],
        auth_settings=["BearerToken"],
        _preload_content=False,
        _return_http_data_only=True,
        _request_timeout=15,
    )


def test_pod_proxy_forwards_and_streams(
    kube_api: client.ApiClient, control_plane: ControlPlane, kube_namespace: str, pod_server: tuple[int, threading.Event]
) -> None:
    port, gate = pod_server
    control_plane.run_pod(kube_namespace, "web", port=port)
    answer = proxy_get(kube_api, kube_namespace, f"web:{port}", "debug/pprof/heap", [("seconds", "1"), ("debug", "0")])
    assert answer.status == 200 and answer.headers["X-Pod"] == "yes"
    assert answer.headers["Content-Type"] == "application/json"
    forwarded = json.loads(answer.read())
    assert forwarded["path"] == "/debug/pprof/heap?seconds=1&debug=0"
    assert forwarded["auth"] is None  # the API token is not handed to the pod

    streamed = proxy_get(kube_api, kube_namespace, f"web:{port}", "stream")
    chunks = streamed.stream(None, decode_content=False)
    received = b""
    while len(received) < len(b"first-"):
        received += next(chunks)  # arrives while the pod still holds back the rest
    assert received == b"first-"
    gate.set()
    assert b"".join(chunks) == b"second"


def test_pod_proxy_errors(kube_api: client.ApiClient, control_plane: ControlPlane, kube_namespace: str) -> None:
    client.CoreV1Api(control_plane.api()).create_namespaced_pod(kube_namespace, new_pod("no-ip"))
    control_plane.run_pod(kube_namespace, "refusing", port=closed_port())
    for name, expected in ((f"missing:{closed_port()}", 404), ("no-ip:80", 503), (f"refusing:{closed_port()}", 503)):
        with pytest.raises(ApiException) as caught:
            proxy_get(kube_api, kube_namespace, name, "metrics")
        assert caught.value.status == expected, name
        assert status_body(caught.value)["kind"] == "Status"


def test_port_forward_round_trip(
    kube_api: client.ApiClient,
    kube_front: KubeFront,
    control_plane: ControlPlane,
    kube_namespace: str,
    pod_server: tuple[int, threading.Event],
) -> None:
    port, _ = pod_server
    control_plane.run_pod(kube_namespace, "web", port=port)
    core = client.CoreV1Api(kube_api)
    forward = portforward(core.connect_get_namespaced_pod_portforward, "web", kube_namespace, ports=str(port))
    sock = forward.socket(port)
    sock.settimeout(15)
    sock.sendall(b"GET /hello?x=1 HTTP/1.1\r\nHost: pod\r\nConnection: close\r\n\r\n")
    answer = b""
    while chunk := sock.recv(65536):
        answer += chunk
    sock.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert json.loads(body)["path"] == "/hello?x=1"
    assert forward.error(port) is None
    assert kube_front.count("GET", r"/pods/web/portforward$") == 1


def test_port_forward_to_a_closed_port_reports_the_error(
    kube_api: client.ApiClient, control_plane: ControlPlane, kube_namespace: str
) -> None:
    port = closed_port()
    control_plane.run_pod(kube_namespace, "web", port=port)
    forward = portforward(
        client.CoreV1Api(kube_api).connect_get_namespaced_pod_portforward, "web", kube_namespace, ports=str(port)
    )
    sock = forward.socket(port)
    sock.settimeout(15)
    assert sock.recv(1024) == b""
    assert "error forwarding port" in (forward.error(port) or "")



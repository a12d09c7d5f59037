"""Capturing profiles through the API server: `ProxyTransport` (pods/proxy) and
`PortForwardTransport` (pods/portforward) with the real kubernetes client through the front of the
real API server (tests/kube_emulator serves both subresources: no kubelet here, and the real
pods/proxy refuses loopback pod IPs), whose pod is the real Go sample app (pod IP 127.0.0.1, the
app's port in the annotation), a `bad_server` or a scripted TLS server; and against an API server
that never answers."""

from __future__ import annotations

import gzip
import threading
import time

import pytest
from kubernetes.client import ApiClient, Configuration

from kprof_lib.adapters.pprof.portforward import PortForwardTransport
from kprof_lib.adapters.pprof.proxy import ProxyTransport
from kprof_lib.execution.capture import fetch_profile, timeout_for
from kprof_lib.execution.ports import CaptureFailed, CaptureTimeout, CaptureTooLarge, ProfileRequest, TargetBusy
from tests.kube_emulator import Fault
from tests.support.badserver import VALID_PROFILE_GZ
from tests.support.goapp import run_go_tool_pprof
from tests.support.net import free_port
from tests.support.rawhttp import ScriptedServer, respond, server_tls_context

# The client's forwarding thread dying (ECONNRESET when a tunnel is closed carelessly) is a failure.
pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")

MiB = 1024 * 1024
BOUND_SECONDS = 30.0
POD = "checkout-7d9f6c-x2x4q"
TRANSPORTS = ["proxy", "portforward"]


def add_pod(plane, port: int) -> str:
    """The namespace of a new running pod POD whose pprof endpoint is 127.0.0.1:`port`."""
    namespace = plane.new_namespace("capture")
    plane.run_pod(namespace, POD, port=port, annotations={"profiling.io/enabled": "true",
                                                           "profiling.io/port": str(port)})
    return namespace


def pod_request(namespace: str, port: int, profile_type: str, *, base_path: str = "/debug/pprof",
                scheme: str = "http", pod: str = POD, cpu_seconds: int = 1) -> ProfileRequest:
    return ProfileRequest(
        namespace=namespace, pod=pod, pod_ip="127.0.0.1", scheme=scheme, port=port,
        base_path=base_path, profile_type=profile_type, cpu_seconds=cpu_seconds,
    )


def build(name: str, api_client: ApiClient, **kwargs):
    return ProxyTransport(api_client) if name == "proxy" else PortForwardTransport(api_client, **kwargs)


def port_forward_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("Kubernetes port forward proxy")]


def wait_until(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


@pytest.fixture(autouse=True)
def no_tunnel_left_open(request):
    """Every port-forward a test opened has ended (its forwarding thread closes the WebSocket),
    checked while the front still runs: stopping it would end them all anyway."""
    if "kube_front" in request.fixturenames:
        request.getfixturevalue("kube_front")
    yield
    assert wait_until(lambda: not port_forward_threads()), port_forward_threads()


# -- both transports ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", TRANSPORTS)
@pytest.mark.parametrize("profile_type", ["heap", "cpu", "goroutine"])
def test_profile_from_the_go_app_through_the_api_server(
    kube_front, control_plane, kube_api, go_app, tmp_path, name, profile_type
):
    ns = add_pod(control_plane, go_app.port)
    request = pod_request(ns, go_app.port, profile_type)

    data = fetch_profile(build(name, kube_api), request, timeout=timeout_for(request))

    assert gzip.decompress(data)
    (tmp_path / "profile.pb.gz").write_bytes(data)
    top = run_go_tool_pprof("-top", str(tmp_path / "profile.pb.gz"))
    assert top.returncode == 0, top.stderr
    subresource = "proxy" if name == "proxy" else "portforward"
    assert kube_front.count("GET", rf"/api/v1/namespaces/{ns}/pods/{POD}.*/{subresource}") == 1


@pytest.mark.parametrize("name", TRANSPORTS)
def test_pods_404_passes_through_as_http_404(control_plane, kube_api, go_app, name):
    ns = add_pod(control_plane, go_app.port)

    with pytest.raises(CaptureFailed, match=r"HTTP 404 Not Found from .*/debug/pprof/nope \(Content-Type text/plain"):
        fetch_profile(build(name, kube_api), pod_request(ns, go_app.port, "nope"), timeout=10)


@pytest.mark.parametrize("name", TRANSPORTS)
def test_busy_profiler_is_target_busy(control_plane, kube_api, bad_server, name):
    ns = add_pod(control_plane, bad_server.port)
    request = pod_request(ns, bad_server.port, "cpu", base_path="/busy/debug/pprof")

    with pytest.raises(TargetBusy, match="cpu profiling already in use"):
        fetch_profile(build(name, kube_api), request, timeout=10)


@pytest.mark.parametrize("name", TRANSPORTS)
def test_silent_pod_times_out(control_plane, kube_api, bad_server, name):
    ns = add_pod(control_plane, bad_server.port)
    request = pod_request(ns, bad_server.port, "heap", base_path="/hang/debug/pprof")
    started = time.monotonic()

    with pytest.raises(CaptureTimeout, match=r"timed out after 1.5 s"):
        fetch_profile(build(name, kube_api), request, timeout=1.5)

    assert time.monotonic() - started < BOUND_SECONDS


@pytest.mark.parametrize("name", TRANSPORTS)
def test_huge_profile_stops_at_the_cap(control_plane, kube_api, bad_server, name):
    ns = add_pod(control_plane, bad_server.port)
    request = pod_request(ns, bad_server.port, "heap", base_path="/huge/debug/pprof")

    with pytest.raises(CaptureTooLarge, match="profile exceeded 1 MiB cap"):
        fetch_profile(build(name, kube_api), request, timeout=10, max_bytes=MiB)


@pytest.mark.parametrize("name", TRANSPORTS)
def test_html_is_not_a_profile(control_plane, kube_api, bad_server, name):
    ns = add_pod(control_plane, bad_server.port)
    request = pod_request(ns, bad_server.port, "heap", base_path="/html/debug/pprof")

    with pytest.raises(CaptureFailed, match=r"non-pprof content \(Content-Type text/html; charset=utf-8, first 22 bytes"):
        fetch_profile(build(name, kube_api), request, timeout=10)


@pytest.mark.parametrize("name", TRANSPORTS)
def test_closed_pod_port_is_refused(control_plane, kube_api, name):
    port = free_port()
    ns = add_pod(control_plane, port)

    with pytest.raises(CaptureFailed, match="refused"):
        fetch_profile(build(name, kube_api), pod_request(ns, port, "heap"), timeout=10)


@pytest.mark.parametrize("name", TRANSPORTS)
def test_missing_pod_is_reported_with_the_api_servers_message(kube_api, name):
    with pytest.raises(CaptureFailed, match=r'API server answered .*: pods "ghost" not found'):
        fetch_profile(build(name, kube_api), pod_request("default", 6060, "heap", pod="ghost"), timeout=10)


@pytest.mark.parametrize("name", TRANSPORTS)
def test_https_pod_with_a_self_signed_certificate(control_plane, kube_api, tmp_path, name):
    server = ScriptedServer({"/debug/pprof/heap": respond(VALID_PROFILE_GZ)}, tls=server_tls_context(tmp_path))
    try:
        ns = add_pod(control_plane, server.port)
        transport = build(name, kube_api, tls_verify=False) if name == "portforward" else build(name, kube_api)

        data = fetch_profile(transport, pod_request(ns, server.port, "heap", scheme="https"), timeout=10)
    finally:
        server.stop()

    assert data == VALID_PROFILE_GZ


@pytest.mark.parametrize("name", TRANSPORTS)
def test_api_server_that_never_answers_times_out_after_one_attempt(bad_server, name):
    """No hidden retries: the client library's default would retry a timed-out GET three times."""
    api_client = ApiClient(Configuration(host=bad_server.url_for("hang")))
    started = time.monotonic()

    with pytest.raises(CaptureTimeout, match=r"timed out after 1.5 s"):
        fetch_profile(build(name, api_client), pod_request("default", 6060, "heap"), timeout=1.5)

    assert time.monotonic() - started < BOUND_SECONDS
    assert len(bad_server.requests) == 1


# -- pods/proxy ---------------------------------------------------------------------------------


def test_proxy_paths_name_the_scheme_only_for_https():
    assert ProxyTransport.resource_path(pod_request("default", 6060, "heap")) == (
        f"/api/v1/namespaces/default/pods/{POD}:6060/proxy/debug/pprof/heap"
    )
    https = pod_request("default", 8443, "cpu", scheme="https", base_path="/internal/pprof/")
    assert ProxyTransport.resource_path(https) == (
        f"/api/v1/namespaces/default/pods/https:{POD}:8443/proxy/internal/pprof/profile"
    )


def test_proxy_sends_the_cpu_seconds_as_a_query(control_plane, kube_api, bad_server):
    ns = add_pod(control_plane, bad_server.port)

    fetch_profile(ProxyTransport(kube_api), pod_request(ns, bad_server.port, "cpu", cpu_seconds=7), timeout=10)

    assert bad_server.requests == ["/debug/pprof/profile?seconds=7"]


def test_proxy_refused_by_rbac_reports_the_api_servers_message(kube_front, control_plane, kube_api, go_app):
    ns = add_pod(control_plane, go_app.port)
    kube_front.faults.add(Fault(path="/proxy/", status=403, message='pods "checkout" is forbidden: no pods/proxy'))

    with pytest.raises(CaptureFailed) as failure:
        fetch_profile(ProxyTransport(kube_api), pod_request(ns, go_app.port, "heap"), timeout=10)

    message = str(failure.value)
    assert message.startswith(f"API server answered HTTP 403 for pods/proxy of {ns}/{POD}")
    assert "no pods/proxy" in message


def test_proxy_connection_dropped_by_the_api_server_is_not_retried(kube_front, control_plane, kube_api, go_app):
    ns = add_pod(control_plane, go_app.port)
    kube_front.faults.add(Fault(path="/proxy/", close_connection=True, count=1))
    transport = ProxyTransport(kube_api)

    with pytest.raises(CaptureFailed, match="lost before a response"):
        fetch_profile(transport, pod_request(ns, go_app.port, "heap"), timeout=10)
    assert kube_front.count("GET", "/proxy/") == 1

    assert gzip.decompress(fetch_profile(transport, pod_request(ns, go_app.port, "heap"), timeout=10))


def test_proxy_to_an_api_server_that_is_not_there_is_refused():
    port = free_port()
    transport = ProxyTransport(ApiClient(Configuration(host=f"http://127.0.0.1:{port}")))

    with pytest.raises(CaptureFailed, match=f"connection refused by API server 127.0.0.1:{port}"):
        fetch_profile(transport, pod_request("default", 6060, "heap"), timeout=5)


# -- pods/portforward ---------------------------------------------------------------------------


def test_port_forward_is_closed_after_every_capture(control_plane, kube_api, go_app):
    ns = add_pod(control_plane, go_app.port)
    transport = PortForwardTransport(kube_api)

    fetch_profile(transport, pod_request(ns, go_app.port, "heap"), timeout=10)
    with pytest.raises(CaptureFailed):
        fetch_profile(transport, pod_request(ns, go_app.port, "nope"), timeout=10)

    assert wait_until(lambda: not port_forward_threads()), port_forward_threads()


def test_port_forward_https_with_verification_on_refuses_a_self_signed_pod(control_plane, kube_api, tmp_path):
    server = ScriptedServer({"/debug/pprof/heap": respond(VALID_PROFILE_GZ)}, tls=server_tls_context(tmp_path))
    try:
        ns = add_pod(control_plane, server.port)
        with pytest.raises(CaptureFailed) as failure:
            request = pod_request(ns, server.port, "heap", scheme="https")
            fetch_profile(PortForwardTransport(kube_api), request, timeout=10)
    finally:
        server.stop()

    assert "certificate verify failed" in str(failure.value)
    assert "tls_verify=False" in str(failure.value)

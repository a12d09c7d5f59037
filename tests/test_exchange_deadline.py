"""One deadline for the whole exchange, in every transport: a server that trickles its status line
and headers a byte at a time (each read arrives well within any socket timeout) is cut at the
capture's deadline, directly, as the API server of the proxy transport, and as a pod behind a
port-forward."""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest
from kubernetes.client import ApiClient, Configuration

from kprof_lib.adapters.pprof.direct import DirectTransport
from kprof_lib.adapters.pprof.portforward import PortForwardTransport
from kprof_lib.adapters.pprof.proxy import ProxyTransport
from kprof_lib.execution.capture import fetch_profile
from kprof_lib.execution.ports import CaptureError, CaptureTimeout, ProfileRequest
from tests.support.rawhttp import ScriptedServer

TIMEOUT = 1.5
# Far below what trickling the whole head takes (about 30 s), far above the deadline.
BOUND_SECONDS = 12.0
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 2\r\n\r\n\x1f\x8b"


class Trickler:
    """Sends HEAD one byte every 0.3 s until done or stopped."""

    def __init__(self) -> None:
        self.stopping = threading.Event()

    def __call__(self, connection, _path):
        for byte in HEAD:
            if self.stopping.wait(0.3):
                return
            connection.sendall(bytes([byte]))


@pytest.fixture
def trickling():
    trickle = Trickler()
    proxy_path = "/api/v1/namespaces/default/pods/app-1:{port}/proxy/debug/pprof/heap"
    server = ScriptedServer({"/debug/pprof/heap": trickle})
    server.scripts[proxy_path.format(port=server.port)] = trickle
    try:
        yield server
    finally:
        trickle.stopping.set()
        server.stop()


def request_for(port: int, namespace: str = "default") -> ProfileRequest:
    return ProfileRequest(namespace=namespace, pod="app-1", pod_ip="127.0.0.1", scheme="http", port=port,
                          base_path="/debug/pprof", profile_type="heap")


def assert_cut_at_the_deadline(transport, request):
    started = time.monotonic()
    with pytest.raises(CaptureTimeout, match=f"timed out after {TIMEOUT:g} s"):
        fetch_profile(transport, request, timeout=TIMEOUT)
    elapsed = time.monotonic() - started
    assert elapsed < BOUND_SECONDS, f"the capture took {elapsed:.1f} s"


def test_direct_cuts_trickled_headers_at_the_deadline(trickling):
    assert_cut_at_the_deadline(DirectTransport(), request_for(trickling.port))


def test_direct_connection_is_usable_after_a_cut_exchange(trickling, go_app):
    transport = DirectTransport()
    assert_cut_at_the_deadline(transport, request_for(trickling.port))
    # The watchdog cut only that exchange: the next capture through the same pools works.
    assert fetch_profile(transport, request_for(go_app.port), timeout=10)[:2] == b"\x1f\x8b"


def test_proxy_cuts_an_api_server_that_trickles_its_headers(trickling):
    configuration = Configuration(host=f"http://127.0.0.1:{trickling.port}")
    with ApiClient(configuration) as api:
        assert_cut_at_the_deadline(ProxyTransport(api), request_for(trickling.port))


def test_portforward_cuts_a_pod_that_trickles_its_headers(control_plane, kube_namespace, kube_api, trickling):
    control_plane.run_pod(kube_namespace, "app-1", port=trickling.port,
                          annotations={"profiling.io/enabled": "true", "profiling.io/port": str(trickling.port)})
    assert_cut_at_the_deadline(PortForwardTransport(kube_api), request_for(trickling.port, namespace=kube_namespace))


def test_abort_cuts_every_capture_of_a_transport_at_once(go_app):
    """`abort()` (a process stopping) cuts the exchanges in flight well before their deadlines,
    and any started afterwards at once; a CPU profile of the real Go app is the capture cut."""
    transport = DirectTransport()
    cpu = ProfileRequest(namespace="local", pod="app", pod_ip="127.0.0.1", scheme="http", port=go_app.port,
                         base_path="/debug/pprof", profile_type="cpu", cpu_seconds=20)
    errors: list[Exception] = []

    def fetch() -> None:
        try:
            fetch_profile(transport, cpu, timeout=40)
        except Exception as error:  # the cut is the expected outcome
            errors.append(error)

    thread = threading.Thread(target=fetch)
    thread.start()
    time.sleep(1.0)
    cut = time.monotonic()
    transport.abort()
    thread.join(5)
    assert not thread.is_alive() and time.monotonic() - cut < 0.5
    assert len(errors) == 1 and isinstance(errors[0], CaptureError), errors
    started = time.monotonic()
    heap = dataclasses.replace(cpu, profile_type="heap")
    with pytest.raises(CaptureError):
        fetch_profile(transport, heap, timeout=40)
    assert time.monotonic() - started < 0.5

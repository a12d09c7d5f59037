"""The goroutine count reader (kprof_lib.adapters.pprof.goroutines) against the real Go sample app
whose goroutines leak, over the three transports the captures use (direct; pods/proxy and
pods/portforward through the front of the real API server), and against servers that answer
badly: a body that never ends is cut after its first line's bound, errors name the target, a
batch of many pods keeps to its concurrency and its deadline. Then which pods a spec's counts are
read for."""

from __future__ import annotations

import time

import pytest

from kprof_lib.adapters.pprof import goroutines, make_transport
from kprof_lib.adapters.pprof.portforward import PortForwardTransport
from kprof_lib.adapters.pprof.proxy import ProxyTransport
from kprof_lib.execution.ports import CaptureError, CaptureTimeout
from kprof_lib.spec.validation import validate_spec
from kprof_lib.state import optin
from tests.support.badserver import BadServer
from tests.support.goapp import GoApp
from tests.support.transports import CountingTransport

POD = "leaky-5d8f7c9b4-kx2lp"
HTTP = optin.Endpoint("http", 0, "/debug/pprof")


def request_to(port: int, namespace: str = "shop", pod: str = POD, path: str = "/debug/pprof"):
    return goroutines.request_for(namespace, pod, "127.0.0.1", optin.Endpoint("http", port, path))


def test_the_count_is_the_first_line_of_the_text_profile_and_follows_a_leak(go_app: GoApp):
    direct = make_transport("direct")
    request = request_to(go_app.port)
    assert request.target == f"http://127.0.0.1:{go_app.port}/debug/pprof/goroutine?debug=1"
    before = goroutines.read_count(direct, request)
    assert before == go_app.stats()["goroutines"] or abs(before - go_app.stats()["goroutines"]) <= 2

    go_app.leak(goroutines_per_second=500, seconds=1)
    deadline = time.monotonic() + 10
    while go_app.stats()["leakedGoroutines"] < 490 and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.3)
    leaked = go_app.stats()["leakedGoroutines"]
    assert goroutines.read_count(direct, request) >= before + leaked - 2


@pytest.mark.parametrize("name", ["proxy", "portforward"])
def test_the_count_through_the_api_server(kube_front, control_plane, kube_api, go_app, name):
    namespace = control_plane.new_namespace("goroutines")
    control_plane.run_pod(namespace, POD, port=go_app.port)
    go_app.leak(goroutines_per_second=300, seconds=1)
    time.sleep(1.5)
    transport = ProxyTransport(kube_api) if name == "proxy" else PortForwardTransport(kube_api)

    count = goroutines.read_count(transport, request_to(go_app.port, namespace))

    assert count >= go_app.stats()["leakedGoroutines"] >= 250
    subresource = "proxy" if name == "proxy" else "portforward"
    assert kube_front.count("GET", rf"/api/v1/namespaces/{namespace}/pods/{POD}.*/{subresource}") == 1
    if name == "proxy":
        [sent] = [r for r in kube_front.requests if "/proxy/" in r.path]
        assert sent.path.endswith("/proxy/debug/pprof/goroutine") and sent.query == {"debug": "1"}, sent


def test_a_body_that_never_ends_is_cut_after_the_first_lines_bound(bad_server: BadServer):
    bad_server.configure(mode="huge", huge_bytes=1 << 30)
    transport = CountingTransport(make_transport("direct"))
    started = time.monotonic()
    with pytest.raises(goroutines.CountError, match=r"did not answer with 'goroutine profile: total N'") as failure:
        goroutines.read_count(transport, request_to(bad_server.port))
    assert f"127.0.0.1:{bad_server.port}/debug/pprof/goroutine?debug=1" in str(failure.value)
    # One chunk or two, never the gigabyte: the body is not read past the line's bound.
    assert transport.bytes_read <= 256 * 1024, transport.bytes_read
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (200, b"goroutine profile: total 7\n1 @ 0x1\n", 7),
        (200, b"goroutine profile: total 123456\r\n", 123456),
        (200, b"goroutine profile: total 3", 3),  # the whole body is that line
        (200, b"<html>login</html>\n", "did not answer with 'goroutine profile: total N' (first line of 18 bytes"),
        (200, b"goroutine profile: total -1\n", "did not answer"),
        (200, b"\n", "first line of 0 bytes"),
        (404, b"404 page not found\n", "HTTP 404 Not Found from http://127.0.0.1:"),
    ],
)
def test_answers_and_what_they_give(bad_server: BadServer, status, body, expected):
    bad_server.configure(mode="status", status=status, body=body)
    request = request_to(bad_server.port)
    if isinstance(expected, int):
        assert goroutines.read_count(make_transport("direct"), request) == expected
    else:
        with pytest.raises(goroutines.CountError) as failure:
            goroutines.read_count(make_transport("direct"), request)
        assert expected in str(failure.value)
    assert bad_server.requests[-1] == "/debug/pprof/goroutine?debug=1"


def test_a_pod_that_does_not_answer_times_out_and_one_that_is_gone_is_refused(bad_server: BadServer):
    bad_server.configure(mode="hang")
    started = time.monotonic()
    with pytest.raises(CaptureTimeout):
        goroutines.read_count(make_transport("direct"), request_to(bad_server.port), timeout=0.5)
    assert time.monotonic() - started < 3
    with pytest.raises(CaptureError, match="refused"):
        goroutines.read_count(make_transport("direct"), request_to(1))


def test_a_batch_keeps_to_its_concurrency_and_its_deadline(go_app: GoApp, caplog):
    """20 pods at the Go app, 5 at a server that hangs: 3 reads at a time; the hanging ones end by
    the batch's deadline, the others are counted; the failures are logged once, in one line."""
    hanging = BadServer(mode="hang")
    try:
        transport = CountingTransport(make_transport("direct"))
        requests = [request_to(go_app.port, pod=f"good-{i}") for i in range(20)]
        requests += [request_to(hanging.port, pod=f"hung-{i}") for i in range(5)]
        reader = goroutines.GoroutineReader(concurrency=3, timeout=30)
        started = time.monotonic()
        with caplog.at_level("DEBUG", logger="kprof.goroutines"):
            counts = reader.read(transport, requests, within=2.0, label="shop/leaks")
            took = time.monotonic() - started
            again = reader.read(transport, requests, within=1.0, label="shop/leaks")
        assert sorted(counts) == sorted(f"shop/good-{i}" for i in range(20))
        assert all(count >= 4 for count in counts.values())
        assert transport.most_in_flight == 3
        assert took < 5, took
        assert sorted(again) == sorted(counts)
        warnings = [r for r in caplog.records if r.levelname == "WARNING"]
        [warning] = warnings  # the same pods failing again: said at debug level only
        assert warning.getMessage().startswith("goroutine count not read for 5 pod(s), e.g. shop/hung-0: ")
        assert warning.config == "shop/leaks" and warning.pods == [f"shop/hung-{i}" for i in range(5)]
        reader.close()
    finally:
        hanging.stop()


def test_counts_are_read_for_the_selected_profilable_pods_only():
    spec = validate_spec({"selector": {"namespace": "shop", "labelSelector": {"matchLabels": {"tier": "backend"}}}})

    def pod(name, *, namespace="shop", tier="backend", enabled="true", phase="Running", ip="10.0.0.1", **more):
        annotations = {"profiling.io/enabled": enabled, **more}
        return {
            "metadata": {"name": name, "namespace": namespace, "labels": {"tier": tier}, "annotations": annotations},
            "status": {"phase": phase, "podIP": ip},
        }

    pods = [
        pod("good", **{"profiling.io/port": "7070", "profiling.io/path": "/pprof", "profiling.io/scheme": "https"}),
        pod("elsewhere", namespace="web"),
        pod("frontend", tier="frontend"),
        pod("not-opted-in", enabled="false"),
        pod("pending", phase="Pending"),
        pod("no-ip", ip=""),
        pod("bad-port", **{"profiling.io/port": "http"}),
        {**pod("leaving"), "metadata": {**pod("leaving")["metadata"], "deletionTimestamp": "2026-12-01T10:00:00Z"}},
    ]
    [request] = goroutines.requests_for(spec, pods)
    assert (request.namespace, request.pod, request.target) == (
        "shop",
        "good",
        "https://10.0.0.1:7070/pprof/goroutine?debug=1",
    )

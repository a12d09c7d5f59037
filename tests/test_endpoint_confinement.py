"""A pod owner's annotations reach their own pod's pprof endpoint and nothing else: the values
reconcile accepts (path, port, scheme), the check every transport makes on the path it finally
sends, and messages that never quote what a target answered."""

from __future__ import annotations

import pytest

from kprof_lib.adapters.pprof.direct import DirectTransport
from kprof_lib.adapters.pprof.portforward import PortForwardTransport
from kprof_lib.adapters.pprof.proxy import ProxyTransport
from kprof_lib.execution.capture import fetch_profile
from kprof_lib.execution.ports import CaptureFailed, ProfileRequest
from kprof_lib.planning.reconcile import reconcile
from tests.support.pods import pod
from tests.support.rawhttp import ScriptedServer, respond

SPEC = {"onDemand": {"enabled": True, "intervalSeconds": 300}, "profileTypes": ["heap"]}


def decide(annotations: dict[str, str]):
    target = pod("app-1", "shop", annotations={"profiling.io/enabled": "true", **annotations})
    [result] = reconcile(SPEC, {"now": "2026-11-25T10:00:00Z", "pods": [target]}).results
    return result


@pytest.mark.parametrize(
    "path",
    [
        "/..",
        "/debug/../../api/v1/namespaces/other/pods/x:8080/proxy/debug/pprof",
        "/debug/./pprof",
        "/%2e%2e/secret",
        "/debug%2fpprof",
        "/debug//pprof",
        "//debug/pprof",
        "/debug/pprof\n",
        "/debug/pprof\x00",
        "/debug pprof",
        "/debug/pprof?x=1",
        "/debug/pprof#frag",
        "debug/pprof",
        "",
        "/" + "a" * 100_000,
    ],
)
def test_a_path_that_could_leave_the_pod_is_an_invalid_annotation(path):
    result = decide({"profiling.io/path": path})

    assert (result.action, result.reason) == ("none", "invalid-annotation")
    assert result.message.startswith("invalid annotations: profiling.io/path=")
    assert len(result.message) < 400, "a long value is cut, not echoed whole"


@pytest.mark.parametrize("path", ["/debug/pprof", "/debug/pprof/", "/", "/internal/v1.2/pprof_x-y~z"])
def test_ordinary_paths_are_accepted(path):
    result = decide({"profiling.io/path": path})

    assert result.action == "capture", result
    assert result.endpoint.path == (path.rstrip("/") or "/")


@pytest.mark.parametrize("port", ["9" * 5000, "0", "65536", "+80", " 80", "80\n", "٨٠", "6060.0", "-1", ""])
def test_a_bad_port_is_an_invalid_annotation_and_never_raises(port):
    result = decide({"profiling.io/port": port})

    assert (result.action, result.reason) == ("none", "invalid-annotation")
    assert result.message.startswith("invalid annotations: profiling.io/port=")
    assert len(result.message) < 400


@pytest.mark.parametrize("scheme", ["HTTP", "ftp", "http\n", "https ", "x" * 10_000])
def test_a_bad_scheme_is_an_invalid_annotation(scheme):
    result = decide({"profiling.io/scheme": scheme})

    assert (result.action, result.reason) == ("none", "invalid-annotation")
    assert "profiling.io/scheme=" in result.message and len(result.message) < 400


# -- the path a transport finally sends ------------------------------------------------------

ESCAPE = "/debug/../../../../../api/v1/namespaces/{other}/pods/victim:{port}/proxy/debug/pprof"


def request_for(port: int, base_path: str, *, namespace: str = "default", pod: str = "attacker") -> ProfileRequest:
    # A plan made by a library caller can carry any path: the transports check it again.
    return ProfileRequest(
        namespace=namespace, pod=pod, pod_ip="127.0.0.1", scheme="http", port=port,
        base_path=base_path, profile_type="heap",
    )


def test_proxy_refuses_a_path_that_reaches_another_pod(kube_front, control_plane, kube_api, go_app):
    annotations = {"profiling.io/enabled": "true", "profiling.io/port": str(go_app.port)}
    mine, other = control_plane.new_namespace("attacker"), control_plane.new_namespace("other")
    control_plane.run_pod(mine, "attacker", port=go_app.port, annotations=annotations)
    control_plane.run_pod(other, "victim", port=go_app.port, annotations=annotations)
    request = request_for(go_app.port, ESCAPE.format(other=other, port=go_app.port), namespace=mine)

    with pytest.raises(CaptureFailed, match=rf"refused to fetch .*: its path would leave /api/v1/namespaces/{mine}/pods/attacker"):
        fetch_profile(ProxyTransport(kube_api), request, timeout=10)

    assert kube_front.count("GET", rf"/api/v1/namespaces/{other}/") == 0, "nothing was asked of the other pod"


@pytest.mark.parametrize("name", ["direct", "portforward"])
def test_direct_and_portforward_refuse_a_path_that_leaves_the_base_path(control_plane, kube_namespace, kube_api, name):
    with ScriptedServer({"/admin/heap": respond(b"\x1f\x8b")}) as server:
        control_plane.run_pod(kube_namespace, "attacker", port=server.port,
                              annotations={"profiling.io/enabled": "true", "profiling.io/port": str(server.port)})
        transport = DirectTransport() if name == "direct" else PortForwardTransport(kube_api)
        for base in ("/debug/pprof/../../admin", "/debug/%2e%2e/%2e%2e/admin"):
            with pytest.raises(CaptureFailed, match="refused to fetch"):
                fetch_profile(transport, request_for(server.port, base, namespace=kube_namespace), timeout=10)
        assert server.requests == [], "nothing was sent"

"""The Kubernetes API emulator, exercised only through the real `kubernetes` client (CoreV1Api,
CustomObjectsApi, CoordinationV1Api, watch.Watch, stream.portforward, ApiClient.call_api) over
HTTP: the behaviours kprof's operator depends on must match kube-apiserver's."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import urllib3
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException
from kubernetes.stream import portforward

from tests.kube_emulator import Fault, KubeEmulator, make_pod

pytestmark = pytest.mark.timeout(60)

GROUP, VERSION, PLURAL = "profiling.io", "v1alpha1", "profilingconfigs"


def status_body(exc: ApiException) -> dict[str, Any]:
    return json.loads(exc.body)


def profiling_config(name: str, spec: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ProfilingConfig",
        "metadata": {"name": name},
        "spec": spec if spec is not None else {"profiles": ["heap"]},
    }


def get_json(api: client.ApiClient, path: str) -> Any:
    return api.call_api(
        path, "GET", auth_settings=["BearerToken"], response_types_map={200: "object"}, _return_http_data_only=True
    )


def collect_events(stream: Iterator[dict[str, Any]], until: int) -> list[dict[str, Any]]:
    events = []
    for event in stream:
        events.append(event)
        if len(events) >= until:
            break
    return events


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


# --------------------------------------------------------------------------- discovery and auth


def test_kubeconfig_works_and_wrong_token_gets_401(kube_emulator: KubeEmulator, kubeconfig_path: Path) -> None:
    api_client = config.new_client_from_config(config_file=str(kubeconfig_path))
    names = [ns.metadata.name for ns in client.CoreV1Api(api_client).list_namespace().items]
    assert "default" in names and "kube-system" in names

    configuration = client.Configuration()
    configuration.host = kube_emulator.url
    configuration.api_key = {"BearerToken": "Bearer wrong"}
    with pytest.raises(ApiException) as caught:
        client.CoreV1Api(client.ApiClient(configuration)).list_namespaced_pod("default")
    assert caught.value.status == 401


# --------------------------------------------------------------------------- CRUD


def test_pod_crud_answers_like_the_api_server(kube_api: client.ApiClient, kube_emulator: KubeEmulator) -> None:
    core = client.CoreV1Api(kube_api)
    created, code, _ = core.create_namespaced_pod_with_http_info("default", make_pod("web", labels={"app": "web"}))
    assert code == 201
    assert created.metadata.uid and created.metadata.resource_version and created.metadata.creation_timestamp
    assert created.status.phase == "Pending"  # status is reset on create, as kube does

    with pytest.raises(ApiException) as caught:
        core.create_namespaced_pod("default", make_pod("web"))
    assert caught.value.status == 409 and status_body(caught.value)["reason"] == "AlreadyExists"

    with pytest.raises(ApiException) as caught:
        core.read_namespaced_pod("missing", "default")
    body = status_body(caught.value)
    assert (caught.value.status, body["kind"], body["reason"]) == (404, "Status", "NotFound")
    assert body["message"] == 'pods "missing" not found'

    generated = core.create_namespaced_pod(
        "default", {"metadata": {"generateName": "worker-"}, "spec": {"containers": []}}
    )
    assert generated.metadata.name.startswith("worker-") and len(generated.metadata.name) == len("worker-") + 5

    with pytest.raises(ApiException) as caught:
        core.create_namespaced_pod("default", {"metadata": {}, "spec": {"containers": []}})
    assert caught.value.status == 422 and status_body(caught.value)["reason"] == "Invalid"

    with pytest.raises(ApiException) as caught:
        core.create_namespaced_pod("nowhere", make_pod("web", namespace="nowhere"))
    assert caught.value.status == 404 and status_body(caught.value)["details"]["kind"] == "namespaces"

    stale = created.metadata.resource_version
    core.patch_namespaced_pod("web", "default", {"metadata": {"labels": {"tier": "front"}}})
    replacement = core.read_namespaced_pod("web", "default")
    replacement.metadata.resource_version = stale
    with pytest.raises(ApiException) as caught:
        core.replace_namespaced_pod("web", "default", replacement)
    assert caught.value.status == 409 and status_body(caught.value)["reason"] == "Conflict"
    replacement.metadata.resource_version = None  # pods accept unconditional updates
    assert core.replace_namespaced_pod("web", "default", replacement).metadata.labels == {"app": "web", "tier": "front"}

    deleted = core.delete_namespaced_pod("web", "default")
    assert deleted.metadata.name == "web"  # pods answer a delete with the pod
    assert kube_emulator.get("v1", "Pod", "default", "web") is None
    config_map = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="state"), data={"k": "v"})
    core.create_namespaced_config_map("default", config_map)
    assert core.delete_namespaced_config_map("state", "default").status == "Success"  # others with a Status


def test_no_op_patch_keeps_the_resource_version(kube_api: client.ApiClient) -> None:
    core = client.CoreV1Api(kube_api)
    core.create_namespaced_config_map("default", {"metadata": {"name": "state"}, "data": {"k": "v"}})
    before = core.read_namespaced_config_map("state", "default").metadata.resource_version
    after = core.patch_namespaced_config_map("state", "default", {"data": {"k": "v"}}).metadata.resource_version
    assert after == before
    changed = core.patch_namespaced_config_map("state", "default", {"data": {"k": "w"}}).metadata.resource_version
    assert int(changed) > int(before)


def test_label_and_field_selectors_filter_lists(kube_api: client.ApiClient, kube_emulator: KubeEmulator) -> None:
    pods = {
        "a": {"app": "web", "tier": "front"},
        "b": {"app": "web", "tier": "back"},
        "c": {"app": "db"},
        "d": {},
    }
    for name, labels in pods.items():
        kube_emulator.create(make_pod(name, labels=labels, phase="Failed" if name == "d" else "Running"))
    kube_emulator.create(make_pod("e", namespace="other", labels={"app": "web"}))
    core = client.CoreV1Api(kube_api)

    def names(selector: str, field: str | None = None, namespace: str | None = "default") -> list[str]:
        if namespace is None:
            result = core.list_pod_for_all_namespaces(label_selector=selector, field_selector=field or "")
        else:
            result = core.list_namespaced_pod(namespace, label_selector=selector, field_selector=field or "")
        return [p.metadata.name for p in result.items]

    assert names("app=web") == ["a", "b"]
    assert names("app==web,tier=front") == ["a"]
    assert names("app!=web") == ["c", "d"]  # != matches pods without the label
    assert names("tier in (front,back)") == ["a", "b"]
    assert names("app notin (web)") == ["c", "d"]
    assert names("tier") == ["a", "b"]
    assert names("!tier") == ["c", "d"]
    assert names("", "status.phase!=Failed") == ["a", "b", "c"]
    assert names("", "metadata.name=c") == ["c"]
    assert names("app=web", namespace=None) == ["a", "b", "e"]
    assert names("", "metadata.namespace=other", namespace=None) == ["e"]
    with pytest.raises(ApiException) as caught:
        names("app in web")
    assert caught.value.status == 400
    with pytest.raises(ApiException) as caught:
        names("", "spec.bogus=x")
    assert caught.value.status == 400


def test_list_pages_with_limit_and_continue(kube_api: client.ApiClient, kube_emulator: KubeEmulator) -> None:
    for index in range(5):
        kube_emulator.create(make_pod(f"p{index}"))
    core = client.CoreV1Api(kube_api)
    first = core.list_namespaced_pod("default", limit=2)
    assert [p.metadata.name for p in first.items] == ["p0", "p1"]
    assert first.metadata.remaining_item_count == 3
    second = core.list_namespaced_pod("default", limit=2, _continue=first.metadata._continue)
    third = core.list_namespaced_pod("default", limit=2, _continue=second.metadata._continue)
    assert [p.metadata.name for p in second.items + third.items] == ["p2", "p3", "p4"]
    assert third.metadata._continue is None
    assert second.metadata.resource_version == first.metadata.resource_version

    kube_emulator.create(make_pod("p5"))  # a write after the first page, then compacted away
    kube_emulator.compact()
    with pytest.raises(ApiException) as caught:
        core.list_namespaced_pod("default", limit=2, _continue=first.metadata._continue)
    assert caught.value.status == 410 and status_body(caught.value)["reason"] == "Expired"


# --------------------------------------------------------------------------- watches


def test_watch_from_list_resource_version_replays_changes_in_order(
    kube_api: client.ApiClient, kube_emulator: KubeEmulator
) -> None:
    core = client.CoreV1Api(kube_api)
    kube_emulator.create(make_pod("old"))
    listed = core.list_namespaced_pod("default").metadata.resource_version
    core.create_namespaced_pod("default", make_pod("web"))
    core.patch_namespaced_pod("web", "default", {"metadata": {"labels": {"v": "2"}}})
    core.delete_namespaced_pod("web", "default")
    events = collect_events(
        watch.Watch().stream(core.list_namespaced_pod, "default", resource_version=listed, timeout_seconds=5), 3
    )
    assert [(e["type"], e["object"].metadata.name) for e in events] == [
        ("ADDED", "web"),
        ("MODIFIED", "web"),
        ("DELETED", "web"),
    ]
    versions = [int(e["object"].metadata.resource_version) for e in events]
    assert versions == sorted(versions) and versions[0] > int(listed)


def test_watch_sees_live_changes(kube_api: client.ApiClient, kube_emulator: KubeEmulator) -> None:
    core = client.CoreV1Api(kube_api)
    listed = core.list_namespaced_pod("default").metadata.resource_version
    received: list[tuple[str, str]] = []
    failures: list[BaseException] = []

    def consume() -> None:
        try:
            stream = watch.Watch().stream(
                core.list_namespaced_pod, "default", resource_version=listed, timeout_seconds=20
            )
            for event in collect_events(stream, 3):
                received.append((event["type"], event["object"].metadata.name))
        except BaseException as exc:  # reported in the main thread
            failures.append(exc)

    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()
    kube_emulator.wait_for_watches(1, "pods")
    kube_emulator.apply(make_pod("live"))
    kube_emulator.apply(make_pod("live", labels={"changed": "yes"}))
    kube_emulator.delete("v1", "Pod", "default", "live")
    consumer.join(15)
    assert not failures and received == [("ADDED", "live"), ("MODIFIED", "live"), ("DELETED", "live")]


def test_watch_without_resource_version_starts_with_current_objects(
    kube_api: client.ApiClient, kube_emulator: KubeEmulator
) -> None:
    kube_emulator.create(make_pod("b"))
    kube_emulator.create(make_pod("a"))
    kube_emulator.create(make_pod("elsewhere", namespace="other"))
    core = client.CoreV1Api(kube_api)
    events = list(watch.Watch().stream(core.list_namespaced_pod, "default", timeout_seconds=1))
    assert [(e["type"], e["object"].metadata.name) for e in events] == [("ADDED", "a"), ("ADDED", "b")]


def test_watch_with_selector_reports_objects_entering_and_leaving(
    kube_api: client.ApiClient, kube_emulator: KubeEmulator
) -> None:
    core = client.CoreV1Api(kube_api)
    start = kube_emulator.resource_version
    kube_emulator.apply(make_pod("p", labels={"app": "other"}))
    kube_emulator.apply(make_pod("p", labels={"app": "web"}))
    kube_emulator.apply(make_pod("p", labels={"app": "web", "x": "1"}))
    kube_emulator.apply(make_pod("p", labels={"app": "other"}))
    stream = watch.Watch().stream(
        core.list_namespaced_pod, "default", label_selector="app=web", resource_version=start, timeout_seconds=1
    )
    assert [e["type"] for e in stream] == ["ADDED", "MODIFIED", "DELETED"]


def test_timeout_seconds_ends_the_watch_cleanly(kube_api: client.ApiClient, kube_emulator: KubeEmulator) -> None:
    core = client.CoreV1Api(kube_api)
    # The read timeout bounds the test if the stream were never closed.
    events = list(watch.Watch().stream(core.list_namespaced_pod, "default", timeout_seconds=1, _request_timeout=15))
    assert events == []
    assert kube_emulator.count("GET", r"/pods$", watch=True) == 1
    assert kube_emulator.active_watches("pods") == 0


def test_bookmarks_arrive_when_allowed(kube_api: client.ApiClient, kube_emulator: KubeEmulator) -> None:
    kube_emulator.bookmark_interval = 0.2
    core = client.CoreV1Api(kube_api)
    listed = core.list_namespaced_pod("default").metadata.resource_version
    events = list(
        watch.Watch().stream(
            core.list_namespaced_pod,
            "default",
            resource_version=listed,
            allow_watch_bookmarks=True,
            timeout_seconds=1,
            _request_timeout=15,
        )
    )
    bookmarks = [e for e in events if e["type"] == "BOOKMARK"]
    assert bookmarks and len(bookmarks) == len(events)
    assert bookmarks[-1]["raw_object"]["metadata"] == {"resourceVersion": kube_emulator.resource_version}
    assert bookmarks[-1]["raw_object"]["kind"] == "Pod"
    without = list(
        watch.Watch().stream(core.list_namespaced_pod, "default", resource_version=listed, timeout_seconds=1)
    )
    assert without == []


def test_watch_from_compacted_resource_version_raises_410(
    kube_api: client.ApiClient, kube_emulator: KubeEmulator
) -> None:
    core = client.CoreV1Api(kube_api)
    old = core.list_namespaced_pod("default").metadata.resource_version
    kube_emulator.create(make_pod("after"))
    kube_emulator.compact()
    with pytest.raises(ApiException) as caught:
        list(watch.Watch().stream(core.list_namespaced_pod, "default", resource_version=old, timeout_seconds=5))
    assert caught.value.status == 410 and "too old resource version" in caught.value.reason
    # Without timeout_seconds the client retries once from the same version, then gives up the same way.
    with pytest.raises(ApiException) as caught:
        list(watch.Watch().stream(core.list_namespaced_pod, "default", resource_version=old))
    assert caught.value.status == 410
    # The raw answer is a 200 stream carrying a single ERROR event with the Expired Status.
    raw = core.list_namespaced_pod("default", watch=True, resource_version=old, _preload_content=False)
    assert raw.status == 200
    lines = raw.data.decode().splitlines()
    assert len(lines) == 1
    event = json.loads(lines[0])
    assert event["type"] == "ERROR"
    assert event["object"]["reason"] == "Expired" and event["object"]["code"] == 410
    current = kube_emulator.resource_version
    assert event["object"]["message"] == f"too old resource version: {old} ({current})"
    # From the current version a watch works again.
    assert (
        list(watch.Watch().stream(core.list_namespaced_pod, "default", resource_version=current, timeout_seconds=1))
        == []
    )


def test_bounded_history_expires_old_versions() -> None:
    with KubeEmulator(history_size=3) as emulator:
        core = client.CoreV1Api(emulator.api_client())
        start = emulator.resource_version
        for index in range(5):
            emulator.create(make_pod(f"p{index}"))
        with pytest.raises(ApiException) as caught:
            list(watch.Watch().stream(core.list_namespaced_pod, "default", resource_version=start, timeout_seconds=2))
        assert caught.value.status == 410
        recent = str(int(emulator.resource_version) - 3)
        events = list(
            watch.Watch().stream(core.list_namespaced_pod, "default", resource_version=recent, timeout_seconds=1)
        )
        assert [e["object"].metadata.name for e in events] == ["p2", "p3", "p4"]


def test_stop_ends_open_watches(kube_emulator: KubeEmulator) -> None:
    core = client.CoreV1Api(kube_emulator.api_client())
    outcome: list[str] = []

    def consume() -> None:
        try:
            list(watch.Watch().stream(core.list_namespaced_pod, "default", resource_version="1", _request_timeout=30))
            outcome.append("ended")
        except Exception as exc:  # a cut stream surfaces as a protocol error
            outcome.append(type(exc).__name__)

    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()
    kube_emulator.wait_for_watches(1, "pods")
    kube_emulator.stop()
    consumer.join(10)
    assert not consumer.is_alive() and outcome


# --------------------------------------------------------------------------- custom resources


def test_status_subresource_and_generation(kube_api: client.ApiClient, kube_emulator: KubeEmulator) -> None:
    custom = client.CustomObjectsApi(kube_api)
    body = profiling_config("pc", {"profiles": ["heap"]})
    body["status"] = {"phase": "ignored on create"}
    created = custom.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, body)
    assert created["metadata"]["generation"] == 1 and "status" not in created

    after_status = custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, "default", PLURAL, "pc", {"status": {"phase": "Active"}, "spec": {"profiles": ["cpu"]}}
    )
    assert after_status["status"] == {"phase": "Active"}
    assert after_status["spec"] == {"profiles": ["heap"]}  # /status changes only .status
    assert after_status["metadata"]["generation"] == 1
    assert int(after_status["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])

    after_spec = custom.patch_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, "pc", {"spec": {"profiles": ["cpu"]}, "status": {"phase": "Hacked"}}
    )
    assert after_spec["metadata"]["generation"] == 2
    assert after_spec["status"] == {"phase": "Active"}  # the main resource ignores .status

    labelled = custom.patch_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, "pc", {"metadata": {"labels": {"team": "a"}}}
    )
    assert labelled["metadata"]["generation"] == 2  # metadata changes leave generation alone

    replaced = dict(labelled, status={"phase": "Replaced"})
    replaced = custom.replace_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "pc", replaced)
    assert replaced["status"] == {"phase": "Active"}

    status_put = dict(replaced, status={"phase": "Done"})
    status_put = custom.replace_namespaced_custom_object_status(GROUP, VERSION, "default", PLURAL, "pc", status_put)
    assert status_put["status"] == {"phase": "Done"} and status_put["metadata"]["generation"] == 2

    with pytest.raises(ApiException) as caught:
        custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            "default",
            PLURAL,
            "pc",
            {"spec": {"profiles": []}},
            _content_type="application/strategic-merge-patch+json",
        )
    assert caught.value.status == 415 and status_body(caught.value)["reason"] == "UnsupportedMediaType"

    merge_patched = custom.patch_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, "pc", {"spec": {"profiles": ["cpu", "goroutine"]}}
    )
    assert merge_patched["spec"]["profiles"] == ["cpu", "goroutine"] and merge_patched["metadata"]["generation"] == 3

    unconditional = dict(merge_patched)
    unconditional["metadata"] = {k: v for k, v in merge_patched["metadata"].items() if k != "resourceVersion"}
    with pytest.raises(ApiException) as caught:
        custom.replace_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "pc", unconditional)
    assert caught.value.status == 422  # custom resources need metadata.resourceVersion on PUT

    deleted = custom.delete_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "pc")
    assert deleted["status"] == "Success" and deleted["details"]["name"] == "pc"
    assert kube_emulator.get(f"{GROUP}/{VERSION}", "ProfilingConfig", "default", "pc") is None


def test_custom_objects_list_and_watch_cluster_wide(kube_api: client.ApiClient, kube_emulator: KubeEmulator) -> None:
    custom = client.CustomObjectsApi(kube_api)
    start = kube_emulator.resource_version
    custom.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, profiling_config("one"))
    kube_emulator.create({**profiling_config("two"), "metadata": {"name": "two", "namespace": "team-a"}})
    listed = custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)
    assert listed["kind"] == "ProfilingConfigList"
    assert [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in listed["items"]] == [
        ("default", "one"),
        ("team-a", "two"),
    ]
    assert all(item["kind"] == "ProfilingConfig" for item in listed["items"])
    events = list(
        watch.Watch().stream(
            custom.list_cluster_custom_object, GROUP, VERSION, PLURAL, resource_version=start, timeout_seconds=1
        )
    )
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "one"), ("ADDED", "two")]


# --------------------------------------------------------------------------- leases, metrics, events


def test_lease_races_are_detected(kube_api: client.ApiClient) -> None:
    leases = client.CoordinationV1Api(kube_api)
    lease = client.V1Lease(
        metadata=client.V1ObjectMeta(name="kprof-leader"),
        spec=client.V1LeaseSpec(holder_identity="a", lease_duration_seconds=15),
    )
    _, code, _ = leases.create_namespaced_lease_with_http_info("default", lease)
    assert code == 201
    with pytest.raises(ApiException) as caught:
        leases.create_namespaced_lease("default", lease)
    assert caught.value.status == 409

    mine = leases.read_namespaced_lease("kprof-leader", "default")
    theirs = leases.read_namespaced_lease("kprof-leader", "default")
    mine.spec.holder_identity = "b"
    renewed = leases.replace_namespaced_lease("kprof-leader", "default", mine)
    assert renewed.spec.holder_identity == "b"
    theirs.spec.holder_identity = "c"
    with pytest.raises(ApiException) as caught:
        leases.replace_namespaced_lease("kprof-leader", "default", theirs)
    assert caught.value.status == 409 and status_body(caught.value)["reason"] == "Conflict"
    assert "the object has been modified" in status_body(caught.value)["message"]

    renewed.metadata.resource_version = None
    with pytest.raises(ApiException) as caught:
        leases.replace_namespaced_lease("kprof-leader", "default", renewed)
    assert caught.value.status == 422  # leases do not accept unconditional updates

    fresh = client.V1Lease(metadata=client.V1ObjectMeta(name="other"), spec=client.V1LeaseSpec(holder_identity="x"))
    _, code, _ = leases.replace_namespaced_lease_with_http_info("other", "default", fresh)
    assert code == 201  # PUT creates a missing lease


def test_pod_metrics_list_per_namespace_with_label_selector(
    kube_api: client.ApiClient, kube_emulator: KubeEmulator
) -> None:
    kube_emulator.create(make_pod("web-1", labels={"app": "web"}))
    kube_emulator.create(make_pod("db-1", labels={"app": "db"}))
    kube_emulator.create(make_pod("web-2", namespace="other", labels={"app": "web"}))
    for namespace, name in (("default", "web-1"), ("default", "db-1"), ("other", "web-2")):
        kube_emulator.set_pod_metrics(namespace, name, [{"name": "app", "usage": {"cpu": "250m", "memory": "64Mi"}}])
    custom = client.CustomObjectsApi(kube_api)
    listed = custom.list_namespaced_custom_object(
        "metrics.k8s.io", "v1beta1", "default", "pods", label_selector="app=web"
    )
    assert listed["kind"] == "PodMetricsList"
    assert [i["metadata"]["name"] for i in listed["items"]] == ["web-1"]
    item = listed["items"][0]
    assert item["containers"] == [{"name": "app", "usage": {"cpu": "250m", "memory": "64Mi"}}]
    assert item["window"] == "30s" and item["timestamp"].endswith("Z")
    everywhere = custom.list_cluster_custom_object("metrics.k8s.io", "v1beta1", "pods", label_selector="app=web")
    assert [i["metadata"]["name"] for i in everywhere["items"]] == ["web-1", "web-2"]
    one = custom.get_namespaced_custom_object("metrics.k8s.io", "v1beta1", "other", "pods", "web-2")
    assert one["kind"] == "PodMetrics" and one["metadata"]["labels"] == {"app": "web"}
    with pytest.raises(ApiException) as caught:
        custom.create_namespaced_custom_object(
            "metrics.k8s.io",
            "v1beta1",
            "default",
            "pods",
            {"apiVersion": "metrics.k8s.io/v1beta1", "kind": "PodMetrics", "metadata": {"name": "x"}},
        )
    assert caught.value.status == 405


def test_events_create_patch_and_select(kube_api: client.ApiClient) -> None:
    core = client.CoreV1Api(kube_api)
    event = client.CoreV1Event(
        metadata=client.V1ObjectMeta(generate_name="web."),
        involved_object=client.V1ObjectReference(kind="Pod", name="web", namespace="default"),
        reason="ProfileCaptured",
        message="heap profile stored",
        type="Normal",
        count=1,
        source=client.V1EventSource(component="kprof"),
    )
    created = core.create_namespaced_event("default", event)
    patched = core.patch_namespaced_event(created.metadata.name, "default", {"count": 2, "message": "again"})
    assert (patched.count, patched.message, patched.reason) == (2, "again", "ProfileCaptured")
    selected = core.list_namespaced_event("default", field_selector="involvedObject.name=web,source=kprof")
    assert [e.metadata.name for e in selected.items] == [created.metadata.name]
    assert core.list_namespaced_event("default", field_selector="involvedObject.name=db").items == []


# --------------------------------------------------------------------------- faults


def test_injected_500_does_not_write(kube_api: client.ApiClient, kube_emulator: KubeEmulator) -> None:
    fault = kube_emulator.faults.add(Fault(method="POST", path=r"/pods$", status=500))
    core = client.CoreV1Api(kube_api)
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_pod("default", make_pod("web"))
    assert caught.value.status == 500 and status_body(caught.value)["reason"] == "InternalError"
    assert kube_emulator.get("v1", "Pod", "default", "web") is None and fault.hits == 1
    core.create_namespaced_pod("default", make_pod("web"))  # the fault is used up
    assert kube_emulator.get("v1", "Pod", "default", "web") is not None


def test_injected_429_carries_retry_after(kube_api: client.ApiClient, kube_emulator: KubeEmulator) -> None:
    kube_emulator.faults.add(Fault(method="POST", path=r"/leases$", status=429, retry_after=3))
    with pytest.raises(ApiException) as caught:
        client.CoordinationV1Api(kube_api).create_namespaced_lease(
            "default", client.V1Lease(metadata=client.V1ObjectMeta(name="l"))
        )
    assert caught.value.status == 429 and caught.value.headers["Retry-After"] == "3"
    assert status_body(caught.value)["details"]["retryAfterSeconds"] == 3
    # urllib3 retries idempotent requests answered 429/503 with Retry-After, so a single such
    # fault on a GET is absorbed; one without Retry-After reaches the caller.
    kube_emulator.reset_requests()
    absorbed = kube_emulator.faults.add(Fault(method="GET", path=r"/pods$", status=429, retry_after=0))
    assert client.CoreV1Api(kube_api).list_namespaced_pod("default").items == []
    assert absorbed.hits == 1 and [r.status for r in kube_emulator.requests] == [429, 200]
    kube_emulator.faults.add(Fault(method="GET", path=r"/pods$", status=503))
    with pytest.raises(ApiException) as caught:
        client.CoreV1Api(kube_api).list_namespaced_pod("default")
    assert caught.value.status == 503


def test_delay_fault_slows_then_serves(kube_api: client.ApiClient, kube_emulator: KubeEmulator) -> None:
    fault = kube_emulator.faults.add(Fault(method="GET", path=r"/pods$", status=None, delay=0.3))
    started = time.monotonic()
    result = client.CoreV1Api(kube_api).list_namespaced_pod("default")
    assert result.items == [] and fault.hits == 1
    assert time.monotonic() - started >= 0.3  # a lower bound only: the server waited before answering


def test_dropped_watch_cuts_the_stream(kube_api: client.ApiClient, kube_emulator: KubeEmulator) -> None:
    for name in ("a", "b", "c"):
        kube_emulator.create(make_pod(name))
    kube_emulator.faults.add(Fault(path=r"/pods$", status=None, drop_after_events=1))
    core = client.CoreV1Api(kube_api)
    received = []
    with pytest.raises(urllib3.exceptions.ProtocolError):
        for event in watch.Watch().stream(core.list_namespaced_pod, "default", timeout_seconds=5):
            received.append(event["object"].metadata.name)
    assert received == ["a"]
    # A plain list is not affected by a watch fault, and the next watch is whole again.
    assert len(core.list_namespaced_pod("default").items) == 3
    assert len(list(watch.Watch().stream(core.list_namespaced_pod, "default", timeout_seconds=1))) == 3


def test_closed_connection_fault(kube_api: client.ApiClient, kube_emulator: KubeEmulator) -> None:
    kube_emulator.faults.add(Fault(method="POST", path=r"/configmaps$", close_connection=True))
    core = client.CoreV1Api(kube_api)
    with pytest.raises(urllib3.exceptions.HTTPError):
        core.create_namespaced_config_map("default", {"metadata": {"name": "state"}})
    assert kube_emulator.get("v1", "ConfigMap", "default", "state") is None
    assert kube_emulator.count("POST", r"/configmaps$") == 1
    assert kube_emulator.requests[-1].status == 0


# --------------------------------------------------------------------------- pods/proxy and port-forward


def proxy_get(api: client.ApiClient, name: str, path: str, query: list[tuple[str, str]] | None = None) -> Any:
    return api.call_api(
        "/api/v1/namespaces/{namespace}/pods/{name}/proxy/{path}",
        "GET",
        path_params={"namespace": "default", "name": name, "path": path},
        query_params=query or [],
        auth_settings=["BearerToken"],
        _preload_content=False,
        _return_http_data_only=True,
        _request_timeout=15,
    )


def test_pod_proxy_forwards_and_streams(
    kube_api: client.ApiClient, kube_emulator: KubeEmulator, pod_server: tuple[int, threading.Event]
) -> None:
    port, gate = pod_server
    kube_emulator.create(make_pod("web", pod_ip="127.0.0.1"))
    answer = proxy_get(kube_api, f"web:{port}", "debug/pprof/heap", [("seconds", "1"), ("debug", "0")])
    assert answer.status == 200 and answer.headers["X-Pod"] == "yes"
    assert answer.headers["Content-Type"] == "application/json"
    forwarded = json.loads(answer.read())
    assert forwarded["path"] == "/debug/pprof/heap?seconds=1&debug=0"
    assert forwarded["auth"] is None  # the API token is not handed to the pod

    streamed = proxy_get(kube_api, f"web:{port}", "stream")
    chunks = streamed.stream(None, decode_content=False)
    received = b""
    while len(received) < len(b"first-"):
        received += next(chunks)  # arrives while the pod still holds back the rest
    assert received == b"first-"
    gate.set()
    assert b"".join(chunks) == b"second"


def test_pod_proxy_errors(kube_api: client.ApiClient, kube_emulator: KubeEmulator) -> None:
    kube_emulator.create(make_pod("no-ip", pod_ip=None, phase="Pending"))
    kube_emulator.create(make_pod("refusing", pod_ip="127.0.0.1"))
    for name, expected in ((f"missing:{closed_port()}", 404), ("no-ip:80", 503), (f"refusing:{closed_port()}", 503)):
        with pytest.raises(ApiException) as caught:
            proxy_get(kube_api, name, "metrics")
        assert caught.value.status == expected, name
        assert status_body(caught.value)["kind"] == "Status"


def test_port_forward_round_trip(
    kube_api: client.ApiClient, kube_emulator: KubeEmulator, pod_server: tuple[int, threading.Event]
) -> None:
    port, _ = pod_server
    kube_emulator.create(make_pod("web", pod_ip="127.0.0.1"))
    core = client.CoreV1Api(kube_api)
    forward = portforward(core.connect_get_namespaced_pod_portforward, "web", "default", ports=str(port))
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
    assert kube_emulator.count("GET", r"/pods/web/portforward$") == 1


def test_port_forward_to_a_closed_port_reports_the_error(
    kube_api: client.ApiClient, kube_emulator: KubeEmulator
) -> None:
    kube_emulator.create(make_pod("web", pod_ip="127.0.0.1"))
    port = closed_port()
    forward = portforward(
        client.CoreV1Api(kube_api).connect_get_namespaced_pod_portforward, "web", "default", ports=str(port)
    )
    sock = forward.socket(port)
    sock.settimeout(15)
    assert sock.recv(1024) == b""
    assert "error forwarding port" in (forward.error(port) or "")


# --------------------------------------------------------------------------- observability and standalone use


def test_request_log_counts_by_method_path_and_watch(kube_api: client.ApiClient, kube_emulator: KubeEmulator) -> None:
    core = client.CoreV1Api(kube_api)
    kube_emulator.reset_requests()
    core.list_namespaced_pod("default", label_selector="app=web")
    core.list_pod_for_all_namespaces()
    with pytest.raises(ApiException):
        core.read_namespaced_pod("missing", "default")
    list(watch.Watch().stream(core.list_namespaced_pod, "default", timeout_seconds=1))
    assert kube_emulator.count() == 4
    assert kube_emulator.count("GET", r"/pods$", watch=False) == 2
    assert kube_emulator.count(watch=True) == 1
    assert kube_emulator.count(path_regex=r"/pods/missing$") == 1
    first = kube_emulator.requests[0]
    assert (first.method, first.path, first.query, first.status, first.is_watch) == (
        "GET",
        "/api/v1/namespaces/default/pods",
        {"labelSelector": "app=web"},
        200,
        False,
    )
    assert [r.status for r in kube_emulator.requests][2] == 404
    kube_emulator.reset_requests()
    assert kube_emulator.requests == []

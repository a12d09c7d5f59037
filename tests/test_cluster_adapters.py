"""The Kubernetes adapters (informer, metrics, history, events, status, leader election) driven by the
real `kubernetes` client against the real control plane (tests.support.controlplane): what the API
server answers, not what an emulator of it would. Each test works in a namespace of its own.

The requests an adapter makes are read from the API server's audit log: the adapters under test
authenticate as a ServiceAccount bound to cluster-admin (`audited`), whose requests the control
plane's audit policy records. What a real API server cannot do on demand here (500s, 429s, slow
answers, dropped watches, bookmarks every fraction of a second) stays in tests/test_kube_adapters.py
through the front proxy of tests/kube_emulator, before the same control plane.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kprof_lib.adapters.kube.events import PROFILE_CAPTURED, WARNING, EventRecorder
from kprof_lib.adapters.kube.history import ConfigMapHistory, configmap_name
from kprof_lib.adapters.kube.informer import ADDED, DELETED, MODIFIED, Backoff, ConfigWatch, Informer, PodCache
from kprof_lib.adapters.kube.leader import LeaderElector
from kprof_lib.adapters.kube.metrics import MetricsServer
from kprof_lib.adapters.kube.selectors import to_selector_string
from kprof_lib.adapters.kube.status import StatusWriter
from kprof_lib.planning import conditions
from tests.support.controlplane import ControlPlane

FAST = Backoff(initial=0.05, cap=0.5)
WAIT = 15.0


def wait_until(condition: Callable[[], Any], what: str | Callable[[], str], timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out waiting for {what() if callable(what) else what}")
        time.sleep(0.05)
    return value


# ----------------------------------------------------------------- an audited identity


@dataclass
class Audited:
    """An ApiClient whose requests the audit log records, and a way to read them back."""

    plane: ControlPlane
    api: Any
    username: str
    namespace: str

    def _events(self) -> list[dict[str, Any]]:
        """Completed requests, and watches as they start (a watch completes only when it ends)."""
        events = []
        for line in self.plane.audit_log.read_text().splitlines():
            event = json.loads(line)
            if event["user"]["username"] != self.username:
                continue
            started = event["stage"] == "ResponseStarted"
            if started == (event["verb"] == "watch"):
                events.append(event)
        return events

    def requests(self) -> list[tuple[str, str, int]]:
        """(verb, requestURI, status code) of every request made so far, in the order logged.
        Synchronised first: a request of its own is awaited in the log, so that the answers the
        client has already seen are all there (the log is written as each request completes)."""
        from kubernetes import client

        marker = f"audit-sync-{uuid.uuid4().hex[:8]}"
        client.CoreV1Api(self.api).list_namespaced_config_map(self.namespace, label_selector=f"sync={marker}")
        events = wait_until(
            lambda: (found := self._events()) and any(marker in e["requestURI"] for e in found) and found,
            "the audit log to catch up",
        )
        return [
            (e["verb"], e["requestURI"], e.get("responseStatus", {}).get("code", 0))
            for e in events
            if "audit-sync-" not in e["requestURI"]
        ]

    def count(self, verb: str, fragment: str) -> int:
        return sum(1 for v, uri, _ in self.requests() if v == verb and fragment in uri)


@pytest.fixture
def namespace(control_plane: ControlPlane) -> str:
    return control_plane.new_namespace("adapters")


@pytest.fixture
def audited(control_plane: ControlPlane, namespace: str, tmp_path: Path) -> Iterator[Audited]:
    from kubernetes import client, config

    admin = control_plane.api()
    name = "audited"
    client.CoreV1Api(admin).create_namespaced_service_account(namespace, {"metadata": {"name": name}})
    client.RbacAuthorizationV1Api(admin).create_cluster_role_binding(
        {
            "metadata": {"name": f"audited-{namespace}"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        }
    )
    kubeconfig = control_plane.token_kubeconfig(namespace, name, tmp_path / "audited.kubeconfig")
    api = config.new_client_from_config(str(kubeconfig))
    try:
        yield Audited(control_plane, api, f"system:serviceaccount:{namespace}:{name}", namespace)
    finally:
        api.close()


def create_pod(plane: ControlPlane, namespace: str, name: str, labels: dict[str, str]) -> dict[str, Any]:
    from kubernetes import client

    pod = client.CoreV1Api(plane.api()).create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": name, "labels": labels},
            "spec": {"containers": [{"name": "app", "image": "kprof/sample-app:test"}]},
        },
    )
    return plane.api().sanitize_for_serialization(pod)


def query_of(uri: str) -> dict[str, str]:
    from urllib.parse import parse_qsl, urlsplit

    return dict(parse_qsl(urlsplit(uri).query, keep_blank_values=True))


# ----------------------------------------------------------------- informer


def test_informer_lists_in_pages_then_watches_adds_modifies_and_deletes(control_plane, namespace, audited):
    from kubernetes import client

    core = client.CoreV1Api(control_plane.api())
    tag = {"seeded": namespace}
    for index in range(5):
        create_pod(control_plane, namespace, f"seed-{index}", tag)
    changes: list[tuple[str, str]] = []
    cache = PodCache(audited.api, label_selector=f"seeded={namespace}", page_size=2, backoff=FAST)
    cache.start()
    try:
        assert cache.wait_synced(WAIT)
        cache.on_change(lambda kind, obj: changes.append((kind, obj.name)))
        listed_at = cache.resource_version
        stored = core.list_namespaced_pod(namespace).items
        assert sorted(p.name for p in cache.pods(namespace)) == sorted(p.metadata.name for p in stored)

        wait_until(lambda: audited.count("watch", "/api/v1/pods?"), "the watch")
        pages = [
            query_of(uri) for verb, uri, _ in audited.requests() if verb == "list" and uri.startswith("/api/v1/pods")
        ]
        assert [p.get("limit") for p in pages] == ["2", "2", "2"]
        assert [bool(p.get("continue")) for p in pages] == [False, True, True]
        assert all(p["labelSelector"] == f"seeded={namespace}" for p in pages)
        [watch] = [query_of(uri) for verb, uri, _ in audited.requests() if verb == "watch"]
        assert watch["resourceVersion"] == listed_at
        assert watch["allowWatchBookmarks"] == "true" and watch["timeoutSeconds"] == "300"

        create_pod(control_plane, namespace, "new", tag)
        core.patch_namespaced_pod("seed-1", namespace, {"metadata": {"labels": {"tier": "web"}}})
        core.delete_namespaced_pod("seed-0", namespace, grace_period_seconds=0)
        wait_until(lambda: changes and changes[-1] == (DELETED, "seed-0"), lambda: f"the deletion, after {changes}")

        # The API server marks a pod for deletion (MODIFIED, deletionTimestamp set) before it goes.
        assert changes == [(ADDED, "new"), (MODIFIED, "seed-1"), (MODIFIED, "seed-0"), (DELETED, "seed-0")]
        assert cache.get(namespace, "seed-1").labels == {**tag, "tier": "web"}
        assert {p.name for p in cache.pods(namespace)} == {"new", "seed-1", "seed-2", "seed-3", "seed-4"}
        assert cache.lists == 1 and cache.relists == 0 and cache.restarts == 0
    finally:
        cache.stop()


def test_config_watch_keeps_whole_objects(control_plane, kprof_release, namespace):
    from kubernetes import client

    custom = client.CustomObjectsApi(control_plane.api())
    config = {
        "apiVersion": "profiling.io/v1alpha1",
        "kind": "ProfilingConfig",
        "metadata": {"name": "checkout", "namespace": namespace, "labels": {"watched": namespace}},
        "spec": {"onDemand": {"enabled": True, "intervalSeconds": 600}},
    }
    # As stored: the CRD's defaults filled in.
    created = custom.create_namespaced_custom_object("profiling.io", "v1alpha1", namespace, "profilingconfigs", config)
    watch: Informer = ConfigWatch(control_plane.api(), label_selector=f"watched={namespace}", backoff=FAST).start()
    try:
        assert watch.wait_synced(WAIT)
        changes: list[tuple[str, dict]] = []
        watch.on_change(lambda kind, obj: changes.append((kind, obj)))
        [listed] = watch.items()
        assert listed["kind"] == "ProfilingConfig" and listed == created
        custom.patch_namespaced_custom_object(
            "profiling.io",
            "v1alpha1",
            namespace,
            "profilingconfigs",
            "checkout",
            {"spec": {"onDemand": {"enabled": False}}},
        )
        wait_until(lambda: changes, "the spec change")
        assert changes[0][0] == MODIFIED and changes[0][1]["metadata"]["generation"] == 2
        assert changes[0][1]["spec"] == {**created["spec"], "onDemand": {"enabled": False, "intervalSeconds": 600}}
    finally:
        watch.stop()


# ----------------------------------------------------------------- history

KEY = "shop/checkout"
T1, T2, T3 = "2026-11-25T10:00:00Z", "2026-11-25T10:05:00Z", "2026-11-25T10:10:00Z"


def fixed_now() -> dt.datetime:
    return dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)


def read_configmap(plane: ControlPlane, namespace: str, name: str) -> Any:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    try:
        return client.CoreV1Api(plane.api()).read_namespaced_config_map(name, namespace)
    except ApiException as error:
        if error.status == 404:
            return None
        raise


def test_history_lives_in_one_labelled_configmap_and_survives_a_restart(control_plane, audited):
    store = ConfigMapHistory(audited.api, audited.namespace, now=fixed_now)
    assert store.load(KEY) == {}
    store.merge(KEY, {"shop/a": {"lastThresholdCapture": T1}})
    store.merge(KEY, {"shop/a": {"lastOnDemandCapture": T2}, "shop/b": {"lastOnDemandCapture": T1}})

    configmap = read_configmap(control_plane, audited.namespace, configmap_name(KEY))
    assert configmap.metadata.name.startswith("kprof-history-") and len(configmap.metadata.name) == 26
    assert configmap.metadata.labels["app.kubernetes.io/managed-by"] == "kprof"
    assert configmap.metadata.annotations["profiling.io/config"] == KEY
    expected = {
        "shop/a": {"lastThresholdCapture": T1, "lastOnDemandCapture": T2},
        "shop/b": {"lastOnDemandCapture": T1},
    }
    assert json.loads(configmap.data["history.json"]) == expected

    before = len(audited.requests())
    assert store.load(KEY) == expected
    assert audited.requests()[before:] == []  # served from memory
    assert ConfigMapHistory(audited.api, audited.namespace, now=fixed_now).load(KEY) == expected  # a restart reads it


def test_history_merges_from_interleaved_writers_lose_nothing(audited):
    first, second = (ConfigMapHistory(audited.api, audited.namespace, now=fixed_now) for _ in range(2))
    assert first.load(KEY) == second.load(KEY) == {}
    first.merge(KEY, {"shop/a": {"lastThresholdCapture": T2}})
    second.merge(KEY, {"shop/b": {"lastOnDemandCapture": T1}, "shop/a": {"lastThresholdCapture": T1}})
    first.merge(KEY, {"shop/c": {"lastOnDemandCapture": T3}})

    made = audited.requests()
    assert sum(1 for verb, uri, _ in made if verb == "create" and "configmaps" in uri) == 2  # one got 409
    assert any(code == 409 for verb, _, code in made if verb == "update")  # and a stale update
    expected = {
        "shop/a": {"lastThresholdCapture": T2},  # the later capture wins over the stale write
        "shop/b": {"lastOnDemandCapture": T1},
        "shop/c": {"lastOnDemandCapture": T3},
    }
    assert ConfigMapHistory(audited.api, audited.namespace, now=fixed_now).load(KEY) == expected


def test_history_keeps_the_later_time_but_the_newer_capture_now_value(control_plane, namespace):
    # A capture-now value is a label, not a time, even when it looks like a date: the value served
    # last is the one kept, else every check would serve the newer annotation again.
    store = ConfigMapHistory(control_plane.api(), namespace, now=fixed_now)
    store.merge(KEY, {"shop/a": {"lastRequestedCapture": T2, "captureNowValue": "2026-11-25"}})
    store.merge(KEY, {"shop/a": {"lastRequestedCapture": T1, "captureNowValue": "2026-11-24"}})
    assert store.load(KEY) == {"shop/a": {"lastRequestedCapture": T2, "captureNowValue": "2026-11-24"}}


def test_history_concurrent_threads_lose_nothing(control_plane, namespace):
    stores = [ConfigMapHistory(control_plane.api(), namespace, now=fixed_now) for _ in range(2)]
    errors: list[BaseException] = []

    def write(store: ConfigMapHistory, writer: int) -> None:
        try:
            for index in range(5):
                store.merge(KEY, {f"shop/w{writer}-{index}": {"lastOnDemandCapture": T1}})
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(stores[n % 2], n)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert errors == []
    assert len(ConfigMapHistory(control_plane.api(), namespace, now=fixed_now).load(KEY)) == 30


def test_history_prunes_old_entries_and_stays_under_its_size_cap(control_plane, namespace):
    api = control_plane.api()
    store = ConfigMapHistory(api, namespace, now=fixed_now, max_age=dt.timedelta(days=1))
    store.merge(
        KEY, {"shop/old": {"lastOnDemandCapture": "2026-11-20T00:00:00Z"}, "shop/recent": {"lastOnDemandCapture": T1}}
    )
    assert store.load(KEY) == {"shop/recent": {"lastOnDemandCapture": T1}}

    small = ConfigMapHistory(api, namespace, now=fixed_now, max_bytes=2000)
    start = dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.UTC)
    captured = {
        f"shop/pod-{i:03d}": (start + dt.timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%SZ") for i in range(100)
    }
    small.merge(KEY, {key: {"lastOnDemandCapture": at} for key, at in captured.items()})
    kept = ConfigMapHistory(api, namespace, now=fixed_now).load(KEY)
    stored = read_configmap(control_plane, namespace, configmap_name(KEY)).data["history.json"]
    assert len(stored) <= 2000 and 0 < len(kept) < 100
    newest = sorted(captured)[-len(kept) :]  # the most recent captures are the ones kept
    assert kept == {key: {"lastOnDemandCapture": captured[key]} for key in newest}


def test_history_forget_deletes_and_invalidate_rereads(control_plane, namespace):
    from kubernetes import client

    store = ConfigMapHistory(control_plane.api(), namespace, now=fixed_now)
    store.merge(KEY, {"shop/a": {"lastOnDemandCapture": T1}})
    name = configmap_name(KEY)
    client.CoreV1Api(control_plane.api()).patch_namespaced_config_map(
        name, namespace, {"data": {"history.json": json.dumps({"shop/z": {"lastOnDemandCapture": T3}})}}
    )
    assert store.load(KEY) == {"shop/a": {"lastOnDemandCapture": T1}}  # cached: the operator is the only writer
    store.invalidate()
    assert store.load(KEY) == {"shop/z": {"lastOnDemandCapture": T3}}

    store.forget(KEY)
    assert read_configmap(control_plane, namespace, name) is None
    assert store.load(KEY) == {}
    store.forget(KEY)  # already gone: nothing to do


# ----------------------------------------------------------------- events


def test_events_are_deduplicated_with_a_count(audited):
    from kubernetes import client

    recorder = EventRecorder(audited.api, host="kprof-operator-0")
    pod = {"apiVersion": "v1", "kind": "Pod", "namespace": audited.namespace, "name": "checkout-1", "uid": "1234"}
    message = "captured heap,cpu (cpu-threshold 93.5% ≥ 80%) → s3://bucket/key"
    recorder.record(pod, "Normal", PROFILE_CAPTURED, message)
    recorder.record(pod, "Normal", PROFILE_CAPTURED, message)
    recorder.record(pod, WARNING, "ProfileCaptureFailed", "connection refused")

    listed = client.CoreV1Api(audited.plane.api()).list_namespaced_event(audited.namespace).items
    events = sorted(listed, key=lambda e: e.reason)
    assert [(e.reason, e.count) for e in events] == [("ProfileCaptureFailed", 1), (PROFILE_CAPTURED, 2)]
    captured = events[1]
    assert captured.metadata.name.startswith("checkout-1.")
    assert audited.plane.api().sanitize_for_serialization(captured.involved_object) == pod
    assert captured.message == message and captured.type == "Normal"
    assert (captured.source.component, captured.source.host) == ("kprof-operator", "kprof-operator-0")
    assert captured.first_timestamp <= captured.last_timestamp
    assert audited.count("patch", "/events/") == 1
    assert recorder.failures == 0


def test_an_event_about_a_missing_namespace_is_a_failure_not_an_error(audited):
    recorder = EventRecorder(audited.api)
    pod = {"apiVersion": "v1", "kind": "Pod", "namespace": "no-such-namespace", "name": "p", "uid": "1"}
    recorder.record(pod, "Normal", PROFILE_CAPTURED, "x")
    assert recorder.failures == 1
    assert [code for verb, _, code in audited.requests() if verb == "create"] == [404]


# ----------------------------------------------------------------- status


def test_status_is_merge_patched_through_the_subresource(control_plane, kprof_release, audited):
    from kubernetes import client

    namespace = audited.namespace
    spec = {"onDemand": {"enabled": True, "intervalSeconds": 600}}
    custom = client.CustomObjectsApi(control_plane.api())
    created = custom.create_namespaced_custom_object(
        "profiling.io",
        "v1alpha1",
        namespace,
        "profilingconfigs",
        {
            "apiVersion": "profiling.io/v1alpha1",
            "kind": "ProfilingConfig",
            "metadata": {"name": "checkout"},
            "spec": spec,
        },
    )
    writer = StatusWriter(audited.api)
    now = dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.UTC)
    ready = conditions.set_condition(None, "Ready", True, "Checked", "1 pod active", 1, now)
    writer.patch_status(namespace, "checkout", {"activePods": 1, "totalProfiles": 2, "conditions": ready})
    writer.patch_status(namespace, "checkout", {"totalProfiles": 4, "lastCheckTime": "2026-11-25T10:00:30Z"})

    stored = custom.get_namespaced_custom_object("profiling.io", "v1alpha1", namespace, "profilingconfigs", "checkout")
    assert stored["status"] == {
        "activePods": 1,
        "totalProfiles": 4,
        "conditions": ready,
        "lastCheckTime": "2026-11-25T10:00:30Z",
    }
    assert stored["spec"] == created["spec"] and stored["metadata"]["generation"] == 1
    path = f"/apis/profiling.io/v1alpha1/namespaces/{namespace}/profilingconfigs/checkout/status"
    assert [(verb, uri.split("?")[0], code) for verb, uri, code in audited.requests()] == [("patch", path, 200)] * 2
    assert writer.patch_status(namespace, "deleted-meanwhile", {"activePods": 0}) is None


# ----------------------------------------------------------------- leader election


class Candidate:
    """A LeaderElector plus a record of its callbacks."""

    def __init__(self, api: Any, namespace: str, identity: str, **timing: float) -> None:
        self.calls: list[str] = []
        timing = {"lease_duration": 2, "renew_deadline": 1.5, "retry_period": 0.2, **timing}
        self.elector = LeaderElector(
            api,
            namespace,
            "kprof-operator",
            identity,
            on_started_leading=lambda: self.calls.append("started"),
            on_stopped_leading=lambda: self.calls.append("stopped"),
            **timing,
        )


@pytest.fixture
def candidates(control_plane, namespace) -> Iterator[Callable[..., Candidate]]:
    made: list[Candidate] = []

    def make(identity: str, **timing: float) -> Candidate:
        candidate = Candidate(control_plane.api(), namespace, identity, **timing)
        made.append(candidate)
        candidate.elector.start()
        return candidate

    yield make
    for candidate in made:
        candidate.elector.stop()


def lease(plane: ControlPlane, namespace: str) -> dict[str, Any]:
    """The Lease's spec as the API server stores it (times as text, not parsed)."""
    from kubernetes import client

    answer = client.CoordinationV1Api(plane.api()).read_namespaced_lease(
        "kprof-operator", namespace, _preload_content=False
    )
    return json.loads(answer.data)["spec"]


def test_of_two_candidates_exactly_one_leads_and_the_other_takes_over_after_expiry(
    control_plane, namespace, candidates
):
    a, b = candidates("operator-a"), candidates("operator-b")
    wait_until(lambda: a.elector.is_leader or b.elector.is_leader, "a leader")
    leader, standby = (a, b) if a.elector.is_leader else (b, a)
    for _ in range(40):  # several renewals: never two leaders
        assert leader.elector.is_leader and not standby.elector.is_leader
        time.sleep(0.025)
    wait_until(lambda: standby.elector.leader_identity == leader.elector.identity, "the standby to see the leader")
    spec = lease(control_plane, namespace)
    assert spec["holderIdentity"] == leader.elector.identity and spec["leaseDurationSeconds"] == 2
    # A MicroTime as the API server stores it: microseconds and a Z.
    assert spec["renewTime"].endswith("Z") and len(spec["renewTime"]) == len("2026-11-25T10:00:00.000000Z")

    leader.elector.stop()  # a crash: no release
    assert leader.calls == ["started", "stopped"] and not leader.elector.is_leader
    wait_until(lambda: standby.elector.is_leader, "the standby to take over after the lease expired")
    spec = lease(control_plane, namespace)
    assert spec["holderIdentity"] == standby.elector.identity and spec["leaseTransitions"] == 1
    assert standby.calls == ["started"]


def test_release_hands_the_lease_over_at_once(control_plane, namespace, candidates):
    # With a 30 s lease the standby could only take over this soon because of the release.
    a = candidates("operator-a", lease_duration=30, renew_deadline=20)
    wait_until(lambda: a.elector.is_leader, "a to lead")
    b = candidates("operator-b", lease_duration=30, renew_deadline=20)
    wait_until(lambda: b.elector.leader_identity == "operator-a", "b to see a leading")
    a.elector.stop(release=True)
    wait_until(lambda: b.elector.is_leader, "b to take over", timeout=8)
    assert lease(control_plane, namespace)["holderIdentity"] == "operator-b"


# ----------------------------------------------------------------- metrics


@pytest.fixture(scope="module", autouse=True)
def metered_pods(control_plane: ControlPlane) -> Iterator[list[tuple[str, str, dict[str, str]]]]:
    """Pods whose figures are this test process's own (the node agent reports it), started with the
    module so that metrics-server has scraped them twice (10 s apart, a CPU rate) by the time the
    metrics test, the module's last, runs."""
    mine, other = control_plane.new_namespace("metered"), control_plane.new_namespace("metered-other")
    pods = [
        ("web-1", mine, {"tier": "web"}),
        ("web-2", mine, {"tier": "web", "canary": "true"}),
        ("api-1", mine, {"tier": "api"}),
        ("web-3", other, {"tier": "web"}),
    ]
    for name, namespace, labels in pods:
        control_plane.run_pod(namespace, name, port=1, pid=os.getpid(), labels=labels)
    yield pods
    for name, namespace, _ in pods:
        control_plane.delete_pod(namespace, name)


def test_pod_metrics_are_one_list_per_namespace_with_the_selector_pushed_to_the_server(
    control_plane, audited, metered_pods
):
    """The real metrics-server applies the selector kprof writes."""
    mine, other = metered_pods[0][1], metered_pods[-1][1]
    metrics = MetricsServer(audited.api)
    control_plane.wait_for_metrics_api()
    wait_until(lambda: len(metrics.pod_metrics(mine, None)) == 3, "metrics-server to serve them", 60)
    selector = to_selector_string(
        {
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["web"]},
                {"key": "canary", "operator": "DoesNotExist"},
            ]
        }
    )
    before = len(audited.requests())

    in_mine = metrics.pod_metrics(mine, selector)
    everywhere = metrics.pod_metrics(None, selector)

    assert [m.name for m in in_mine] == ["web-1"]
    [(name, cpu, memory)] = in_mine[0].containers
    assert name == "app" and cpu is not None and cpu >= 0 and memory is not None and memory > 0
    assert {(m.namespace, m.name) for m in everywhere} >= {(mine, "web-1"), (other, "web-3")}
    assert not {m.name for m in everywhere} & {"web-2", "api-1"}
    made = [(verb, uri.split("?")[0], query_of(uri)) for verb, uri, _ in audited.requests()[before:]]
    assert made == [
        ("list", f"/apis/metrics.k8s.io/v1beta1/namespaces/{mine}/pods", {"labelSelector": selector}),
        ("list", "/apis/metrics.k8s.io/v1beta1/pods", {"labelSelector": selector}),
    ]

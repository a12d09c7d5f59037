"""The Kubernetes adapters under what a real API server cannot be made to do here, driven by the real
`kubernetes` client through the front of the session's real API server (tests/kube_emulator):
expired resourceVersions at a chosen moment, 500s, dropped and delayed watches, a writer slipping in
between a read and a write; and the adapters' pure parts (slim pods, selectors, conditions). Their
behaviour against the real API server alone is in tests/test_cluster_adapters.py. Each wait is
bounded; nothing asserts how long anything took, only what state it ends in."""

from __future__ import annotations

import copy
import datetime as dt
import json
import time
from collections.abc import Callable, Iterator

import pytest
from kubernetes import client

from kprof_lib.adapters.kube.events import PROFILE_CAPTURED, EventRecorder
from kprof_lib.adapters.kube.history import ConfigMapHistory, HistoryError
from kprof_lib.adapters.kube.informer import (
    ADDED,
    DELETED,
    Backoff,
    Informer,
    PodCache,
    digest_pod,
)
from kprof_lib.adapters.kube.leader import LeaderElector
from kprof_lib.adapters.kube.metrics import MetricsServer, MetricsUnavailable, slim_metrics
from kprof_lib.adapters.kube.reads import decode_list
from kprof_lib.adapters.kube.selectors import to_selector_string
from kprof_lib.planning import conditions
from kprof_lib.planning.reconcile import reconcile
from kprof_lib.state.digest import Container, PodDigest
from kprof_lib.state.errors import StateError
from kprof_lib.state.podusage import record, usage_of
from tests.kube_emulator import Fault
from tests.support.controlplane import ControlPlane
from tests.support.pods import ENABLED, pod, pod_metrics

FAST = Backoff(initial=0.05, cap=0.5)
WAIT = 10.0


def wait_until(condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def cached(informer: Informer) -> dict[tuple[str, str], str]:
    found = {}
    for o in informer.items():
        if isinstance(o, PodDigest):
            found[(o.namespace, o.name)] = o.resource_version
        else:
            found[(o["metadata"].get("namespace", ""), o["metadata"]["name"])] = o["metadata"]["resourceVersion"]
    return found


def stored_pods(plane: ControlPlane) -> dict[tuple[str, str], str]:
    listed = client.CoreV1Api(plane.api()).list_pod_for_all_namespaces().items
    return {(p.metadata.namespace, p.metadata.name): p.metadata.resource_version for p in listed}


def mirrors(informer: Informer, plane: ControlPlane) -> bool:
    return cached(informer) == stored_pods(plane)


@pytest.fixture
def informers(kube_api) -> Iterator[Callable[..., Informer]]:
    """Starts informers through the front and stops every one of them after the test."""
    started: list[Informer] = []

    def start(kind: type[Informer] = PodCache, **options) -> Informer:
        options.setdefault("backoff", FAST)
        informer = kind(kube_api, **options)
        started.append(informer)
        informer.start()
        assert informer.wait_synced(WAIT), "the informer did not sync"
        return informer

    yield start
    for informer in started:
        informer.stop()


@pytest.fixture
def shop(control_plane: ControlPlane) -> str:
    return control_plane.new_namespace("shop")


@pytest.fixture
def ops(control_plane: ControlPlane) -> str:
    return control_plane.new_namespace("ops")


def seed_pods(plane: ControlPlane, count: int, namespaces: tuple[str, ...]) -> None:
    for index in range(count):
        plane.run_pod(namespaces[index % len(namespaces)], f"seed-{index}", port=6060, labels={"app": "seed"})


# ----------------------------------------------------------------- informer


def test_informer_relists_when_the_watch_answers_410_in_an_error_event(
    kube_front, control_plane, informers, shop, ops
):
    seed_pods(control_plane, 4, (shop, ops))
    # Each watch lasts a second; the next one is held back long enough for the history it would
    # resume from to be compacted away, so it is answered with an ERROR 410 event.
    cache = informers(timeout_seconds=1)
    changes: list[tuple[str, str]] = []
    cache.on_change(lambda kind, obj: changes.append((kind, obj.name)))
    held = kube_front.faults.add(Fault(path=r"^/api/v1/pods$", watch_only=True, status=None, delay=1.5))
    wait_until(lambda: held.hits == 1, "the next watch to arrive")
    control_plane.run_pod(shop, "while-away", port=6060)
    control_plane.delete_pod(ops, "seed-1")
    kube_front.compact()

    wait_until(lambda: cache.relists == 1 and mirrors(cache, control_plane), "a relist")
    assert sorted(changes) == [(ADDED, "while-away"), (DELETED, "seed-1")]
    assert cache.lists == 2 and cache.restarts == 0
    # It keeps watching after the relist.
    control_plane.run_pod(ops, "after", port=6060)
    wait_until(lambda: cache.get(ops, "after") is not None, "the pod created after the relist")


def test_informer_relists_when_the_watch_request_answers_410(kube_front, control_plane, informers, shop, ops):
    seed_pods(control_plane, 2, (shop, ops))
    cache = informers(timeout_seconds=1)
    kube_front.faults.add(Fault(path=r"^/api/v1/pods$", watch_only=True, status=410))
    control_plane.run_pod(shop, "late", port=6060)
    wait_until(lambda: cache.relists == 1, "a relist after 410")
    wait_until(lambda: mirrors(cache, control_plane), "the cache to match the API")
    assert cache.restarts == 0


def test_informer_recovers_from_errors_and_dropped_watches_without_missing_a_change(
    kube_front, control_plane, informers, shop, ops
):
    seed_pods(control_plane, 3, (shop, ops))
    kube_front.faults.add(Fault(path=r"^/api/v1/pods$", list_only=True, status=500, count=2))
    cache = informers(timeout_seconds=1)
    assert cache.restarts == 2 and "500" in cache.last_error

    # The next watches are cut after one event each, then one answers 500: every change still arrives.
    dropping = kube_front.faults.add(Fault(path=r"^/api/v1/pods$", drop_after_events=1, count=3))
    kube_front.faults.add(Fault(path=r"^/api/v1/pods$", watch_only=True, status=500, count=1))
    dropped_from = kube_front.count("GET", r"^/api/v1/pods$", watch=True)
    wait_until(lambda: dropping.hits == 1, "the first watch that will be cut")
    core = client.CoreV1Api(control_plane.api())
    for index in range(6):
        core.create_namespaced_pod(shop, {"metadata": {"name": f"burst-{index}"},
                                          "spec": {"containers": [{"name": "app", "image": "app"}]}})
    control_plane.delete_pod(shop, "seed-0")
    core.patch_namespaced_pod("seed-1", ops, {"metadata": {"labels": {"changed": "yes"}}})

    wait_until(lambda: mirrors(cache, control_plane) and cache.restarts == 6, "recovery with every change")
    assert kube_front.count("GET", r"^/api/v1/pods$", watch=True) - dropped_from >= 5
    assert cache.relists == 0 and cache.lists == 1  # resumed from its resourceVersion, never relisted
    assert cache.get(ops, "seed-1").labels == {"app": "seed", "changed": "yes"}


def test_bookmarks_advance_the_resource_version_so_a_filtered_watch_resumes_after_compaction(
    kube_front, kube_api, control_plane, shop
):
    # The real API server sends a bookmark 2 s before a watch's timeout: every watch carries one.
    cache = PodCache(kube_api, label_selector=f"app=a-{shop}", timeout_seconds=3, backoff=FAST).start()
    try:
        assert cache.wait_synced(WAIT)
        listed_at = int(cache.resource_version)
        for index in range(3):  # changes the filtered watch never sees as events
            last = control_plane.run_pod(shop, f"other-{index}", port=6060, labels={"app": "b"})
        written = int(last["metadata"]["resourceVersion"])
        wait_until(lambda: int(cache.resource_version) >= written, "a bookmark past the writes")
        assert written > listed_at and cache.bookmarks > 0 and cache.events == 0

        kube_front.compact(written)
        watches = kube_front.count("GET", r"^/api/v1/pods$", watch=True)
        wait_until(lambda: kube_front.count("GET", r"^/api/v1/pods$", watch=True) > watches, "the next watch")
        control_plane.run_pod(shop, "mine", port=6060, labels={"app": f"a-{shop}"})
        wait_until(lambda: cache.get(shop, "mine") is not None, "the matching pod")
        # Without bookmarks it would have resumed from the listed version, now compacted: 410.
        assert cache.relists == 0 and cache.lists == 1
        paths = [r.query.get("labelSelector") for r in kube_front.requests if r.path == "/api/v1/pods"]
        assert paths and set(paths) == {f"app=a-{shop}"}
    finally:
        cache.stop()


def test_stop_ends_an_open_watch_promptly(kube_front, kube_api):
    cache = PodCache(kube_api, timeout_seconds=300, backoff=FAST).start()
    assert cache.wait_synced(WAIT)
    kube_front.wait_for_watches(1, "pods")
    cache.stop(timeout=WAIT)
    wait_until(lambda: kube_front.active_watches("pods") == 0, "the watch to close on the server")


# ----------------------------------------------------------------- slim pods


def realistic_pods() -> list[dict]:
    port = {**ENABLED, "profiling.io/port": "6061", "profiling.io/path": "/debug/pprof/"}
    sidecar = [{"name": "proxy", "requests": {"cpu": "50m", "memory": "32Mi"}, "restartPolicy": "Always"}]
    terminating = pod("checkout-7d9-term", "shop", app="checkout", annotations=ENABLED, owner_replicaset="checkout-7d9")
    terminating["metadata"]["deletionTimestamp"] = "2026-11-25T09:59:00Z"
    return [
        pod("checkout-7d9-abcde", "shop", app="checkout", annotations=port, owner_replicaset="checkout-7d9",
            init_containers=sidecar),
        pod("worker-0", "shop", labels={"tier": "batch"}, annotations={**ENABLED, "profiling.io/port": "x"}),
        pod("legacy-1", "shop", annotations=ENABLED, owner_replicaset="legacy-5f6c"),
        pod("pending-1", "shop", app="checkout", annotations=ENABLED, phase="Pending", pod_ip=None),
        pod("off-1", "shop", app="checkout"),
        terminating,
    ]


def test_reconcile_over_digests_decides_exactly_as_over_full_pods():
    spec = {
        "selector": {"namespace": "shop"},
        "thresholds": {"cpuThresholdPercent": 50, "memoryThresholdPercent": 80, "cooldownSeconds": 300},
        "onDemand": {"enabled": True, "intervalSeconds": 600},
        "triggers": {"oom": {"oomHorizonSeconds": 600}},
    }
    full = realistic_pods()
    metrics = [pod_metrics(p["metadata"]["name"], "shop", {"app": {"cpu": "200m", "memory": "100Mi"},
                                                           "proxy": {"cpu": "40m", "memory": "30Mi"}})
               for p in full]
    history = {"shop/legacy-1": {"lastThresholdCapture": "2026-11-25T09:58:00Z",
                                 "lastOnDemandCapture": "2026-11-25T09:58:00Z"}}

    def plan(pods):
        state = {"now": "2026-11-25T10:00:00Z", "pods": pods, "podMetrics": metrics, "history": history}
        return reconcile(spec, state).to_dict()

    digests = [digest_pod(copy.deepcopy(p)) for p in full]
    assert plan(digests) == plan(full)
    # The JSON form of the same digests (schemas/cluster_state.schema.json, $defs/podDigest) too.
    assert plan(json.loads(json.dumps([d.to_json() for d in digests]))) == plan(full)
    assert {r["reason"] for r in plan(full)["results"]} >= {"cpu-threshold", "cooldown", "invalid-annotation",
                                                            "not-running", "not-enabled"}


def test_digest_pod_keeps_what_reconcile_reads():
    [full] = realistic_pods()[:1]
    full["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] = "{...}"
    found = digest_pod(full)
    assert (found.namespace, found.name, found.uid, found.resource_version) == (
        "shop", "checkout-7d9-abcde", full["metadata"]["uid"], full["metadata"]["resourceVersion"])
    assert found.labels == full["metadata"]["labels"]
    assert found.annotations == {"profiling.io/enabled": "true", "profiling.io/port": "6061",
                                 "profiling.io/path": "/debug/pprof/"}
    assert (found.running, found.pod_ip, found.service) == (True, "10.244.1.17", "checkout")
    assert found.containers == (Container("app", 0.25, 128 * 2**20, 256 * 2**20),
                                Container("proxy", 0.05, 32 * 2**20, None))
    assert found.source is None, "the pod itself is not kept"


def test_replicas_of_a_workload_share_their_labels_and_containers():
    first, second = (digest_pod(pod(name, "shop", app="checkout", owner_replicaset="checkout-7d9"))
                     for name in ("checkout-7d9-a", "checkout-7d9-b"))
    other = digest_pod(pod("batch-1", "shop", containers=[{"name": "job", "requests": {"cpu": "2"}}]))
    assert first.containers is second.containers and first.labels is second.labels
    assert first.containers == (Container("app", 0.25, 128 * 2**20, 256 * 2**20),)
    assert other.containers == (Container("job", 2.0, None, None),)


@pytest.mark.parametrize(
    ("text", "fields", "items"),
    [
        ("{}", {}, []),
        ('{"items":[]}', {"items": 0}, []),
        (' {"kind": "PodList", "metadata": {"continue": "x"},\n "items": [ {"a": [1, {"b": "]}"}]} , 2 ] } ',
         {"kind": "PodList", "metadata": {"continue": "x"}, "items": 2}, [{"a": [1, {"b": "]}"}]}, 2]),
        ('{"items": [{"a": 1}], "apiVersion": "v1"}', {"items": 1, "apiVersion": "v1"}, [{"a": 1}]),
        ('{"items": null}', {"items": None}, []),
    ],
)
def test_a_list_is_decoded_item_by_item(text, fields, items):
    seen: list = []
    assert (decode_list(text, seen.append), seen) == (fields, items)
    assert seen == (json.loads(text).get("items") or [])


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 1 << 16])
def test_a_list_arriving_in_chunks_is_decoded_as_a_whole_one(size):
    # Chunks of any size, cut inside numbers, strings, escapes and multi-byte characters.
    document = {"kind": "PodMetricsList", "metadata": {"resourceVersion": "12345"},
                "items": [{"name": f"pod-{i}", "usage": {"cpu": f"{i * 7919}n"}, "note": "µs \u00e9 \"ü\" ☃"}
                          for i in range(40)] + [12345, 6.5e-3, True, None, "x"]}
    body = json.dumps(document, ensure_ascii=False).encode()
    seen: list = []
    fields = decode_list((body[at : at + size] for at in range(0, len(body), size)), seen.append)
    assert seen == document["items"] and fields == {**document, "items": len(document["items"])}
    cut = body[:-1]  # the closing brace never comes
    with pytest.raises(ValueError, match="expected ','"):
        decode_list((cut[at : at + size] for at in range(0, len(cut), size)), lambda item: None)


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("", "expected '{'"), ("[1]", "expected '{'"), ('{"items": [1, 2,]}', "Expecting value"),
        ('{"items": [1 2]}', "expected ','"), ('{"items": [1]', "expected ','"), ('{"a" 1}', "expected ':'"),
        ("{1: 2}", "expected a field name"), ('{"a": 1} x', "extra data"),
    ],
)
def test_a_malformed_list_is_a_value_error_saying_where(text, complaint):
    with pytest.raises(ValueError, match=complaint):
        decode_list(text, lambda item: None)


# ----------------------------------------------------------------- metrics


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        (None, ""),
        ({}, ""),
        ({"matchLabels": {"app": "checkout"}}, "app=checkout"),
        ({"matchLabels": {"tier": "web", "app": "checkout", "empty": ""}}, "app=checkout,empty=,tier=web"),
        (
            {"matchLabels": {"a": "b"}, "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["web", "api"]},
                {"key": "canary", "operator": "DoesNotExist"},
                {"key": "env", "operator": "NotIn", "values": ["dev"]},
                {"key": "team", "operator": "Exists"},
            ]},
            "a=b,!canary,env notin (dev),team,tier in (api,web)",
        ),
        ({"matchExpressions": [{"key": "app.kubernetes.io/name", "operator": "In", "values": ["b", "a", "b"]}]},
         "app.kubernetes.io/name in (a,b)"),
        ({"matchLabels": {"tier": "web"}, "matchExpressions": [{"key": "tier", "operator": "Exists"}]},
         "tier=web,tier"),
    ],
)
def test_label_selectors_render_in_the_api_syntax(selector, expected):
    assert to_selector_string(selector) == expected


@pytest.mark.parametrize(
    ("selector", "complaint"),
    [
        ({"matchExpressions": [{"key": "tier", "operator": "In", "values": []}]}, "needs at least one value"),
        ({"matchExpressions": [{"key": "tier", "operator": "Exists", "values": ["x"]}]}, "takes no values"),
        ({"matchExpressions": [{"key": "tier", "operator": "Gt", "values": ["1"]}]}, "unknown operator"),
        ({"matchLabels": {"tier": "web,api"}}, "not a valid label value"),
        ({"matchLabels": {"bad key": "x"}}, "not a valid label key"),
    ],
)
def test_label_selectors_that_cannot_be_written_are_refused(selector, complaint):
    with pytest.raises(ValueError, match=complaint):
        to_selector_string(selector)


def test_pod_metrics_errors_name_the_api_path(kube_front, kube_api):
    metrics = MetricsServer(kube_api)
    kube_front.faults.add(Fault(path="metrics.k8s.io", status=500))
    with pytest.raises(MetricsUnavailable, match=r"GET /apis/metrics.k8s.io/v1beta1/namespaces/shop/pods: 500") as err:
        metrics.pod_metrics("shop", None)
    assert err.value.status == 500
    # What kube-apiserver answers for an API group nobody serves.
    kube_front.faults.add(Fault(path="metrics.k8s.io", status=404, message="the server could not find the requested resource"))
    with pytest.raises(MetricsUnavailable, match=r"metrics\.k8s\.io not available: is metrics-server installed"):
        metrics.pod_metrics(None, "app=x")


def test_pod_metrics_are_read_into_numbers_and_decide_the_same(kube_front, kube_api):
    names = ["checkout-1", "checkout-2"]
    for index, name in enumerate(names):
        kube_front.set_pod_metrics("shop", name, {"app": {"cpu": f"{100 + index}m", "memory": "64Mi"}})
    read = MetricsServer(kube_api).pod_metrics("shop", None)
    assert sorted(read) == [
        record("shop", name, (("app", (100 + index) / 1000, 64 * 1024.0**2),)) for index, name in enumerate(names)
    ]
    # Those of the pods not wanted are dropped as they are read.
    assert [m.name for m in MetricsServer(kube_api).pod_metrics(
        "shop", None, {("shop", "checkout-2")}.__contains__)] == ["checkout-2"]
    full = pod_metrics("checkout-1", "shop", {"app": {"cpu": "300m", "memory": "64Mi"}})
    pods = [pod("checkout-1", "shop", annotations=ENABLED)]
    spec = {"thresholds": {"cpuThresholdPercent": 50}}

    def plan(metrics):
        return reconcile(spec, {"now": "2026-11-25T10:00:00Z", "pods": pods, "podMetrics": metrics}).to_dict()

    assert plan([usage_of(full)]) == plan([slim_metrics(full)]) == plan([full])
    assert plan([usage_of(full)])["results"][0]["observed"] == {"cpuPercent": 120.0, "memoryPercent": 50.0}
    # What a PodUsage cannot hold (a quantity that is not one) stays a PodMetrics, for reconcile to name.
    bad = pod_metrics("checkout-1", "shop", {"app": {"cpu": "lots", "memory": "64Mi"}})
    assert usage_of(bad) is bad
    with pytest.raises(StateError, match=r"podMetrics\[0\]\.containers\[0\]\.usage\.cpu"):
        plan([slim_metrics(bad)])
    # What is not shaped like a PodMetrics goes on as it is, for reconcile to name.
    assert slim_metrics({"metadata": "x"}) == {"metadata": "x"} and slim_metrics(3) == 3


# ----------------------------------------------------------------- history

KEY = "shop/checkout"


def test_history_errors_are_history_errors(kube_front, kube_api, kube_namespace):
    kube_front.faults.add(Fault(path="configmaps", status=500))
    with pytest.raises(HistoryError, match="500"):
        ConfigMapHistory(kube_api, kube_namespace).load(KEY)


# ----------------------------------------------------------------- events


def test_events_never_raise(kube_front, kube_api, control_plane, kube_namespace):
    recorder = EventRecorder(kube_api)
    kube_front.faults.add(Fault(path="events", status=500))
    recorder.record({"apiVersion": "v1", "kind": "Pod", "namespace": kube_namespace, "name": "p", "uid": "1"},
                    "Normal", PROFILE_CAPTURED, "y")
    assert recorder.failures == 1
    assert client.CoreV1Api(control_plane.api()).list_namespaced_event(kube_namespace).items == []


# ----------------------------------------------------------------- status


def test_condition_transition_time_moves_only_when_the_status_changes():
    first = dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.UTC)
    later = first + dt.timedelta(minutes=5)
    start = conditions.set_condition(None, "Valid", True, "SpecValid", "ok", 1, first)
    same = conditions.set_condition(start, "Valid", "True", "SpecValid", "still ok", 2, later)
    flipped = conditions.set_condition(same, "Valid", False, "SpecError", "spec.thresholds: bad", 3, later)
    both = conditions.set_condition(flipped, "Ready", "Unknown", "Waiting", "", 3, later)
    assert same == [{"type": "Valid", "status": "True", "reason": "SpecValid", "message": "still ok",
                     "lastTransitionTime": "2026-11-25T10:00:00Z", "observedGeneration": 2}]
    assert flipped[0]["lastTransitionTime"] == "2026-11-25T10:05:00Z" and flipped[0]["status"] == "False"
    assert [c["type"] for c in both] == ["Valid", "Ready"] and start[0]["message"] == "ok"
    with pytest.raises(ValueError):
        conditions.set_condition(None, "Ready", "yes", "R", "", 1, first)


# ----------------------------------------------------------------- leader election


class Candidate:
    """A LeaderElector plus a record of its callbacks."""

    def __init__(self, api, namespace: str, identity: str, **timing) -> None:
        self.calls: list[str] = []
        timing = {"lease_duration": 2, "renew_deadline": 1.5, "retry_period": 0.2, **timing}
        self.elector = LeaderElector(
            api, namespace, "kprof-operator", identity,
            on_started_leading=lambda: self.calls.append("started"),
            on_stopped_leading=lambda: self.calls.append("stopped"),
            **timing,
        )


@pytest.fixture
def candidates(kube_api, kube_namespace) -> Iterator[Callable[..., Candidate]]:
    made: list[Candidate] = []

    def make(identity: str, **timing) -> Candidate:
        candidate = Candidate(kube_api, kube_namespace, identity, **timing)
        made.append(candidate)
        candidate.elector.start()
        return candidate

    yield make
    for candidate in made:
        candidate.elector.stop()


def test_a_stale_update_gets_409_and_the_candidate_steps_down(kube_front, control_plane, kube_namespace, candidates):
    a = candidates("operator-a")
    wait_until(lambda: a.elector.is_leader, "a to lead")
    # Hold a's next renewal after it has read the Lease; meanwhile someone else takes it over.
    held = kube_front.faults.add(Fault(method="PUT", path="leases", status=None, delay=0.8))
    wait_until(lambda: held.hits == 1, "a's renewal to be on its way")
    leases = client.CoordinationV1Api(control_plane.api())
    taken = leases.read_namespaced_lease("kprof-operator", kube_namespace)
    taken.spec.holder_identity, taken.spec.lease_duration_seconds = "intruder", 30
    leases.replace_namespaced_lease("kprof-operator", kube_namespace, taken)

    wait_until(lambda: not a.elector.is_leader, "a to step down")
    assert any(r.status == 409 for r in kube_front.requests if r.method == "PUT")
    assert a.calls == ["started", "stopped"]
    assert leases.read_namespaced_lease("kprof-operator", kube_namespace).spec.holder_identity == "intruder"


def test_a_leader_that_cannot_renew_steps_down_within_the_renew_deadline(kube_front, candidates):
    a = candidates("operator-a")
    wait_until(lambda: a.elector.is_leader, "a to lead")
    kube_front.faults.add(Fault(method="PUT", path="leases", status=500, count=None))
    wait_until(lambda: a.calls == ["started", "stopped"], "a to give up leadership")
    assert not a.elector.is_leader


def test_leader_timing_must_leave_room_to_renew(kube_api):
    with pytest.raises(ValueError, match="lease_duration > renew_deadline"):
        LeaderElector(kube_api, "ns", "lease", "me", lease_duration=10, renew_deadline=10, retry_period=2)

"""A workload's healthy baseline and the diff against it: reconcile takes one baseline capture per
workload and interval when its pods are below every threshold (spec.baseline); a healthy capture
becomes the workload's reference through the capture history; the next threshold capture's
summary holds the diff against it per type, the same diff `kprof diff` prints for the two
captures, and its one-line report names the top grower. Against the real Go sample app, into a
directory and into S3 (moto over HTTP)."""

from __future__ import annotations

import json
import time

import pytest

from kprof_lib.adapters.directory import LocalStore
from kprof_lib.adapters.pprof.direct import DirectTransport
from kprof_lib.adapters.s3 import S3Store
from kprof_lib.execution import summaries
from kprof_lib.execution.cycle import run_check
from kprof_lib.execution.executor import Executor
from kprof_lib.planning.reconcile import reconcile
from tests import profiles_support
from tests.support.pods import ENABLED, pod, pod_metrics

NOW = "2026-12-01T10:00:00Z"
SPEC = {
    "thresholds": {"cpuThresholdPercent": 80, "memoryThresholdPercent": 95, "cooldownSeconds": 60},
    "baseline": {"intervalSeconds": 600},
    "profileTypes": ["cpu", "heap", "goroutine"],
    "cpuProfileSeconds": 1,
}


def replica(name: str, app: str = "checkout", ip: str = "10.244.1.17", port: str = "6060") -> dict:
    return pod(name, "shop", app=app, pod_ip=ip, annotations={**ENABLED, "profiling.io/port": port})


def usage(name: str, cpu: str) -> dict:
    return pod_metrics(name, "shop", {"app": {"cpu": cpu, "memory": "10Mi"}})


def decide(history: dict, *, cpu: dict[str, str] | None = None, spec: dict = SPEC) -> dict[str, str]:
    names = ("checkout-a", "checkout-b", "search-a")
    pods = [replica(n, app=n.rsplit("-", 1)[0]) for n in names]
    metrics = [usage(n, (cpu or {}).get(n, "10m")) for n in names]
    plan = reconcile(spec, {"now": NOW, "pods": pods, "podMetrics": metrics, "history": history})
    return {d.pod: d.reason for d in plan.results}


@pytest.mark.parametrize(
    ("history", "cpu", "expected"),
    [
        # Nothing yet: one pod of each workload.
        ({}, None, {"checkout-a": "baseline", "checkout-b": "below-threshold", "search-a": "baseline"}),
        # A baseline of checkout 100 s ago (from either of its pods) holds; search's is 700 s old.
        (
            {
                "shop/checkout-b": {"lastBaselineCapture": "2026-12-01T09:58:20Z", "workload": "checkout"},
                "shop/search-a": {"lastBaselineCapture": "2026-12-01T09:48:20Z", "workload": "search"},
            },
            None,
            {"checkout-a": "below-threshold", "checkout-b": "below-threshold", "search-a": "baseline"},
        ),
        # A healthy on-demand capture counts as the workload's baseline too.
        (
            {"shop/checkout-a": {"lastHealthyCapture": "2026-12-01T09:59:00Z", "workload": "checkout"}},
            None,
            {"checkout-a": "below-threshold", "checkout-b": "below-threshold", "search-a": "baseline"},
        ),
        # A pod over its threshold is captured for that; its healthy sibling is the baseline.
        ({}, {"checkout-a": "900m"}, {"checkout-a": "cpu-threshold", "checkout-b": "baseline", "search-a": "baseline"}),
    ],
)
def test_one_baseline_per_workload_and_interval(history, cpu, expected):
    assert decide(history, cpu=cpu) == expected


def test_baselines_are_off_by_default():
    spec = {k: v for k, v in SPEC.items() if k != "baseline"}
    assert set(decide({}, spec=spec).values()) == {"below-threshold"}


@pytest.fixture(params=["directory", "s3"])
def store(request, tmp_path):
    if request.param == "directory":
        return LocalStore(tmp_path / "profiles")
    s3 = request.getfixturevalue("s3")
    bucket = request.getfixturevalue("s3_bucket")
    return S3Store(bucket, endpoint=s3.endpoint_url, region="us-east-1")


def test_a_threshold_capture_is_compared_with_the_workloads_baseline(go_app, store, tmp_path):
    host, port = go_app.url.removeprefix("http://").rsplit(":", 1)
    target = replica("checkout-a", ip=host, port=port)
    history: dict[str, dict[str, str]] = {}

    def check(cpu: str):
        state = {"now": NOW, "pods": [target], "podMetrics": [usage("checkout-a", cpu)], "history": history}
        return run_check(
            config_name="shop/cfg",
            spec=SPEC,
            gather=lambda: json.loads(json.dumps(state)),
            executor=Executor(concurrency=1),
            store=store,
            transport=DirectTransport(),
            save_history=lambda updates: [history.setdefault(k, {}).update(v) for k, v in updates.items()],
        )

    healthy = check("10m")
    [base] = healthy.summaries.values()
    assert healthy.plan.results[0].reason == "baseline" and base.error is None and base.grower is None
    entry = history["shop/checkout-a"]
    assert (entry["workload"], entry["lastBaselineCapture"]) == ("checkout", NOW)
    assert json.loads(entry["healthyCapture"])["uri"] == base.uri and entry["lastHealthyCapture"]

    go_app.load(cpu_seconds=30, workers=6, mem_mib=48, hold=30)
    time.sleep(0.5)
    incident = check("900m")
    [made] = incident.summaries.values()
    decision = incident.plan.results[0]
    assert decision.reason == "cpu-threshold" and made.error is None, made.error
    summary = made.summary
    assert summary["baseline"] == {"uri": base.uri, "capturedAt": base.summary["capture"]["capturedAt"], "pod": "shop/checkout-a"}
    assert sorted(summary["diff"]["types"]) == ["cpu", "goroutine", "heap"] and summary["diff"]["errors"] == {}
    heap = summary["diff"]["types"]["heap"]["growth"][0]
    assert heap["name"] == "main.allocateHeld" and heap["delta"] > 16 << 20
    # The grower is named in the one-line report (the Event's text), and the page shows the diff.
    assert made.grower and made.grower.startswith("cpu ") and made.grower.endswith(" pts")
    line = summaries.headline(decision, made)
    assert line.startswith("cpu-threshold (360% of request): ") and f"; grew most since the baseline: {made.grower} — " in line
    assert line.endswith(made.uri)
    # The incident is not a baseline; the workload's reference stays the healthy capture.
    assert json.loads(history["shop/checkout-a"]["healthyCapture"])["uri"] == base.uri
    # `kprof diff` on the two stored captures prints the same diff.
    extra = ["--s3-endpoint", store.endpoint] if isinstance(store, S3Store) else []
    done = profiles_support.kprof("diff", base.uri, made.uri, "-o", "json", *extra)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["types"] == summary["diff"]["types"]
    page = _page(store, made)
    assert "diff vs baseline" in page and "What grew since the baseline" in page


def _page(store, made) -> str:
    if isinstance(store, S3Store):
        key = made.page_uri.removeprefix(f"s3://{store.bucket}/")
        return store.client.get_object(Bucket=store.bucket, Key=key)["Body"].read().decode()
    return open(made.page_uri.removeprefix("file://")).read()

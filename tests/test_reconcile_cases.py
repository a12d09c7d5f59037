"""reconcile over table-driven fixtures: spec + cluster state -> the expected decision for every pod."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from kprof_lib import reconcile

HERE = Path(__file__).parent
CASES = yaml.safe_load((HERE / "fixtures" / "reconcile" / "cases.yaml").read_text())["cases"]
REPO = HERE.parent


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_case(case):
    state_before = copy.deepcopy(case["state"])
    spec_before = copy.deepcopy(case["spec"])
    plan = reconcile(case["spec"], case["state"]).to_dict()

    decided = {f"{r['namespace']}/{r['pod']}": f"{r['action']} {r['reason']}" for r in plan["results"]}
    assert decided == case["expected"]
    for key, observed in case.get("observed", {}).items():
        assert _result(plan, key)["observed"] == observed, key
    for key, reasons in case.get("reasons", {}).items():
        assert _result(plan, key)["reasons"] == reasons, key
    for key, message in case.get("messages", {}).items():
        assert _result(plan, key).get("message") == message, key
    for key, fields in case.get("fields", {}).items():
        result = _result(plan, key)
        assert {name: result.get(name) for name in fields} == fields, key
    if "activePods" in case:
        assert plan["summary"]["activePods"] == case["activePods"]
    assert case["state"] == state_before and case["spec"] == spec_before, "reconcile changed its input"


def _result(plan, key):
    namespace, pod = key.split("/")
    return next(r for r in plan["results"] if (r["namespace"], r["pod"]) == (namespace, pod))


def test_the_example_plan_in_full():
    """The threshold example over the example cluster state, every field of the plan shown."""
    spec = yaml.safe_load((REPO / "examples" / "profilingconfigs" / "threshold.yaml").read_text())["spec"]
    state = json.loads((REPO / "examples" / "cluster-state.json").read_text())
    plan = reconcile(spec, state).to_dict()
    thresholds = {"cpuPercent": 80, "memoryPercent": 90}
    types = ["cpu", "heap", "goroutine"]
    assert plan["results"] == [
        {
            "namespace": "kube-system",
            "pod": "coredns-76f75df574-8hqzl",
            "action": "none",
            "reason": "namespace-mismatch",
        },
        {
            "namespace": "shop",
            "pod": "cart-6b7d9f5c8-hn4vd",
            "action": "none",
            "reason": "below-threshold",
            "observed": {"cpuPercent": 40.4, "memoryPercent": 54.69},
        },
        {
            "namespace": "shop",
            "pod": "checkout-5d8f7c9b4-kx2lp",
            "action": "capture",
            "reason": "cpu-threshold",
            "reasons": ["cpu-threshold"],
            "podIP": "10.244.1.21",
            "profileTypes": types,
            "cpuProfileSeconds": 20,
            "endpoint": {"scheme": "http", "port": 6060, "path": "/debug/pprof"},
            "observed": {"cpuPercent": 104.06, "memoryPercent": 72.5},
            "thresholds": thresholds,
            "service": "checkout",
            "labels": {
                "pod-template-hash": state["pods"]["items"][0]["metadata"]["labels"]["pod-template-hash"],
                "app.kubernetes.io/name": "checkout",
                "tier": "backend",
            },
        },
        {
            "namespace": "shop",
            "pod": "checkout-5d8f7c9b4-q7wzn",
            "action": "none",
            "reason": "cooldown",
            "message": "memory-threshold: threshold cooldown until 2026-11-25T10:02:30Z",
            "observed": {"cpuPercent": 17.85, "memoryPercent": 103.44},
        },
        {
            "namespace": "shop",
            "pod": "inventory-6c4f8d7b9-zr6ks",
            "action": "none",
            "reason": "no-metrics",
            "observed": {"cpuPercent": None, "memoryPercent": None},
        },
        {
            "namespace": "shop",
            "pod": "ledger-59b8c7d6f-w9p4j",
            "action": "none",
            "reason": "invalid-annotation",
            "message": "invalid annotations: profiling.io/port='pprof' (must be digits only, 1-65535)",
        },
        {
            "namespace": "shop",
            "pod": "legacy-report-0",
            "action": "none",
            "reason": "no-baseline",
            "observed": {"cpuPercent": None, "memoryPercent": None},
        },
        {"namespace": "shop", "pod": "payments-84c9d7f6b-t5r2x", "action": "none", "reason": "not-running"},
        {
            "namespace": "shop",
            "pod": "recommender-78d5f9c6b-bx7qp",
            "action": "capture",
            "reason": "memory-threshold",
            "reasons": ["memory-threshold"],
            "podIP": "10.244.2.77",
            "profileTypes": types,
            "cpuProfileSeconds": 20,
            "endpoint": {"scheme": "http", "port": 6060, "path": "/internal/pprof"},
            "observed": {"cpuPercent": 29.05, "memoryPercent": 90.28},
            "thresholds": thresholds,
            "service": "recommender",
            "labels": {
                "pod-template-hash": state["pods"]["items"][8]["metadata"]["labels"]["pod-template-hash"],
                "app.kubernetes.io/name": "recommender",
                "tier": "backend",
            },
        },
        {"namespace": "shop", "pod": "search-7f6c5b8d9-m2k8r", "action": "none", "reason": "not-enabled"},
    ]
    assert plan["summary"] == {
        "activePods": 6,
        "byAction": {"capture": 2, "none": 8},
        "byReason": {
            "below-threshold": 1,
            "cooldown": 1,
            "cpu-threshold": 1,
            "invalid-annotation": 1,
            "memory-threshold": 1,
            "namespace-mismatch": 1,
            "no-baseline": 1,
            "no-metrics": 1,
            "not-enabled": 1,
            "not-running": 1,
        },
    }
    assert plan["now"] == "2026-11-25T10:00:00Z"


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ({"name": "p", "labels": {"app.kubernetes.io/name": "checkout", "app": "legacy"}}, "checkout"),
        ({"name": "p", "labels": {"app": "legacy"}}, "legacy"),
        (
            {
                "name": "web-5d8f7c9b4-x2x9q",
                "labels": {"pod-template-hash": "5d8f7c9b4"},
                "ownerReferences": [{"kind": "ReplicaSet", "name": "web-5d8f7c9b4", "controller": True}],
            },
            "web",
        ),
        ({"name": "db-0", "ownerReferences": [{"kind": "StatefulSet", "name": "db", "controller": True}]}, "db"),
        ({"name": "lonely"}, "lonely"),
    ],
)
def test_service_name(metadata, expected):
    from kprof_lib.state import naming

    assert naming.service_name(metadata) == expected

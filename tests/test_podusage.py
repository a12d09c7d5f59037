"""PodUsage records: read from PodMetrics as metrics-server writes them and as people may, decided
exactly as the PodMetrics they stand for, and what they cannot hold left for reconcile to name."""

from __future__ import annotations

import pytest

from kprof_lib import reconcile
from kprof_lib.state.errors import StateError
from kprof_lib.state.podusage import PodUsage, usage_at, usage_of
from tests.support.pods import ENABLED, pod, pod_metrics

NOW = "2026-11-25T10:00:00Z"
SPEC = {"thresholds": {"cpuThresholdPercent": 50, "memoryThresholdPercent": 90}}


def plan(metrics: list) -> dict:
    pods = [pod("web-1", "shop", annotations=ENABLED), pod("web-2", "shop", annotations=ENABLED)]
    return reconcile(SPEC, {"now": NOW, "pods": pods, "podMetrics": metrics}).to_dict()


@pytest.mark.parametrize(
    "usage",
    [
        {"cpu": "123456789n", "memory": "104729Ki"},  # what metrics-server writes
        {"cpu": "1.5", "memory": "1e3"},  # what the quantity grammar also allows
        {"cpu": "300m"},  # memory not reported
        {},
    ],
)
def test_a_pod_usage_decides_as_its_pod_metrics(usage):
    metrics = [pod_metrics("web-1", "shop", {"app": usage}), pod_metrics("web-2", "shop", {"app": {"cpu": "10m"}})]
    records = [usage_of(item) for item in metrics]
    assert all(type(record) is PodUsage for record in records)
    assert plan(records) == plan(metrics)
    assert plan(records[:1] + metrics[1:]) == plan(metrics)  # both forms, mixed


def test_figures_are_the_quantities_numbers():
    item = pod_metrics("web-1", "shop", {"app": {"cpu": "250m", "memory": "64Mi"}, "side": {"cpu": "1"}})
    assert usage_of(item) == PodUsage("shop", "web-1", (("app", 0.25, 64 * 2**20), ("side", 1.0, None)))


@pytest.mark.parametrize(
    "item",
    [
        pod_metrics("web-1", "shop", {"app": {"cpu": "lots", "memory": "64Mi"}}),
        pod_metrics("web-1", "shop", {"app": {"cpu": None, "memory": "64Mi"}}),
        {"metadata": {"name": "web-1"}, "containers": []},
        {"metadata": {"name": "web-1", "namespace": "shop"}, "containers": [{"usage": {}}]},
        "not a PodMetrics",
    ],
)
def test_what_a_pod_usage_cannot_hold_is_passed_on_unchanged(item):
    assert usage_of(item) is item


def test_a_bad_quantity_is_named_by_its_path():
    bad = pod_metrics("web-1", "shop", {"app": {"cpu": "10m", "memory": "-5Mi"}})
    with pytest.raises(StateError, match=r"podMetrics\[1\]\.containers\[0\]\.usage\.memory"):
        usage_at(bad, "podMetrics[1]")
    with pytest.raises(StateError, match=r"podMetrics\[1\]\.containers\[0\]\.usage\.memory"):
        plan([pod_metrics("web-2", "shop", {"app": {"cpu": "1m"}}), usage_of(bad)])


def test_a_pod_usage_given_twice_is_named():
    record = usage_of(pod_metrics("web-1", "shop", {"app": {"cpu": "10m"}}))
    with pytest.raises(StateError, match=r"podMetrics\[1\].*duplicates podMetrics\[0\] \(shop/web-1\)"):
        plan([record, record])

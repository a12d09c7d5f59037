"""PodUsage records: read from PodMetrics as metrics-server writes them and as people may, decided
exactly as the PodMetrics they stand for, and what they cannot hold left for reconcile to name."""

from __future__ import annotations

from unittest.mock import ANY

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kprof_lib import reconcile
from kprof_lib.adapters.kube.informer import digest_pod
from kprof_lib.planning import usage
from kprof_lib.state.digest import Container, PodDigest
from kprof_lib.state.errors import StateError
from kprof_lib.state.podusage import PodUsage, record, usage_at, usage_of
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
    containers = (("app", 0.25, 64 * 2**20), ("side", 1.0, None))
    # The names in order and the sums (None: a container did not report memory).
    assert usage_of(item) == PodUsage("shop", "web-1", containers, ("app", "side"), 1.25, None)
    assert usage_of(item) == record("shop", "web-1", containers)
    usual = pod_metrics(
        "web-1", "shop", {"app": {"cpu": "250m", "memory": "64Mi"}, "side": {"cpu": "1", "memory": "1Mi"}}
    )
    assert usage_of(usual) == PodUsage("shop", "web-1", ANY, ("app", "side"), 1.25, 65 * 2**20)


@pytest.mark.parametrize(
    ("containers", "reported"),
    [
        ([("app", "250m", "64Mi"), ("side", "50m", "16Mi")], ["app", "side"]),  # measured from the sums
        ([("app", "250m", "64Mi"), ("side", "50m", "16Mi")], ["side", "app"]),  # another order
        ([("app", "250m", "64Mi"), ("side", "50m", "16Mi")], ["app"]),  # a container not reported
        ([("app", "250m", "64Mi"), ("side", "50m", "16Mi")], ["app", "side", "extra"]),  # one not in the pod
        ([("app", "250m", "64Mi"), ("side", "0", "16Mi")], ["app", "side"]),  # a zero request: not counted
        ([("app", "250m", "64Mi"), ("side", None, "16Mi")], ["app", "side"]),  # no CPU request
        ([("app", "250m", "64Mi")], ["app", "app"]),  # reported twice
        ([("app", "250m", "64Mi"), ("app", "50m", "16Mi")], ["app", "app"]),  # a name twice in the pod too
    ],
)
def test_summed_usage_decides_as_container_by_container(containers, reported):
    """A pod whose containers match its record is measured from the sums; any other is measured
    container by container; both give the numbers of its PodMetrics."""
    spec = {"thresholds": {"cpuThresholdPercent": 10, "memoryThresholdPercent": 50}, "triggers": {"oom": {}}}
    specs = [
        {"name": name, "requests": {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v}}
        for name, cpu, memory in containers
    ]
    for entry in specs:
        entry["limits"] = {"memory": "128Mi"}
    pods = [digest_pod(pod("web-1", "shop", annotations=ENABLED, containers=specs))]
    metrics = [pod_metrics("web-1", "shop", {})]
    metrics[0]["containers"] = [
        {"name": name, "usage": {"cpu": f"{30 + 10 * index}m", "memory": f"{40 + index}Mi"}}
        for index, name in enumerate(reported)
    ]
    state = {"now": NOW, "pods": pods, "podMetrics": metrics}
    by_metrics = reconcile(spec, state)
    by_record = reconcile(spec, {**state, "podMetrics": [usage_of(metrics[0])]})
    assert by_record.to_dict() == by_metrics.to_dict()
    assert by_record.results[0].observed == by_metrics.results[0].observed
    assert by_record.results[0].observed is not None and by_record.results[0].observed.cpu_percent is not None


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


# Mostly figures above zero, as pods have; sometimes none, or zero (neither counts as a base).
cores = st.floats(0.001, 64, allow_subnormal=False)
bytes_ = st.floats(1, 2**34, allow_subnormal=False)
figures = st.builds(lambda pick, value: {0: None, 1: 0.0}.get(pick, value), st.integers(0, 15), cores)
byte_figures = st.builds(lambda pick, value: {0: None, 1: 0.0}.get(pick, value), st.integers(0, 15), bytes_)
names = st.sampled_from(["app", "side", "init", "proxy"])


@settings(max_examples=500, deadline=None)
@given(
    # Each name once, as the API allows in a pod; a record may name a container twice.
    containers=st.lists(
        st.tuples(names, figures, byte_figures, byte_figures), min_size=1, max_size=3, unique_by=lambda c: c[0]
    ),
    reported=st.lists(st.tuples(names, figures, byte_figures), min_size=1, max_size=4),
    same_names=st.booleans(),
    with_limit=st.booleans(),
)
def test_a_pod_measured_from_sums_measures_as_container_by_container(containers, reported, same_names, with_limit):
    """Every field of the usage, exactly, whether a pod is measured from its record's sums or not."""
    pod_containers = tuple(Container(*c) for c in containers)
    if same_names:  # as most pods are: every container reported, in order
        reported = [(c.name, *figures_[1:]) for c, figures_ in zip(pod_containers, reported * 4, strict=False)]
    digest = PodDigest("shop", "web-1", containers=pod_containers)
    used = record("shop", "web-1", tuple(reported))
    summed = usage.bases(pod_containers)
    one_by_one = usage.measure(digest, 0, used, "", with_limit=with_limit)
    assert usage.measure(digest, 0, used, "", with_limit=with_limit, summed=summed) == one_by_one

"""Which configs the operator wakes when a pod's profiling.io/capture-now annotation changes
(kprof_lib.runtimes.operator.requests): each distinct value once, only configs that select the
pod (their own namespace unless cluster-wide, as planning.tenancy has it) and take capture-now,
nothing while standing by; the end-to-end test in test_triggers_e2e.py shows the capture that
follows."""

from __future__ import annotations

import pytest

from kprof_lib.adapters.kube.informer import digest_pod
from kprof_lib.runtimes.operator.requests import CaptureNowWakeups


def config(name: str, namespace: str = "shop", **spec):
    return {"metadata": {"name": name, "namespace": namespace}, "spec": spec}


def pod(value: str | None, *, name: str = "api-1", namespace: str = "shop", tier: str = "backend"):
    annotations = {"profiling.io/enabled": "true"}
    if value is not None:
        annotations["profiling.io/capture-now"] = value
    # What the pod cache hands on: the pod's digest.
    return digest_pod(
        {"metadata": {"name": name, "namespace": namespace, "labels": {"tier": tier}, "annotations": annotations}}
    )


CONFIGS = [
    config("everything"),
    config("backend", selector={"namespace": "shop", "labelSelector": {"matchLabels": {"tier": "backend"}}}),
    config(
        "frontend",
        selector={"labelSelector": {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["web"]}]}},
    ),
    config("elsewhere", selector={"namespace": "batch"}),  # not cluster-wide: invalid
    config("platform", "kprof-system"),  # cluster-wide: every namespace
    config("platform-batch", "kprof-system", selector={"namespace": "batch"}),
    config("batch-own", "batch"),
    config("no-requests", triggers={"captureNow": {"enabled": False}}),
    config("broken", selector={"labelSelector": {"matchExpressions": [{"key": "tier"}]}}),
]


@pytest.fixture
def woken():
    return []


def wakeups(woken, *, active=lambda: True):
    return CaptureNowWakeups(
        lambda: CONFIGS, lambda key: woken.append(key) or True, active, cluster_wide_namespaces=["kprof-system"]
    )


def test_a_new_value_wakes_the_configs_that_select_the_pod_once(woken):
    watch = wakeups(woken)
    watch("ADDED", pod(None))
    assert woken == []
    watch("MODIFIED", pod("incident-1"))
    assert woken == ["shop/everything", "shop/backend", "kprof-system/platform"]
    # Other changes of the pod (a status, a label) with the same value: nothing more.
    watch("MODIFIED", pod("incident-1"))
    watch("MODIFIED", pod("incident-1", tier="web"))
    assert len(woken) == 3
    watch("MODIFIED", pod("incident-2", tier="web"))
    assert woken[3:] == ["shop/everything", "shop/frontend", "kprof-system/platform"]
    # Removed, then set again to the same value: that is a change too (reconcile knows it was served).
    watch("MODIFIED", pod(None))
    watch("MODIFIED", pod("incident-2"))
    assert woken[6:] == ["shop/everything", "shop/backend", "kprof-system/platform"]


def test_a_deleted_pod_is_forgotten_and_a_standby_wakes_nothing(woken):
    standing_by = wakeups(woken, active=lambda: False)
    standing_by("MODIFIED", pod("incident-1"))
    assert woken == []
    watch = wakeups(woken)
    # A config of another namespace (not cluster-wide) selects its own only, whatever it asks.
    watch("ADDED", pod("incident-1", namespace="batch"))
    assert woken == ["kprof-system/platform", "kprof-system/platform-batch", "batch/batch-own"]
    watch("DELETED", pod("incident-1", namespace="batch"))
    assert woken[3:] == []
    assert watch._seen == {}


def test_a_wake_up_that_fails_is_logged_not_raised(caplog):
    def fail(key):
        raise RuntimeError("scheduler gone")

    CaptureNowWakeups(lambda: CONFIGS, fail, lambda: True)("MODIFIED", pod("x"))
    assert "capture-now wake-up for shop/api-1 failed" in caplog.text

"""Cluster state errors: each names its path; what the API never returns is refused."""

from __future__ import annotations

import pytest

from kprof_lib import StateError, reconcile

ENABLED = {"profiling.io/enabled": "true"}
RUNNING = {"phase": "Running", "podIP": "10.0.0.1"}
THRESHOLDS = {"thresholds": {}}


def pod(name="p", namespace="n", **extra):
    return {
        "metadata": {"name": name, "namespace": namespace, "annotations": ENABLED},
        "status": RUNNING,
        "spec": {"containers": [{"name": "app", "resources": {"requests": {"cpu": "100m", "memory": "10Mi"}}}]},
        **extra,
    }


def metrics(cpu="10m", memory="1Mi", name="p"):
    return {
        "metadata": {"name": name, "namespace": "n"},
        "containers": [{"name": "app", "usage": {"cpu": cpu, "memory": memory}}],
    }


def errors(state, spec=THRESHOLDS):
    with pytest.raises(StateError) as caught:
        reconcile(spec, state)
    return caught.value.errors


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ({}, [{"path": "now", "message": "is required"}, {"path": "pods", "message": "is required"}]),
        (
            {"now": "2026-11-25T10:00:00", "pods": []},
            [
                {
                    "path": "now",
                    "message": "'2026-11-25T10:00:00' is not an RFC 3339 timestamp with a zone (e.g. 2026-01-02T03:04:05Z)",
                }
            ],
        ),
        ({"now": "yesterday", "pods": []}, [{"path": "now", "message": "'yesterday' is not an RFC 3339 timestamp"}]),
        (
            {"now": "2026-11-25T10:00:00Z", "pods": {"kind": "PodList"}},
            [{"path": "pods", "message": "must be a list or a List object with items"}],
        ),
        (
            {"now": "2026-11-25T10:00:00Z", "pods": [{"metadata": {"name": "p"}}]},
            [{"path": "pods[0].metadata.namespace", "message": "is required"}],
        ),
        (
            {"now": "2026-11-25T10:00:00Z", "pods": [pod(), pod()]},
            [{"path": "pods[1]", "message": "duplicates pods[0] (n/p)"}],
        ),
        (
            {
                "now": "2026-11-25T10:00:00Z",
                "pods": [{"metadata": {"name": "p", "namespace": "n", "labels": {"a": 1}}}],
            },
            [{"path": "pods[0].metadata.labels", "message": "must map strings to strings"}],
        ),
        (
            {"now": "2026-11-25T10:00:00Z", "pods": [], "history": {"p": {}}},
            [{"path": "history['p']", "message": "keys must be namespace/pod"}],
        ),
        (
            {"now": "2026-11-25T10:00:00Z", "pods": [], "history": {"n/p": {"lastThresholdCapture": "noon"}}},
            [{"path": "history['n/p'].lastThresholdCapture", "message": "'noon' is not an RFC 3339 timestamp"}],
        ),
        (
            {"now": "2026-11-25T10:00:00Z", "pods": [], "podMetrics": [metrics(), metrics()]},
            [{"path": "podMetrics[1]", "message": "duplicates podMetrics[0] (n/p)"}],
        ),
        (
            {"now": "2026-11-25T10:00:00Z", "pods": [], "podMetrics": [{"metadata": {"name": "p"}, "containers": []}]},
            [{"path": "podMetrics[0].metadata", "message": "needs name and namespace"}],
        ),
    ],
)
def test_state_problems_name_their_path(state, expected):
    assert errors(state) == expected


@pytest.mark.parametrize("bad", ["-100m", "NaN", "Infinity", "lots", "1.5.5"])
def test_quantities_no_api_server_returns_are_refused(bad):
    state = {"now": "2026-11-25T10:00:00Z", "pods": [pod()], "podMetrics": [metrics(cpu=bad)]}
    [problem] = errors(state)
    assert problem["path"] == "podMetrics[0].containers[0].usage.cpu"
    assert repr(bad) in problem["message"]


def test_a_bad_request_quantity_names_the_pod_field():
    broken = pod()
    broken["spec"]["containers"][0]["resources"]["requests"]["memory"] = "-1Mi"
    state = {"now": "2026-11-25T10:00:00Z", "pods": [broken], "podMetrics": [metrics()]}
    assert errors(state) == [
        {
            "path": "pods[0].spec.containers[0].resources.requests.memory",
            "message": "'-1Mi' is not a valid quantity (negative, NaN and infinite are not allowed)",
        }
    ]


def test_state_error_is_a_value_error_listing_everything():
    with pytest.raises(ValueError, match=r"invalid cluster state: 2 problems\n  now: is required\n  pods: is required"):
        reconcile({}, {})


def test_kubectl_output_is_accepted_as_is():
    state = {
        "now": "2026-11-25T10:00:00Z",
        "pods": {"apiVersion": "v1", "kind": "List", "items": [pod()], "metadata": {}},
        "podMetrics": {"kind": "PodMetricsList", "apiVersion": "metrics.k8s.io/v1beta1", "items": [metrics("95m")]},
    }
    [result] = reconcile(THRESHOLDS, state).to_dict()["results"]
    assert (result["action"], result["reason"], result["observed"]) == (
        "capture",
        "cpu-threshold",
        {"cpuPercent": 95.0, "memoryPercent": 10.0},
    )

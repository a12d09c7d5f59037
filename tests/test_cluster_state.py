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


TRIGGERS = {
    "triggers": {
        "spike": {"cpuDiffPercent": 50},
        "goroutines": {"goroutineThreshold": 100},
        "alerts": {"enabled": True},
    }
}
NOW = "2026-11-25T10:00:00Z"


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            {"usageWindow": [1]},
            [{"path": "usageWindow", "message": "must be an object keyed namespace/pod"}],
        ),
        (
            {"usageWindow": {"n/p": {"time": NOW}}},
            [{"path": "usageWindow['n/p']", "message": "must be a list of samples, oldest first"}],
        ),
        (
            {"usageWindow": {"n/p": [{"time": NOW}] * 121}},
            [{"path": "usageWindow['n/p']", "message": "holds 121 samples; at most 120"}],
        ),
        (
            {"usageWindow": {"n/p": [{"time": "09:59"}]}},
            [{"path": "usageWindow['n/p'][0].time", "message": "'09:59' is not an RFC 3339 timestamp"}],
        ),
        (
            {"usageWindow": {"n/p": [{"time": "2026-11-25T09:59:00Z", "cpuCores": -0.1}]}},
            [{"path": "usageWindow['n/p'][0].cpuCores", "message": "must be a number >= 0 or null"}],
        ),
        (
            {"usageWindow": {"n/p": [{"time": "2026-11-25T09:59:00Z", "memoryBytes": "64Mi"}]}},
            [{"path": "usageWindow['n/p'][0].memoryBytes", "message": "must be a number >= 0 or null"}],
        ),
        (
            {"usageWindow": {"n/p": [{"time": "2026-11-25T09:59:00Z", "goroutines": 1.5}]}},
            [{"path": "usageWindow['n/p'][0].goroutines", "message": "must be a whole number >= 0 or null"}],
        ),
        (
            {"goroutines": {"n/p": -1}},
            [{"path": "goroutines['n/p']", "message": "must be a whole number of goroutines >= 0, not -1"}],
        ),
        (
            {"alerts": {"fingerprint": "f"}},
            [{"path": "alerts", "message": "must be a list of firing alerts"}],
        ),
        (
            {"alerts": [{"alertname": "A", "namespace": "n", "pod": "", "matchLabels": {"a": 1}, "startsAt": "x"}]},
            [
                {"path": "alerts[0].fingerprint", "message": "is required (a non-empty string)"},
                {"path": "alerts[0].pod", "message": "must be a non-empty string"},
                {"path": "alerts[0].matchLabels", "message": "must map strings to strings"},
                {"path": "alerts[0].startsAt", "message": "'x' is not an RFC 3339 timestamp"},
            ],
        ),
        (
            {"history": {"n/p": {"captureNowValue": 3, "alertFingerprints": "f1", "lastSpikeCapture": "soon"}}},
            [
                {"path": "history['n/p'].lastSpikeCapture", "message": "'soon' is not an RFC 3339 timestamp"},
                {"path": "history['n/p'].captureNowValue", "message": "must be a string"},
                {"path": "history['n/p'].alertFingerprints", "message": "must be a list of strings"},
            ],
        ),
    ],
)
def test_the_triggers_inputs_name_their_path(extra, expected):
    state = {"now": NOW, "pods": [pod()], "podMetrics": [metrics()], "goroutines": {"n/p": 5}, **extra}
    assert errors(state, TRIGGERS) == expected


def test_a_pods_window_and_count_are_read_only_when_a_trigger_asks():
    """Malformed samples of a pod no trigger reads cost nothing and raise nothing (10,000 pods'
    windows are not checked for a spec that reads none)."""
    state = {
        "now": NOW,
        "pods": [pod()],
        "podMetrics": [metrics()],
        "usageWindow": {"n/p": [{"time": "later"}]},
        "goroutines": {"n/p": "many"},
    }
    assert [d.reason for d in reconcile(THRESHOLDS, state).results] == ["below-threshold"]


# -- pod digests (schemas/cluster_state.schema.json, $defs/podDigest) ------------------------------


def test_a_state_of_digests_matches_the_schema_and_is_decided_as_its_pods():
    import jsonschema

    from kprof_lib.spec import schemas
    from kprof_lib.state import digest

    pods = [pod("p"), pod("q", status={"phase": "Pending"})]
    digests = [digest.from_pod(p, f"pods[{i}]").to_json() for i, p in enumerate(pods)]
    assert digests[0] == {
        "kind": "PodDigest", "namespace": "n", "name": "p", "annotations": ENABLED, "running": True,
        "service": "p", "podIP": "10.0.0.1",
        "containers": [{"name": "app", "cpu": 0.1, "memory": 10 * 2**20, "memoryLimit": None}],
    }  # fmt: skip
    base = {"now": "2026-11-25T10:00:00Z", "podMetrics": [metrics("95m", name="p")]}
    validator = jsonschema.Draft202012Validator(schemas.load("cluster_state"))
    for state in ({**base, "pods": digests}, {**base, "pods": [digests[0], pods[1]]}):
        validator.validate(state)
        assert reconcile(THRESHOLDS, state).to_dict() == reconcile(THRESHOLDS, {**base, "pods": pods}).to_dict()
    assert not validator.is_valid({**base, "pods": [{"kind": "PodDigest", "name": "p"}]})


def test_a_bad_digest_names_every_field():
    bad = {
        "kind": "PodDigest", "namespace": "", "name": "p", "labels": {"a": 1}, "running": "yes",
        "containers": [{"name": "app", "cpu": -1, "memory": "10Mi"}, "app"],
    }  # fmt: skip
    each = [
        ("namespace", "is required (a non-empty string)"),
        ("labels", "must map strings to strings"),
        ("running", "must be true or false"),
        ("containers[0].cpu", "must be a number >= 0 (cores, bytes) or null"),
        ("containers[0].memory", "must be a number >= 0 (cores, bytes) or null"),
        ("containers[1]", "must be an object with a name"),
    ]
    # Every problem of every bad digest, in order: pods[1], then pods[2].
    assert errors({"now": "2026-11-25T10:00:00Z", "pods": [pod("q"), bad, bad]}) == [
        {"path": f"pods[{index}].{field}", "message": message} for index in (1, 2) for field, message in each
    ]

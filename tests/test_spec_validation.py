"""ProfilingConfig validation: defaults come from the schema, every problem is reported with its path."""

from __future__ import annotations

import copy

import pytest

from kprof_lib import SpecError, validate_document, validate_spec
from kprof_lib.spec import schemas

MINIMAL_DOCUMENT = {
    "apiVersion": "profiling.io/v1alpha1",
    "kind": "ProfilingConfig",
    "metadata": {"name": "x"},
    "spec": {},
}


def problems(spec):
    with pytest.raises(SpecError) as caught:
        validate_spec(spec)
    return caught.value.errors


def test_defaults_are_applied_from_the_schema():
    assert validate_spec({"thresholds": {}, "onDemand": {}, "s3Config": {"bucket": "profiles"}}) == {
        "thresholds": {
            "cpuThresholdPercent": 80,
            "memoryThresholdPercent": 90,
            "checkIntervalSeconds": 30,
            "cooldownSeconds": 300,
        },
        "onDemand": {"enabled": False, "intervalSeconds": 300},
        "s3Config": {"bucket": "profiles", "prefix": "", "keyLayout": "pod"},
        "profileTypes": ["heap", "cpu", "goroutine", "mutex"],
        "cpuProfileSeconds": 30,
    }


def test_absent_objects_stay_absent():
    # No thresholds object means no threshold captures; defaults must not invent one.
    assert validate_spec({}) == {"profileTypes": ["heap", "cpu", "goroutine", "mutex"], "cpuProfileSeconds": 30}


def test_input_is_not_mutated():
    spec = {"thresholds": {"cpuThresholdPercent": 50}, "profileTypes": ["heap"]}
    before = copy.deepcopy(spec)
    validate_spec(spec)
    assert spec == before


def test_the_schema_defaults_are_the_documented_ones():
    spec = schemas.spec_schema()["properties"]
    assert spec["thresholds"]["properties"]["cpuThresholdPercent"]["default"] == 80
    assert spec["onDemand"]["properties"]["intervalSeconds"]["maximum"] == 86400


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            {"thresholds": {"cooldownSeconds": 10}},
            [{"path": "spec.thresholds.cooldownSeconds", "message": "10 is less than the minimum of 60"}],
        ),
        (
            {"profileTypes": ["heap", "bogus"]},
            [
                {
                    "path": "spec.profileTypes[1]",
                    "message": "'bogus' is not one of ['heap', 'cpu', 'goroutine', 'mutex', 'block', 'allocs', 'threadcreate']",
                }
            ],
        ),
        (
            {"threshold": {"cpuThresholdPercent": 50}},
            [
                {
                    "path": "spec.threshold",
                    "message": "unknown field (allowed: baseline, cpuProfileSeconds, onDemand, pgo, profileTypes, s3Config, selector, thresholds, transport, triggers)",
                }
            ],
        ),
        (
            {"s3Config": {"region": "eu-west-1"}},
            [{"path": "spec.s3Config.bucket", "message": "is required"}],
        ),
        (
            {
                "thresholds": {"cpuThresholdPercent": 0, "memoryThresholdPercent": 1001},
                "onDemand": {"intervalSeconds": 29},
            },
            [
                {"path": "spec.onDemand.intervalSeconds", "message": "29 is less than the minimum of 30"},
                {"path": "spec.thresholds.cpuThresholdPercent", "message": "0 is less than the minimum of 1"},
                {
                    "path": "spec.thresholds.memoryThresholdPercent",
                    "message": "1001 is greater than the maximum of 1000",
                },
            ],
        ),
        (
            {"profileTypes": [], "cpuProfileSeconds": 301},
            [
                {"path": "spec.cpuProfileSeconds", "message": "301 is greater than the maximum of 300"},
                {"path": "spec.profileTypes", "message": "[] should be non-empty"},
            ],
        ),
        (
            {"profileTypes": ["heap", "heap"]},
            [{"path": "spec.profileTypes", "message": "['heap', 'heap'] has non-unique elements"}],
        ),
        (
            {"selector": {"namespace": ""}},
            [{"path": "spec.selector.namespace", "message": "'' should be non-empty"}],
        ),
        (
            {
                "selector": {
                    "labelSelector": {
                        "matchExpressions": [
                            {"key": "tier", "operator": "In"},
                            {"key": "tier", "operator": "NotIn", "values": []},
                            {"key": "tier", "operator": "Exists", "values": ["x"]},
                            {"key": "tier", "operator": "Near", "values": ["x"]},
                        ]
                    }
                }
            },
            [
                {
                    "path": "spec.selector.labelSelector.matchExpressions[0].values",
                    "message": "operators In and NotIn need a non-empty values list",
                },
                {
                    "path": "spec.selector.labelSelector.matchExpressions[1].values",
                    "message": "operators In and NotIn need a non-empty values list",
                },
                {
                    "path": "spec.selector.labelSelector.matchExpressions[2].values",
                    "message": "operators Exists and DoesNotExist take no values",
                },
                {
                    "path": "spec.selector.labelSelector.matchExpressions[3].operator",
                    "message": "'Near' is not one of ['In', 'NotIn', 'Exists', 'DoesNotExist']",
                },
            ],
        ),
        (
            {"thresholds": {"checkIntervalSeconds": 30.5, "cpuThresholdPercent": "80"}},
            [
                {"path": "spec.thresholds.checkIntervalSeconds", "message": "30.5 is not of type 'integer'"},
                {"path": "spec.thresholds.cpuThresholdPercent", "message": "'80' is not of type 'number'"},
            ],
        ),
        (
            {"s3Config": {"bucket": "Bad_Bucket", "endpoint": "minio:9000", "keyLayout": "flat"}},
            [
                {
                    "path": "spec.s3Config.bucket",
                    "message": "'Bad_Bucket' does not match '^[a-z0-9][a-z0-9.-]*[a-z0-9]$'",
                },
                {
                    "path": "spec.s3Config.endpoint",
                    "message": "'minio:9000' does not match '^https?://[^\\\\s/]+(/\\\\S*)?$'",
                },
                {"path": "spec.s3Config.keyLayout", "message": "'flat' is not one of ['pod', 'service-date']"},
            ],
        ),
        (
            {"s3Config": {"bucket": "profiles", "kmsKeyId": "arn:aws:kms:eu-west-1:1:key/x"}},
            [{"path": "spec.s3Config.serverSideEncryption", "message": "kmsKeyId needs serverSideEncryption: aws:kms"}],
        ),
        (
            {"onDemand": {"enabled": "yes"}},
            [{"path": "spec.onDemand.enabled", "message": "'yes' is not of type 'boolean'"}],
        ),
        ("nope", [{"path": "spec", "message": "must be an object, not str"}]),
    ],
)
def test_every_problem_is_reported_with_its_path(spec, expected):
    assert problems(spec) == expected


def test_str_shows_every_problem():
    with pytest.raises(SpecError) as caught:
        validate_spec({"thresholds": {"cooldownSeconds": 10}, "profileTypes": ["bogus"]})
    assert str(caught.value) == (
        "invalid ProfilingConfig spec: 2 problems\n"
        "  spec.profileTypes[0]: 'bogus' is not one of ['heap', 'cpu', 'goroutine', 'mutex', 'block', 'allocs', 'threadcreate']\n"
        "  spec.thresholds.cooldownSeconds: 10 is less than the minimum of 60"
    )
    assert isinstance(caught.value, ValueError)


def test_a_whole_document_is_checked_for_kind_and_name():
    assert validate_document(MINIMAL_DOCUMENT)["spec"]["cpuProfileSeconds"] == 30
    with pytest.raises(SpecError) as caught:
        validate_document({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}, "spec": {"cpuProfileSeconds": 0}})
    assert caught.value.errors == [
        {"path": "apiVersion", "message": "must be 'profiling.io/v1alpha1', not 'v1'"},
        {"path": "kind", "message": "must be 'ProfilingConfig', not 'ConfigMap'"},
        {"path": "metadata.name", "message": "is required"},
        {"path": "spec.cpuProfileSeconds", "message": "0 is less than the minimum of 1"},
    ]


def test_triggers_defaults_are_applied_and_capture_now_is_on_without_them():
    assert validate_spec({"triggers": {"spike": {"memoryDiffPercent": 30}, "oom": {}, "alerts": {}}})["triggers"] == {
        "windowSamples": 10,
        "spike": {
            "memoryDiffPercent": 30,
            "cpuFloorPercent": 20,
            "memoryFloorPercent": 20,
            "minSamples": 5,
            "cooldownSeconds": 300,
        },
        "oom": {"oomHorizonSeconds": 600, "minSamples": 4, "cooldownSeconds": 600},
        "captureNow": {"enabled": True},
        "alerts": {"enabled": False, "cooldownSeconds": 300},
    }
    triggers = validate_spec({"thresholds": {"cooldownSeconds": 120}}).triggers
    assert (triggers.capture_now, triggers.alerts, triggers.spike, triggers.oom) == (True, False, None, None)
    assert (triggers.threshold_cooldown, triggers.spike_cooldown, triggers.window_samples) == (120, 300, 10)
    # An oom-risk capture takes heap first, then the spec's types.
    assert validate_spec({"profileTypes": ["cpu", "heap"], "triggers": {"oom": {}}}).triggers.oom.profile_types == (
        "heap",
        "cpu",
    )


@pytest.mark.parametrize(
    ("triggers", "expected"),
    [
        (
            {"spike": {}, "goroutines": {"floor": 5}},
            [
                {"path": "spec.triggers.goroutines", "message": "needs goroutineThreshold, spikeDiffPercent or both"},
                {"path": "spec.triggers.spike", "message": "needs cpuDiffPercent, memoryDiffPercent or both"},
            ],
        ),
        (
            {"windowSamples": 4, "spike": {"cpuDiffPercent": 50}, "oom": {"minSamples": 4}},
            [{"path": "spec.triggers.spike.minSamples", "message": "5 is more than spec.triggers.windowSamples (4)"}],
        ),
        (
            {"windowSamples": 2, "maxCapturesPerMinute": 0},
            [
                {"path": "spec.triggers.maxCapturesPerMinute", "message": "0 is less than the minimum of 1"},
                {"path": "spec.triggers.windowSamples", "message": "2 is less than the minimum of 3"},
            ],
        ),
        (
            {"oom": {"oomHorizonSeconds": 10, "profileTypes": []}, "alerts": {"cooldownSeconds": 5}},
            [
                {"path": "spec.triggers.alerts.cooldownSeconds", "message": "5 is less than the minimum of 60"},
                {"path": "spec.triggers.oom.oomHorizonSeconds", "message": "10 is less than the minimum of 30"},
                {"path": "spec.triggers.oom.profileTypes", "message": "[] should be non-empty"},
            ],
        ),
        (
            {"goroutines": {"goroutineThreshold": 0, "spikeDiffPercent": "lots"}, "captureNow": {"enabled": "yes"}},
            [
                {"path": "spec.triggers.captureNow.enabled", "message": "'yes' is not of type 'boolean'"},
                {"path": "spec.triggers.goroutines.goroutineThreshold", "message": "0 is less than the minimum of 1"},
                {"path": "spec.triggers.goroutines.spikeDiffPercent", "message": "'lots' is not of type 'number'"},
            ],
        ),
        (
            {"spikes": {}},
            [
                {
                    "path": "spec.triggers.spikes",
                    "message": "unknown field (allowed: alerts, captureNow, goroutines, maxCapturesPerMinute, oom, "
                    "spike, windowSamples)",
                }
            ],
        ),
    ],
)
def test_trigger_problems_name_the_field(triggers, expected):
    assert problems({"triggers": triggers}) == expected

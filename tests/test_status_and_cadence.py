"""The pure pieces beside reconcile that the runtimes share: the status a run writes
(`planning.status.build`) and when captures fall due (`planning.cadence`)."""

from __future__ import annotations

import datetime as dt

import pytest

from kprof_lib.planning import cadence
from kprof_lib.planning import status as statuses
from kprof_lib.spec.validation import validate_spec

NOW = "2026-11-25T10:00:00Z"
EARLIER = "2026-11-25T09:00:00Z"
BASE = {
    "totalProfiles": 3,
    "totalUploads": 2,
    "conditions": [
        {"type": "Valid", "status": "True", "reason": "SpecValid", "message": "the spec is valid", "lastTransitionTime": EARLIER},
        {"type": "Ready", "status": "True", "reason": "Checked", "message": "x", "lastTransitionTime": EARLIER},
    ],
}


def conditions_of(status):
    return {c["type"]: (c["status"], c["reason"], c["message"], c["lastTransitionTime"]) for c in status["conditions"]}


def test_a_check_adds_to_the_totals_and_keeps_transition_times():
    outcome = statuses.Checked("check", active_pods=2, captured=1, failed=1, profiles_kept=2, profiles_stored=1)
    status = statuses.build(BASE, outcome, generation=4, now=NOW)
    assert status == {
        "activePods": 2,
        "totalProfiles": 5,
        "totalUploads": 3,
        "lastCheckTime": NOW,
        "observedGeneration": 4,
        "conditions": status["conditions"],
    }
    assert conditions_of(status) == {
        "Valid": ("True", "SpecValid", "the spec is valid", EARLIER),
        "Ready": ("True", "Checked", "2 active pod(s); last check: 1 captured, 1 failed", EARLIER),
    }


def test_history_not_saved_is_not_ready():
    outcome = statuses.Checked("on-demand", 1, 1, 0, 1, 1, history_error="409 conflict")
    ready = conditions_of(statuses.build({}, outcome, generation=1, now=NOW))["Ready"]
    assert ready == ("False", "HistoryNotSaved", "profiles stored but the capture history was not: 409 conflict", NOW)


@pytest.mark.parametrize(
    ("outcome", "valid", "ready"),
    [
        (statuses.Invalid("bad spec"), ("False", "InvalidSpec"), ("False", "InvalidSpec")),
        (statuses.Failed("GET metrics: 503"), ("True", "SpecValid"), ("False", "CheckFailed")),
        (statuses.Checked("check", 0, 0, 0, 0, 0), ("True", "SpecValid"), ("True", "Checked")),
    ],
)
def test_valid_and_ready_never_contradict(outcome, valid, ready):
    found = conditions_of(statuses.build(BASE, outcome, generation=2, now=NOW))
    assert (found["Valid"][:2], found["Ready"][:2]) == (valid, ready)


def test_an_invalid_spec_is_reported_once_per_generation():
    status = statuses.build(BASE, statuses.Invalid("bad"), generation=2, now=NOW)
    assert statuses.already_reported(status, statuses.Invalid("bad"), 2)
    assert not statuses.already_reported(status, statuses.Invalid("bad"), 3)
    assert not statuses.already_reported(status, statuses.Invalid("other"), 2)


T = dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.UTC)


def test_on_demand_due():
    assert cadence.on_demand_due(None, 600) is None
    assert cadence.on_demand_due(T, 600) == T + dt.timedelta(minutes=10)
    assert cadence.is_on_demand_due(None, 600, T)
    assert not cadence.is_on_demand_due(T, 600, T + dt.timedelta(seconds=599))
    assert cadence.is_on_demand_due(T, 600, T + dt.timedelta(seconds=600))


def test_earliest_on_demand_due_skips_what_it_cannot_read():
    history = {
        "a/x": {"lastOnDemandCapture": "2026-11-25T10:00:00Z"},
        "a/y": {"lastOnDemandCapture": "2026-11-25T09:58:00Z"},
        "a/z": {"lastOnDemandCapture": "yesterday"},
        "a/w": {"lastThresholdCapture": "2026-11-25T09:00:00Z"},
    }
    assert cadence.earliest_on_demand_due(history, 300) == dt.datetime(2026, 11, 25, 10, 3, tzinfo=dt.UTC)
    assert cadence.earliest_on_demand_due(history, 300, keys=["a/x"]) == T + dt.timedelta(minutes=5)
    assert cadence.earliest_on_demand_due(history, 300, keys=["a/z", "a/w", "a/none"]) is None


def test_check_interval_from_the_spec_or_the_schema_default():
    assert cadence.check_interval(validate_spec({"thresholds": {"checkIntervalSeconds": 45}})) == 45
    assert cadence.check_interval(validate_spec({})) == 30
    assert cadence.check_interval(None) == 30


def test_a_successful_baseline_capture_ends_a_run_of_failures():
    from kprof_lib.state.cluster import History

    start = dt.datetime(2026, 12, 1, 10, 0, tzinfo=dt.UTC)
    failed = History(last_failed=start + dt.timedelta(minutes=5), failing_since=start)
    assert cadence.failing(failed) and cadence.retry_due(failed) == start + dt.timedelta(minutes=10)
    healthy = failed._replace(last_baseline=start + dt.timedelta(minutes=6))
    assert not cadence.failing(healthy) and cadence.retry_due(healthy) is None

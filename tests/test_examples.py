"""Every example is used: ProfilingConfigs validate against the schema, and each plans over the
example cluster state."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from kprof_lib import reconcile, validate_document
from kprof_lib.spec import schemas

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
CONFIGS = sorted((EXAMPLES / "profilingconfigs").glob("*.yaml"))


def test_there_are_examples():
    assert {p.name for p in CONFIGS} >= {"threshold.yaml", "on-demand.yaml"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_example_config_validates_and_plans(path):
    for document in yaml.safe_load_all(path.read_text()):
        validate_document(document)
        jsonschema.Draft202012Validator(schemas.load("profilingconfig")).validate(document)
        state = json.loads((EXAMPLES / "cluster-state.json").read_text())
        plan = reconcile(document["spec"], state).to_dict()
        jsonschema.Draft202012Validator(schemas.load("plan")).validate(plan)


@pytest.mark.parametrize("name", ["cluster-state.json", "cluster-state-triggers.json"])
def test_example_state_matches_its_schema(name):
    state = json.loads((EXAMPLES / name).read_text())
    jsonschema.Draft202012Validator(schemas.load("cluster_state"), format_checker=jsonschema.FormatChecker()).validate(
        state
    )


def test_the_triggers_example_fires_each_trigger_with_its_numbers():
    document = yaml.safe_load((EXAMPLES / "profilingconfigs" / "triggers.yaml").read_text())
    state = json.loads((EXAMPLES / "cluster-state-triggers.json").read_text())
    plan = {d.pod.split("-")[0]: d for d in reconcile(document["spec"], state).results}
    assert {name: d.reason for name, d in plan.items()} == {
        "cart": "goroutine-threshold",
        "checkout": "cpu-spike",
        "ledger": "oom-risk",
        "payments": "alert",
        "search": "requested",
    }
    assert plan["ledger"].message == "memory 71% of limit, rising 4.2%/min, limit reached in ~7 min"
    assert plan["ledger"].profile_types == ("heap", "cpu", "goroutine")
    assert (plan["payments"].alert, plan["search"].request_value) == ("PaymentsLatencyHigh", "incident-4711")

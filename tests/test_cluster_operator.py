"""The operator against the real control plane with exactly the Helm chart's RBAC.

`kprof run` authenticates as the chart's ServiceAccount (a token from the TokenRequest API) and is
authorized by the chart's ClusterRole and Role as installed (tests.support.chart). A memory
threshold crossed by real processes, as the real metrics-server reports them through the
aggregation layer, lands in S3 with the status counters, the Ready condition, Events, the Lease
and the capture history written, and no 403 in the operator's log. The API server's audit log says
which calls it made.

Then each grant of the chart, removed in turn (a ServiceAccount of its own bound to copies of the
chart's rules without that one), makes the scenario fail, and the operator's log names the
missing permission the way the API server words it: every grant is shown to be needed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from kprof_lib.runtimes import rbac
from tests.operator_support import condition, events_about, lease_holder, status_of, wait_until
from tests.support import cluster_scenario
from tests.support.cluster_scenario import Workload, captured, identity_without, scenario


@pytest.fixture(scope="module")
def workload(control_plane, kprof_release, sample_app_binary, s3_server) -> Iterator[Workload]:
    apps: list = []
    try:
        yield cluster_scenario.start_workload(
            control_plane, sample_app_binary, s3_server, apps, late=cluster_scenario.LATE_POD
        )
    finally:
        for app in apps:
            app.stop()


# The chart's own identity ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chart_run(control_plane, kprof_release, workload, tmp_path_factory) -> dict[str, Any]:
    """The whole scenario with the chart's ServiceAccount, and what it left at each stage."""
    tmp = tmp_path_factory.mktemp("chart-run")
    kubeconfig = control_plane.token_kubeconfig(kprof_release.namespace, kprof_release.service_account, tmp / "sa")
    with scenario(workload, kubeconfig, tmp, kprof_release.namespace) as run:
        api = control_plane.api()
        seen: dict[str, Any] = {"run": run}
        stages = iter(cluster_scenario.STAGES)
        # The first stage alone, to look at what it left before the others change it.
        first = next(stages)
        wait_until(
            lambda: first.done(run), first.timeout, lambda: f"no complete capture:\n{run.operator.output()}", 0.5
        )
        seen["objects"] = captured(run)
        seen["status"] = status_of(api, workload.namespace, run.config)
        seen["unusable"] = status_of(api, workload.namespace, run.unusable)
        seen["history"] = cluster_scenario.history(run)
        seen["holder"] = lease_holder(control_plane.api(), kprof_release.namespace, run.lease)
        seen["reached"] = cluster_scenario.drive(run)[0]
        seen["forbidden"] = run.forbidden()
        seen["exit_code"] = run.operator.terminate()
        seen["holder_after_exit"] = lease_holder(control_plane.api(), kprof_release.namespace, run.lease)
        seen["output"] = run.operator.output()
    return seen


def test_a_threshold_crossing_lands_in_s3_with_its_metadata(chart_run, workload):
    objects = chart_run["objects"]
    assert sorted(o["key"].split("/")[2] for o in objects) == sorted(workload.opted)
    for obj in objects:
        assert obj["key"].endswith("/heap.pprof")
        assert obj["metadata"]["reason"] == "memory-threshold"
        assert obj["metadata"]["namespace"] == workload.namespace


def test_status_counters_and_conditions_go_through_the_status_subresource(chart_run, workload):
    status = chart_run["status"]
    assert status["totalProfiles"] == status["totalUploads"] == len(workload.opted)
    assert status["activePods"] == len(workload.opted)
    # lastCapture passes the CRD's schema (the API server prunes what the schema lacks).
    last, run = status["lastCapture"], chart_run["run"]
    assert last["reason"] == "memory-threshold" and last["pod"].split("/")[1] in workload.opted
    assert last["uri"].startswith(f"s3://{workload.bucket}/{run.tag}/") and last["uri"].endswith("/")
    assert "heap" in last["topFunctions"] and last["time"].endswith("Z")
    assert condition(status, "Ready")["status"] == "True"
    assert condition(status, "Valid")["status"] == "True"
    unusable = condition(chart_run["unusable"], "Valid")
    assert unusable["status"] == "False" and "spec.selector.labelSelector" in unusable["message"]


def test_events_lease_and_history_are_written(chart_run, control_plane, workload, kprof_release):
    run = chart_run["run"]
    for pod in workload.opted:
        [event] = [
            e
            for e in events_about(control_plane.api(), workload.namespace, pod)
            if e.reason == "ProfileCaptured" and run.tag in e.message
        ]
        assert f"s3://{workload.bucket}/{run.tag}/" in event.message
    assert chart_run["holder"], "the operator never held its Lease"
    assert chart_run["holder_after_exit"] == "", "SIGTERM must release the Lease"
    assert chart_run["exit_code"] == 0, chart_run["output"]
    assert sorted(chart_run["history"]) == sorted(f"{workload.namespace}/{pod}" for pod in workload.opted)


def test_the_whole_scenario_completes_with_the_charts_rbac(chart_run):
    # A late pod seen through the watch (history updated), the invalid config's Event repeated
    # (patched), the config deleted (its history deleted).
    assert chart_run["reached"] == "done", chart_run["output"]


def test_no_403_in_the_operators_log(chart_run):
    assert chart_run["forbidden"] == []


def test_the_audit_log_shows_exactly_the_granted_calls(chart_run, control_plane, kprof_release):
    username = f"system:serviceaccount:{kprof_release.namespace}:{kprof_release.service_account}"
    used = cluster_scenario.audited_calls(control_plane, username)
    assert used, "no audit events for the operator's ServiceAccount"
    granted = set()
    for rules in rbac.rules_for(["direct"]).values():
        granted |= rbac.permissions(rules)
    # Enough and no more: every grant of the direct transport is used, nothing else is.
    assert used == granted, f"used, not granted: {sorted(used - granted)}; granted, not used: {sorted(granted - used)}"


# Each grant removed in turn ---------------------------------------------------------------------


def _triples() -> list[tuple[str, str, str, str]]:
    """(role kind, apiGroup, resource, verb) of every grant the chart makes for direct transport."""
    out = []
    for role, rules in rbac.rules_for(["direct"]).items():
        out.extend((role, *triple) for triple in sorted(rbac.permissions(rules)))
    return out


def forbidden_message(group: str, resource: str, verb: str) -> str:
    """How the API server words the refusal: `cannot list resource "pods" in API group ""`."""
    return f'cannot {verb} resource "{resource}" in API group "{group}"'


@pytest.mark.parametrize(("role_kind", "group", "resource", "verb"), _triples(), ids=lambda v: v or "core")
def test_each_grant_is_needed(control_plane, kprof_release, workload, tmp_path, role_kind, group, resource, verb):
    kubeconfig, namespace = identity_without(control_plane, kprof_release, role_kind, (group, resource, verb), tmp_path)
    named = forbidden_message(group, resource, verb)
    flags = ("--lease-duration", "6", "--renew-deadline", "4", "--retry-period", "1")
    with scenario(workload, kubeconfig, tmp_path, namespace, *flags) as run:
        failed_at, line = cluster_scenario.drive(run, named)
        output = run.operator.output()
    print(f"RBAC-ROW {role_kind} {group or 'core'} {resource} {verb}: fails at {failed_at}: {line}")
    assert failed_at != "done", f"without {verb} {group or 'core'}/{resource} the whole scenario completes:\n{output}"
    assert line, f"the scenario failed at {failed_at} without naming {named!r}:\n{output}"

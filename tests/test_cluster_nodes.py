"""Node agents (`kprof node`) against the real control plane with several fake Nodes, each with a
kubelet stand-in that authorizes its callers as a kubelet does, pods bound to the nodes and backed
by real Go processes, and the RBAC of the operator chart installed with mode=node.

One agent per node, each a process with the chart's ServiceAccount token: each captures the pods
of its own node only (the memory threshold, usage from its own kubelet), skips the pod with a bad
annotation, keeps history and a report per node, and the agent holding the Lease folds the reports
into the config's status; an invalid config is one Event, not one per node. A node agent killed
and started again keeps its cooldowns. Then each grant of the node agents' ClusterRole and Role,
removed in turn, makes the scenario fail naming the permission, and the calls the agent made (the
API server's audit log, the kubelet's authorizations) are exactly the grants.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from kprof_lib.runtimes import rbac
from tests.operator_support import condition, events_about, lease_holder, wait_until
from tests.support import cluster_scenario, node_scenario
from tests.support.cluster_scenario import audited_calls, identity_without, reports_forbidden
from tests.support.node_scenario import NodeWorkload, captured_pods, node_history, node_report, node_run, status

NODES = ("kprof-node-a", "kprof-node-b", "kprof-node-c")
LAYOUT = {NODES[0]: ("a-1", "a-2"), NODES[1]: ("b-1",), NODES[2]: ("c-1",)}


@pytest.fixture(scope="module")
def node_release(control_plane, kprof_release):
    return node_scenario.install_node_chart(control_plane)


@pytest.fixture(scope="module")
def workload(control_plane, kprof_release, sample_app_binary, s3_server) -> Iterator[NodeWorkload]:
    apps: list = []
    try:
        yield node_scenario.start_node_workload(
            control_plane, sample_app_binary, s3_server, apps, LAYOUT, bad="a-bad", late="a-late"
        )
    finally:
        for app in apps:
            app.stop()
        for node in NODES:
            control_plane.remove_node(node)


@pytest.fixture(scope="module")
def chart_kubeconfig(control_plane, node_release, tmp_path_factory):
    folder = tmp_path_factory.mktemp("node-identity")
    return control_plane.token_kubeconfig(node_release.namespace, node_release.service_account, folder / "sa")


# Three nodes, three agents ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def three_nodes(control_plane, node_release, workload, chart_kubeconfig, tmp_path_factory) -> dict[str, Any]:
    """The three agents' run, and what it left: after the captures, then after node a's agent was
    killed and started again. The agents are stopped before the module's other tests (an agent
    watches every config: left running, it would take part in their runs)."""
    work = tmp_path_factory.mktemp("three-nodes")
    with node_run(workload, chart_kubeconfig, work, node_release.namespace, NODES) as run:
        wait_until(
            lambda: node_scenario.capture_complete(run, NODES), 90, lambda: f"no complete capture:\n{run.output()}", 1
        )
        # The fold is eventually consistent: wait until it has every node's share.
        wait_until(lambda: status(run).get("totalUploads") == len(workload.opted), 30, run.output, 0.5)
        seen: dict[str, Any] = {"run": run, "status": status(run), "unusable": status(run, run.unusable)}
        seen["histories"] = {node: node_history(run, node) for node in NODES}
        seen["reports"] = {node: node_report(run, node) for node in NODES}
        seen["holder"] = lease_holder(control_plane.api(), node_release.namespace, f"fold-{run.tag}")
        seen["forbidden"] = [line for line in run.output_lines() if reports_forbidden(line)]
        seen["captured"] = captured_pods(run)
        seen["captures_by"] = {node: _captures_by(run, node) for node in NODES}
        seen["recaps"] = {node: _checks(run.agents[node], run.config_key) for node in NODES}
        seen["restart"] = _restart(run, workload, NODES[0])
    return seen


def _restart(run, workload: NodeWorkload, node: str) -> dict[str, Any]:
    """Kills `node`'s agent (no cleanup at all, as when it is OOM-killed), starts another, and
    waits for two checks of it that hold the cooldown of the node's captured pods."""
    run.agents[node].kill()
    agent = run.start_agent(node)
    cooling = f"cooldown: {len(workload.pods[node])}"

    def held() -> bool:
        return len([recap for recap in _checks(agent, run.config_key) if cooling in recap]) >= 2

    wait_until(held, 60, lambda: f"the restarted agent did not hold the cooldown:\n{agent.output()}", 0.5)
    return {
        "recaps": _checks(agent, run.config_key),
        "captured": captured_pods(run),
        "report": node_report(run, node),
        "events": [
            e
            for e in events_about(run.workload.plane.api(), workload.namespace, workload.pods[node][0])
            if e.reason == "ProfileCaptured" and run.tag in e.message
        ],
    }


def _captures_by(run, node: str) -> list[str]:
    """The pods whose capture `node`'s agent logged."""
    agent = run.agents[node]
    return sorted(
        r["pod"].split("/")[1]
        for r in agent.find_logs(lambda r: r.get("action") == "capture" and r.get("config") == run.config_key)
    )


def test_each_agent_captures_the_pods_of_its_own_node_once(three_nodes, workload):
    run = three_nodes["run"]
    assert three_nodes["captured"] == sorted(workload.opted)
    for node in NODES:
        assert three_nodes["captures_by"][node] == sorted(workload.pods[node]), run.output()


def _checks(agent, config_key: str) -> list[str]:
    """The recaps of the checks `agent` logged for the config (`capture: 1 (...)  none: 2 (...)`)."""
    done = agent.find_logs(lambda r: r.get("action") == "check" and r.get("reason") == "done")
    return [r["msg"] for r in done if r.get("config") == config_key]


def test_a_pod_with_a_bad_annotation_is_skipped_and_the_others_are_not(three_nodes, workload):
    assert workload.bad not in three_nodes["captured"]
    recaps = three_nodes["recaps"][NODES[0]]
    assert recaps and all("invalid-annotation: 1" in recap for recap in recaps), recaps
    # Only node a has it: the others never saw the pod.
    for node in NODES[1:]:
        assert not any("invalid-annotation" in recap for recap in three_nodes["recaps"][node])


def test_history_and_reports_are_kept_per_node(three_nodes, workload):
    for node in NODES:
        history = three_nodes["histories"][node]
        assert sorted(history) == sorted(f"{workload.namespace}/{pod}" for pod in workload.pods[node])
        report = three_nodes["reports"][node]
        assert report["totalUploads"] == len(workload.pods[node])
        assert condition(report, "Ready")["status"] == "True"


def test_the_status_is_folded_from_every_nodes_report(three_nodes, workload):
    folded = three_nodes["status"]
    reports = three_nodes["reports"]
    assert folded["totalUploads"] == folded["totalProfiles"] == len(workload.opted)
    assert folded["activePods"] == sum(r["activePods"] for r in reports.values())
    assert condition(folded, "Ready")["status"] == "True"
    assert f"on {len(NODES)} node(s)" in condition(folded, "Ready")["message"]
    assert folded["lastCapture"]["reason"] == "memory-threshold"
    assert folded["lastCapture"]["pod"].split("/")[1] in workload.opted
    assert three_nodes["holder"], "no agent held the folding Lease"


def test_an_invalid_config_is_one_event_not_one_per_node(three_nodes):
    run = three_nodes["run"]
    valid = condition(three_nodes["unusable"], "Valid")
    assert valid["status"] == "False" and "spec.selector.labelSelector" in valid["message"]
    assert len(cluster_scenario.invalid_events(run)) == 1


def test_no_403_in_the_agents_logs(three_nodes):
    assert three_nodes["forbidden"] == []


def test_cooldown_holds_when_a_nodes_agent_restarts(three_nodes, workload):
    restart, node = three_nodes["restart"], NODES[0]
    assert all("capture: 0  none" in recap for recap in restart["recaps"]), restart["recaps"]
    assert restart["captured"] == three_nodes["captured"]
    # Its share of the totals did not start over: the fold still counts every capture.
    assert restart["report"]["totalUploads"] == len(workload.pods[node])
    assert len(restart["events"]) == 1


# RBAC: the node agents' grants, each needed -----------------------------------------------------------


def node_triples() -> list[tuple[str, str, str, str]]:
    out = []
    for role, rules in rbac.NODE_AGENT_RULES.items():
        out.extend((role, *triple) for triple in sorted(rbac.permissions(rules)))
    return out


def refusal_words(group: str, resource: str, verb: str) -> str:
    """How the refusal is worded: the kubelet's for nodes/metrics, the API server's otherwise."""
    if resource == "nodes/metrics":
        return "verb=get, resource=nodes, subresource(s)=[metrics]"
    return f'cannot {verb} resource "{resource}" in API group "{group}"'


def test_the_chart_grants_exactly_the_node_agent_rules(control_plane, node_release):
    from kubernetes import client

    api = client.RbacAuthorizationV1Api(control_plane.api())
    cluster_rules = api.read_cluster_role(node_release.full_name).rules
    role_rules = api.read_namespaced_role(node_release.full_name, node_release.namespace).rules

    def flat(rules: Any) -> set[tuple[str, str, str]]:
        return rbac.permissions(
            {"apiGroups": r.api_groups, "resources": r.resources, "verbs": r.verbs} for r in rules or ()
        )

    assert flat(cluster_rules) == rbac.permissions(rbac.NODE_AGENT_RULES[rbac.CLUSTER_ROLE])
    assert flat(role_rules) == rbac.permissions(rbac.NODE_AGENT_RULES[rbac.NAMESPACE_ROLE])


@pytest.fixture(scope="module")
def one_node_run(control_plane, node_release, workload, chart_kubeconfig, tmp_path_factory) -> dict[str, Any]:
    """The whole staged scenario on the first node with the chart's identity."""
    work = tmp_path_factory.mktemp("one-node")
    with node_run(workload, chart_kubeconfig, work, node_release.namespace, NODES[:1]) as run:
        reached, _ = cluster_scenario.drive(run, stages=node_scenario.STAGES)
        return {"run": run, "reached": reached, "output": run.output()}


def test_the_whole_node_scenario_completes_with_the_charts_rbac(one_node_run):
    assert one_node_run["reached"] == "done", one_node_run["output"]


def test_the_calls_made_are_exactly_the_grants(one_node_run, control_plane, node_release, workload):
    username = f"system:serviceaccount:{node_release.namespace}:{node_release.service_account}"
    used = audited_calls(control_plane, username)
    kubelet = control_plane.nodes[NODES[0]]
    used |= {("", resource, verb) for user, verb, resource in kubelet.authorized if user == username}
    granted = set()
    for rules in rbac.NODE_AGENT_RULES.values():
        granted |= rbac.permissions(rules)
    assert used == granted, f"used, not granted: {sorted(used - granted)}; granted, not used: {sorted(granted - used)}"


@pytest.mark.parametrize(("role_kind", "group", "resource", "verb"), node_triples(), ids=lambda v: v or "core")
def test_each_node_agent_grant_is_needed(
    control_plane, node_release, workload, tmp_path, role_kind, group, resource, verb
):
    kubeconfig, namespace = identity_without(control_plane, node_release, role_kind, (group, resource, verb), tmp_path)
    named = refusal_words(group, resource, verb)
    with node_run(workload, kubeconfig, tmp_path, namespace, NODES[:1]) as run:
        failed_at, line = cluster_scenario.drive(run, named, node_scenario.STAGES)
        output = run.output()
    print(f"NODE-RBAC-ROW {role_kind} {group or 'core'} {resource} {verb}: fails at {failed_at}: {line}")
    assert failed_at != "done", f"without {verb} {group or 'core'}/{resource} the whole scenario completes:\n{output}"
    assert line, f"the scenario failed at {failed_at} without naming {named!r}:\n{output}"


def test_a_nodes_history_carries_any_key_across_a_restart_and_is_its_own(control_plane, node_release):
    from kprof_lib.adapters.kube.history import ConfigMapHistory

    api, namespace, key = control_plane.api(), node_release.namespace, "shop/any-key-config"
    entry = {"lastThresholdCapture": "2026-12-02T10:00:00Z", "captureNowValue": "deploy-42"}
    ConfigMapHistory(api, namespace, node=NODES[0]).merge(key, {"shop/p-1": entry})
    try:
        # A new agent process on the same node reads it back; another node's agent has its own.
        assert ConfigMapHistory(api, namespace, node=NODES[0]).load(key) == {"shop/p-1": entry}
        assert ConfigMapHistory(api, namespace, node=NODES[1]).load(key) == {}
        assert ConfigMapHistory(api, namespace).load(key) == {}
    finally:
        ConfigMapHistory(api, namespace, node=NODES[0]).forget(key)

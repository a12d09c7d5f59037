"""The node agents' scenario against the real control plane: several fake Nodes (each with its own
kubelet stand-in, which authorizes callers as a kubelet does), pods bound to them backed by real Go
processes, one `kprof node` process per node with the ServiceAccount token of the chart installed
with mode=node, profiles into moto's S3 server.

As in tests.support.cluster_scenario, the threshold is on memory (requests of 1Mi against a Go
process's several MiB), crossed as soon as an agent has read its kubelet twice. Each run has
configs of its own (a fresh history) and deletes them at the end.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kprof_lib.adapters.kube.history import configmap_name
from kprof_lib.adapters.kube.nodereports import NAME_PREFIX as REPORT_PREFIX
from tests.operator_support import (
    OperatorProcess,
    allow_s3,
    aws_environment,
    condition,
    events_about,
    status_of,
)
from tests.support import chart, cluster_scenario
from tests.support.cluster_scenario import Stage, create_configs, delete_configs, invalid_events, new_tag
from tests.support.controlplane import ControlPlane
from tests.support.goapp import GoApp
from tests.support.s3server import S3Server

LEASE_FLAGS = ("--lease-duration", "6", "--renew-deadline", "4", "--retry-period", "1")
# A port annotation that is not a number: the pod is skipped (invalid-annotation), the others not.
BAD_PORT = "sixty"


def install_node_chart(plane: ControlPlane, name: str = "kprof-nodes") -> chart.Release:
    """The operator chart with mode=node in a namespace of its own (the CRD comes from the session's
    release, so the caller depends on `kprof_release`)."""
    return chart.install(plane, name, name, "mode=node", "crds.install=false")


@dataclass
class NodeWorkload:
    """Pods on fake nodes: `pods` maps node -> the pods opted in there; `bad` a pod with a bad port
    annotation on the first node; `late` a pod that opts in during a run, on the first node."""

    plane: ControlPlane
    namespace: str
    nodes: tuple[str, ...]
    pods: dict[str, tuple[str, ...]]
    apps: dict[str, GoApp]
    s3: S3Server
    bucket: str
    bad: str | None = None
    late: str | None = None

    @property
    def opted(self) -> tuple[str, ...]:
        return tuple(pod for pods in self.pods.values() for pod in pods)

    def node_of(self, pod: str) -> str:
        return next(node for node, pods in self.pods.items() if pod in pods) if pod in self.opted else self.nodes[0]

    def opt_in(self, pod: str, enabled: bool) -> None:
        from kubernetes import client

        value = "true" if enabled else None
        client.CoreV1Api(self.plane.api()).patch_namespaced_pod(
            pod, self.namespace, {"metadata": {"annotations": {"profiling.io/enabled": value}}}
        )


def start_node_workload(
    plane: ControlPlane,
    binary: Path,
    s3: S3Server,
    apps: list[GoApp],
    layout: dict[str, Sequence[str]],
    *,
    bad: str | None = None,
    late: str | None = None,
) -> NodeWorkload:
    """`layout`: node -> pod names opted in there; the nodes are added to the control plane."""
    for node in layout:
        if node not in plane.nodes:
            plane.add_node(node)
    namespace = plane.new_namespace("nodes")
    first = next(iter(layout))
    started: dict[str, GoApp] = {}
    placed = [(node, pod) for node, pods in layout.items() for pod in pods]
    placed += [(first, pod) for pod in (bad, late) if pod]
    for node, pod in placed:
        app = GoApp(binary)
        apps.append(app)
        annotations = {"profiling.io/port": BAD_PORT if pod == bad else str(app.port)}
        if pod != late:
            annotations["profiling.io/enabled"] = "true"
        plane.run_pod(
            namespace,
            pod,
            port=app.port,
            pid=app.pid,
            labels={"app": "busy"},
            annotations=annotations,
            requests={"cpu": "1", "memory": "1Mi"},
            node=node,
        )
        started[pod] = app
    s3.up()
    pods = {node: tuple(names) for node, names in layout.items()}
    return NodeWorkload(plane, namespace, tuple(layout), pods, started, s3, s3.new_bucket("kprof-nodes"), bad, late)


@dataclass
class NodeRun:
    """The agents of one run, and its configs."""

    tag: str
    workload: NodeWorkload
    namespace: str  # the agents' (reports, history, Lease)
    kubeconfig: Path
    work: Path
    agents: dict[str, OperatorProcess] = field(default_factory=dict)
    extra: tuple[str, ...] = ()

    @property
    def config(self) -> str:
        return f"cap-{self.tag}"

    @property
    def unusable(self) -> str:
        return f"bad-{self.tag}"

    @property
    def config_key(self) -> str:
        return f"{self.workload.namespace}/{self.config}"

    def start_agent(self, node: str) -> OperatorProcess:
        agent = self.workload.plane.nodes[node]
        self.agents[node] = OperatorProcess(
            self.kubeconfig,
            self.work / f"{node}-{len(self.agents)}-{time.monotonic_ns()}",
            name=f"agent {node}",
            command_name="node",
            env=aws_environment(self.work),
            args=[
                "--namespace",
                self.namespace,
                "--node-name",
                node,
                "--kubelet-url",
                f"http://127.0.0.1:{agent.port}",
                "--lease-name",
                f"fold-{self.tag}",
                "--fold-interval",
                "2",
                *LEASE_FLAGS,
                *allow_s3(self.workload.s3, self.workload.bucket),
                *self.extra,
            ],
        )
        return self.agents[node]

    def output(self) -> str:
        return "\n".join(f"--- {node}:\n{agent.output()}" for node, agent in self.agents.items())

    def output_lines(self) -> list[str]:
        return [line for agent in self.agents.values() for line in agent.output_lines()]

    def exited(self) -> bool:
        return any(agent.process.poll() is not None for agent in self.agents.values())


@contextlib.contextmanager
def node_run(
    workload: NodeWorkload, kubeconfig: Path, work: Path, namespace: str, nodes: Sequence[str], *extra: str
) -> Iterator[NodeRun]:
    """The run's configs and one agent per node in `nodes`; everything stopped and deleted after."""
    run = NodeRun(new_tag(), workload, namespace, kubeconfig, work, extra=tuple(extra))
    create_configs(run)
    try:
        for node in nodes:
            run.start_agent(node)
        yield run
    finally:
        for agent in run.agents.values():
            agent.close()
        delete_configs(run)
        if workload.late:
            workload.opt_in(workload.late, False)


# What a run left behind ---------------------------------------------------------------------------


def captured_pods(run: NodeRun) -> list[str]:
    """The pods whose profiles the run stored in S3."""
    return sorted(o["key"].split("/")[2] for o in cluster_scenario.captured(run))


def _configmap(run: NodeRun, name: str) -> dict[str, Any] | None:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    try:
        configmap = client.CoreV1Api(run.workload.plane.api()).read_namespaced_config_map(name, run.namespace)
    except ApiException as error:
        if error.status == 404:
            return None
        raise
    return dict(configmap.data or {})


def node_history(run: NodeRun, node: str) -> dict[str, Any] | None:
    """The capture history `node`'s agent keeps for the run's config, None if there is none."""
    data = _configmap(run, configmap_name(run.config_key, node))
    return None if data is None else json.loads(data.get("history.json") or "{}")


def node_report(run: NodeRun, node: str) -> dict[str, Any] | None:
    data = _configmap(run, configmap_name(run.config_key, node, REPORT_PREFIX))
    return None if data is None else json.loads(data.get("status.json") or "{}")


def status(run: NodeRun, name: str | None = None) -> dict[str, Any]:
    return status_of(run.workload.plane.api(), run.workload.namespace, name or run.config)


def capture_complete(run: NodeRun, nodes: Sequence[str]) -> bool:
    """The opted-in pods of `nodes` captured, counted in the folded status, each with its Event, and
    the invalid config reported."""
    workload = run.workload
    expected = sorted(pod for node in nodes for pod in workload.pods[node])
    if captured_pods(run) != expected:
        return False
    folded = status(run)
    if folded.get("totalUploads", 0) < len(expected) or condition(folded, "Ready").get("status") != "True":
        return False
    api = workload.plane.api()
    for pod in expected:
        if not [e for e in events_about(api, workload.namespace, pod) if e.reason == "ProfileCaptured"]:
            return False
    return condition(status(run, run.unusable), "Valid").get("status") == "False" and bool(invalid_events(run))


# The RBAC scenario: one node, its agent folding ---------------------------------------------------


def _late_captured(run: NodeRun) -> bool:
    node = run.workload.nodes[0]
    late = run.workload.late
    history = node_history(run, node) or {}
    return late in captured_pods(run) and f"{run.workload.namespace}/{late}" in history


def _gone(run: NodeRun) -> bool:
    node = run.workload.nodes[0]
    return node_history(run, node) is None and node_report(run, node) is None


# The operator's staged scenario on the first node, its agent folding (cluster_scenario.drive runs it).
STAGES = (
    # Pods by field selector, usage from the kubelet, S3, the node's history and report, Events, the
    # Lease, the fold into the status; the invalid config reported once.
    Stage("capture", lambda run: capture_complete(run, run.workload.nodes[:1]), timeout=75, grace=8),
    # A pod that opts in later: the node's history and report are written again.
    Stage(
        "history-update",
        _late_captured,
        action=lambda run: run.workload.opt_in(run.workload.late, True),
        timeout=40,
        grace=12,
    ),
    # The invalid config changed, still invalid the same way: the same Event again, its count patched.
    next(stage for stage in cluster_scenario.STAGES if stage.name == "event-repeat"),
    # The config deleted: the node's history and report go with it.
    Stage("history-delete", _gone, action=lambda run: delete_configs(run, only=run.config), timeout=30, grace=6),
)

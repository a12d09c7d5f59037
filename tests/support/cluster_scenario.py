"""The operator's threshold scenario against the real control plane, shared by the RBAC tests, the
watch-expiry and the replica tests: real Go apps as the pods' processes (their memory and CPU reach
the real metrics-server through the node agent), `kprof run` as a process with a ServiceAccount
token, profiles into moto's S3 server.

The threshold is on memory (requests of 1Mi against a Go process's several MiB): it is crossed as
soon as metrics-server has the pod, with no CPU burnt on a two-core machine. Each run uses configs
of its own (a fresh history, so a fresh capture) and deletes them at the end.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kprof_lib.adapters.kube.history import configmap_name
from kprof_lib.runtimes import rbac
from tests.operator_support import (
    OperatorProcess,
    allow_s3,
    aws_environment,
    condition,
    events_about,
    profiling_config,
    s3_config,
    status_of,
    wait_until,
)
from tests.support.controlplane import ControlPlane
from tests.support.goapp import GoApp
from tests.support.s3server import S3Server

PODS = ("busy-1", "busy-2")
# In the workload from the start (metrics-server has it) but opted in only during a run: its capture
# is the second write of the run's history.
LATE_POD = "busy-3"
# Valid for the CRD, refused by the operator: a label selector value may not hold a space.
UNUSABLE_SELECTOR = {"matchLabels": {"app": "two words"}}


@dataclass
class Workload:
    """Pods backed by real processes in a namespace of their own, and where profiles go. `opted`
    are the pods that opt in from the start; `late` opts in when a run's scenario says so."""

    plane: ControlPlane
    namespace: str
    apps: dict[str, GoApp]
    s3: S3Server
    bucket: str
    opted: tuple[str, ...] = PODS
    late: str | None = None

    def metrics_ready(self, pods: Sequence[str] | None = None) -> bool:
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        custom = client.CustomObjectsApi(self.plane.api())
        for pod in self.apps if pods is None else pods:
            try:
                custom.get_namespaced_custom_object("metrics.k8s.io", "v1beta1", self.namespace, "pods", pod)
            except ApiException:
                return False
        return True

    def opt_in(self, pod: str, enabled: bool) -> None:
        from kubernetes import client

        value = "true" if enabled else None
        client.CoreV1Api(self.plane.api()).patch_namespaced_pod(
            pod, self.namespace, {"metadata": {"annotations": {"profiling.io/enabled": value}}}
        )


def start_workload(
    plane: ControlPlane,
    binary: Path,
    s3: S3Server,
    apps: list[GoApp],
    pods: Sequence[str] = PODS,
    late: str | None = None,
) -> Workload:
    namespace = plane.new_namespace("work")
    started: dict[str, GoApp] = {}
    for pod in [*pods, *([late] if late else [])]:
        app = GoApp(binary)
        apps.append(app)
        # Some CPU time of its own: metrics-server drops a container whose CPU counter is zero.
        app.load(cpu_seconds=0.3, workers=1, wait=True)
        annotations = {"profiling.io/port": str(app.port)}
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
        )
        started[pod] = app
    s3.up()
    workload = Workload(plane, namespace, started, s3, s3.new_bucket("kprof-cluster"), tuple(pods), late)
    plane.wait_for_metrics_api()
    # Two scrapes (10 s apart) before metrics-server has a CPU rate to serve.
    wait_until(workload.metrics_ready, 60, "metrics-server to serve the workload's pods", 1.0)
    return workload


@dataclass
class Run:
    """One operator run of the scenario, and what it left behind."""

    tag: str
    operator: OperatorProcess
    workload: Workload
    operator_namespace: str
    objects: list[dict[str, Any]] = field(default_factory=list)

    @property
    def config(self) -> str:
        return f"cap-{self.tag}"

    @property
    def unusable(self) -> str:
        return f"bad-{self.tag}"

    @property
    def lease(self) -> str:
        return f"lease-{self.tag}"

    def forbidden(self) -> list[str]:
        """The operator's log lines that report a 403 / forbidden answer."""
        return [line for line in self.output_lines() if reports_forbidden(line)]

    def output_lines(self) -> list[str]:
        return self.operator.output_lines()

    def exited(self) -> bool:
        return self.operator.process.poll() is not None


# A whole "403" only: neither a random port such as 127.0.0.1:40325, the milliseconds of a
# timestamp such as 21:43:31.403Z nor a piece of a hex name such as kprof-nodes-9f403b2 is a refusal.
_FORBIDDEN = re.compile(r"(?<![\w.])403(?!\w)|forbidden", re.IGNORECASE)


# Fields of a JSON log record that hold a size, where 403 is a number like any other.
_SIZES = ("bytes",)


def reports_forbidden(line: str) -> bool:
    """Whether an operator log line reports an API server's 403 / Forbidden answer."""
    try:
        record = json.loads(line)
    except ValueError:
        record = None
    if isinstance(record, dict):
        line = json.dumps({key: value for key, value in record.items() if key not in _SIZES})
    return _FORBIDDEN.search(line) is not None


def operator_process(
    kubeconfig: Path,
    work: Path,
    workload: Workload,
    operator_namespace: str,
    lease: str,
    *extra: str,
    name: str = "operator",
    entrypoint: str = "kprof",
) -> OperatorProcess:
    """`kprof run` (or operator_main.py) for `workload`: its configs may store in the workload's bucket."""
    return OperatorProcess(
        kubeconfig,
        work,
        name=name,
        entrypoint=entrypoint,
        env=aws_environment(work),
        args=[
            "--namespace",
            operator_namespace,
            "--lease-name",
            lease,
            *allow_s3(workload.s3, workload.bucket),
            *extra,
        ],
    )


def create_configs(run: Run, *, cooldown: int = 600) -> None:
    from kubernetes import client

    workload = run.workload
    custom = client.CustomObjectsApi(workload.plane.api())
    spec = {
        "selector": {"namespace": workload.namespace, "labelSelector": {"matchLabels": {"app": "busy"}}},
        "thresholds": {"memoryThresholdPercent": 90, "checkIntervalSeconds": 10, "cooldownSeconds": cooldown},
        "profileTypes": ["heap"],
        "s3Config": s3_config(workload.s3, workload.bucket, run.tag),
    }
    bad = {"selector": {"namespace": workload.namespace, "labelSelector": UNUSABLE_SELECTOR}, "thresholds": {}}
    for name, body in ((run.config, spec), (run.unusable, bad)):
        custom.create_namespaced_custom_object(
            "profiling.io",
            "v1alpha1",
            workload.namespace,
            "profilingconfigs",
            profiling_config(name, workload.namespace, body),
        )


def delete_configs(run: Run, only: str | None = None) -> None:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    custom = client.CustomObjectsApi(run.workload.plane.api())
    for name in [only] if only else (run.config, run.unusable):
        try:
            custom.delete_namespaced_custom_object(
                "profiling.io", "v1alpha1", run.workload.namespace, "profilingconfigs", name
            )
        except ApiException as error:
            if error.status != 404:
                raise


def new_tag() -> str:
    return uuid.uuid4().hex[:6]


def captured(run: Run) -> list[dict[str, Any]]:
    """The run's profiles in S3 (not the captures' summary.json and index.html beside them)."""
    return [o for o in run.workload.s3.objects(run.workload.bucket, f"{run.tag}/") if o["key"].endswith(".pprof")]


def capture_complete(run: Run) -> bool:
    """The opted-in pods' heap profiles stored, counted in the status, each with its Event."""
    api = run.workload.plane.api()
    namespace = run.workload.namespace
    opted = run.workload.opted
    if len(captured(run)) < len(opted):
        return False
    status = status_of(api, namespace, run.config)
    if status.get("totalUploads", 0) < len(opted):
        return False
    for pod in opted:
        if not [e for e in events_about(api, namespace, pod) if e.reason == "ProfileCaptured" and run.tag in e.message]:
            return False
    return condition(status, "Ready").get("status") == "True"


def history(run: Run) -> dict[str, Any] | None:
    """The run's capture history (its ConfigMap in the operator's namespace), None if there is none."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    name = configmap_name(f"{run.workload.namespace}/{run.config}")
    try:
        configmap = client.CoreV1Api(run.workload.plane.api()).read_namespaced_config_map(name, run.operator_namespace)
    except ApiException as error:
        if error.status == 404:
            return None
        raise
    return json.loads((configmap.data or {}).get("history.json") or "{}")


def invalid_events(run: Run) -> list[Any]:
    api = run.workload.plane.api()
    return [e for e in events_about(api, run.workload.namespace, run.unusable) if e.reason == "InvalidConfig"]


@dataclass(frozen=True)
class Stage:
    """One step of the full scenario: an action, then a state the operator must bring about within
    `timeout`; once the operator has logged the permission a test removed, the step gets only
    `grace` more seconds (enough for the check that would do it)."""

    name: str
    done: Callable[[Run], bool]
    action: Callable[[Run], None] | None = None
    timeout: float = 60.0
    grace: float = 8.0


def _late_captured(run: Run) -> bool:
    late = run.workload.late
    found = [o for o in captured(run) if f"/{late}/" in o["key"]]
    return bool(found) and len(history(run) or {}) == len(run.workload.opted) + 1


def touch_unusable(run: Run) -> None:
    """A new generation of the invalid config, with the same problem."""
    from kubernetes import client

    client.CustomObjectsApi(run.workload.plane.api()).patch_namespaced_custom_object(
        "profiling.io",
        "v1alpha1",
        run.workload.namespace,
        "profilingconfigs",
        run.unusable,
        {"spec": {"thresholds": {"checkIntervalSeconds": 20}}},
    )


def _history_gone(run: Run) -> bool:
    return history(run) is None


STAGES = (
    # Pods, metrics, S3, status, Events, Lease, the history's creation; the invalid config reported.
    Stage("capture", lambda run: capture_complete(run) and bool(invalid_events(run)), grace=5),
    # A pod that opts in later is seen through the watch and captured: the history is updated.
    Stage(
        "history-update",
        _late_captured,
        action=lambda run: run.workload.opt_in(run.workload.late, True),
        timeout=40,
        grace=12,
    ),
    # The invalid config changed, still invalid the same way: the same Event again, its count patched.
    Stage(
        "event-repeat",
        lambda run: any((e.count or 1) >= 2 for e in invalid_events(run)),
        action=lambda run: touch_unusable(run),
        timeout=30,
        grace=6,
    ),
    # The config deleted: its history goes with it.
    Stage(
        "history-delete",
        _history_gone,
        action=lambda run: delete_configs(run, only=run.config),
        timeout=30,
        grace=5,
    ),
)


def named_line(run: Run, named: str) -> str | None:
    """The operator's first log line holding `named` (JSON lines escape the quotes it has)."""
    for line in run.output_lines():
        if named in line.replace('\\"', '"'):
            return line
    return None


def drive(run: Any, named: str | None = None, stages: Sequence[Stage] = STAGES) -> tuple[str, str | None]:
    """Runs the stages in order: ("done", line) when every one completed, else (the first stage
    that did not, line), where line is the log line naming `named` if there is one. `run` is a
    `Run`, or anything with its workload, `output_lines()` and `exited()` (the node agents')."""
    for stage in stages:
        if stage.name == "history-update" and run.workload.late is None:
            continue
        if stage.action is not None:
            stage.action(run)
        started = time.monotonic()
        named_at: float | None = None
        while not stage.done(run):
            now = time.monotonic()
            if named and named_at is None and named_line(run, named):
                named_at = now
            out_of_time = now - started > stage.timeout
            out_of_grace = named_at is not None and now - max(started, named_at) > stage.grace
            if out_of_time or out_of_grace or run.exited():
                return stage.name, named_line(run, named) if named else None
            time.sleep(0.5)
    return "done", named_line(run, named) if named else None


@contextlib.contextmanager
def scenario(workload: Workload, kubeconfig: Path, work: Path, operator_namespace: str, *extra: str) -> Iterator[Run]:
    """Starts the operator and the run's configs, yields the run, then stops both (configs deleted)."""
    tag = new_tag()
    run = Run(tag, None, workload, operator_namespace)  # type: ignore[arg-type]
    create_configs(run)
    try:
        run.operator = operator_process(
            kubeconfig, work / tag, workload, operator_namespace, run.lease, *extra, name=f"operator {tag}"
        )
        try:
            yield run
        finally:
            run.operator.close()
    finally:
        delete_configs(run)
        if workload.late:
            workload.opt_in(workload.late, False)


# RBAC ------------------------------------------------------------------------------------------


def audited_calls(plane: ControlPlane, username: str) -> set[tuple[str, str, str]]:
    """(apiGroup, resource[/subresource], verb) of every call `username` made, from the API
    server's audit log; none of them may have been refused."""
    used = set()
    for event in plane.audit(username):
        ref = event.get("objectRef") or {}
        resource = ref.get("resource", "")
        if ref.get("subresource"):
            resource += "/" + ref["subresource"]
        used.add((ref.get("apiGroup", ""), resource, event["verb"]))
        assert event["responseStatus"]["code"] != 403, event
    return used


def _rules_without(rules: list[Any], removed: tuple[str, str, str]) -> list[dict[str, list[str]]]:
    kept = sorted(rbac.permissions(rules) - {removed})
    return [{"apiGroups": [g], "resources": [r], "verbs": [v]} for g, r, v in kept]


def identity_without(
    plane: ControlPlane, release: Any, role_kind: str, removed: tuple[str, str, str], tmp: Path
) -> tuple[Path, str]:
    """A ServiceAccount in a namespace of its own whose ClusterRole and Role are the chart's, as
    installed, minus `removed` in `role_kind`; its kubeconfig and its namespace."""
    from kubernetes import client

    api = plane.api()
    rbac_api = client.RbacAuthorizationV1Api(api)
    namespace = plane.new_namespace("rbac")
    name = "operator"
    client.CoreV1Api(api).create_namespaced_service_account(namespace, {"metadata": {"name": name}})
    cluster_rules = [r.to_dict() for r in rbac_api.read_cluster_role(release.full_name).rules]
    role_rules = [r.to_dict() for r in rbac_api.read_namespaced_role(release.full_name, release.namespace).rules]
    cluster_rules = [
        {"apiGroups": r["api_groups"], "resources": r["resources"], "verbs": r["verbs"]} for r in cluster_rules
    ]
    role_rules = [{"apiGroups": r["api_groups"], "resources": r["resources"], "verbs": r["verbs"]} for r in role_rules]
    # Only the direct transport's grants: the chart's pods/proxy is a row of the proxy test.
    cluster_rules = _rules_without(cluster_rules, ("", "pods/proxy", "get"))
    if role_kind == rbac.CLUSTER_ROLE:
        cluster_rules = _rules_without(cluster_rules, removed)
    else:
        role_rules = _rules_without(role_rules, removed)
    subject = [{"kind": "ServiceAccount", "name": name, "namespace": namespace}]
    role_name = f"kprof-{namespace}"
    rbac_api.create_cluster_role({"metadata": {"name": role_name}, "rules": cluster_rules})
    rbac_api.create_cluster_role_binding(
        {
            "metadata": {"name": role_name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role_name},
            "subjects": subject,
        }
    )
    rbac_api.create_namespaced_role(namespace, {"metadata": {"name": "kprof"}, "rules": role_rules})
    rbac_api.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": "kprof"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "kprof"},
            "subjects": subject,
        },
    )
    return plane.token_kubeconfig(namespace, name, tmp / "kubeconfig"), namespace

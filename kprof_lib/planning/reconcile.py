"""reconcile(spec, cluster_state) -> Plan: what to do about every pod, and why. Pure and deterministic.

Level-based, like a controller-runtime reconciler: it looks at the whole observed state each time.
It never reads the clock (`cluster_state["now"]` is the time), never opens a socket and never
changes its arguments. The operator, the sidecar, the CLI and users' scripts all call it; the
executor carries out the plan; check mode is the plan alone.

Order of decisions for one pod (the first that fails names the "none" reason):
selection (namespace-mismatch, label-mismatch, not-enabled, not-running, invalid-annotation), then
captures due (cpu-threshold, memory-threshold, on-demand, in that precedence; then baseline: with
spec.baseline, one pod of a workload found below every threshold whose latest baseline or healthy
capture is older than the interval), held back while the pod's last capture failed and its retry is
not due yet (backoff, `planning.cadence.retry_due`), then why not (cooldown, no-metrics,
no-baseline, below-threshold, not-due).

`kinds` says which kinds of capture this check decides (threshold, on-demand; both by default): the
operator runs its threshold checks and its on-demand runs on their own schedules, each deciding
its kind over the same spec. A kind left out is decided as if the spec did not ask for it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from typing import Any

from kprof_lib.planning import cadence, naming, selection, usage
from kprof_lib.planning.plan import (
    BASELINE,
    CAPTURE,
    CPU_THRESHOLD,
    KINDS,
    MEMORY_THRESHOLD,
    NONE,
    ON_DEMAND,
    THRESHOLD,
    Plan,
    PodDecision,
    Usage,
)
from kprof_lib.spec import validation
from kprof_lib.spec.model import Spec
from kprof_lib.state import cluster, optin


def reconcile(spec: Any, cluster_state: Any, *, kinds: Collection[str] = KINDS) -> Plan:
    """The plan for `spec` (a ProfilingConfig's .spec, or a validated `Spec`) over `cluster_state`.

    Raises `SpecError` if the spec is invalid and `StateError` if the cluster state is; each lists
    every problem with its path. Nothing else is raised for any input.
    """
    valid = validation.validate_spec(spec)
    state = cluster.read(cluster_state)
    decide = _Decider(valid, state, kinds)
    results = sorted((decide(index, pod) for index, pod in enumerate(state.pods)), key=lambda d: (d.namespace, d.pod))
    return Plan(now=state.now_text, spec=valid, results=tuple(results), active_pods=decide.active_pods)


class _Decider:
    """Decides about one pod at a time; holds what is computed once per reconcile."""

    def __init__(self, spec: Spec, state: cluster.ClusterState, kinds: Collection[str]):
        self.spec = spec
        self.state = state
        self.labels_match = selection.compile_label_selector(spec.label_selector)
        self.thresholds = spec.thresholds if THRESHOLD in kinds else None
        self.on_demand_interval = spec.on_demand_interval if ON_DEMAND in kinds else None
        self.active_pods = 0
        # (namespace, workload) -> its latest baseline or healthy capture, from every pod's history;
        # a workload is added once this reconcile picks one of its pods for a baseline.
        self.baselines: dict[tuple[str, str], dt.datetime] = {}
        for key, entry in state.history.items():
            if entry.workload and entry.last_baseline is not None:
                where = (key.split("/", 1)[0], entry.workload)
                if where not in self.baselines or entry.last_baseline > self.baselines[where]:
                    self.baselines[where] = entry.last_baseline

    def __call__(self, index: int, pod: dict[str, Any]) -> PodDecision:
        metadata = pod["metadata"]
        namespace, name = metadata["namespace"], metadata["name"]
        if not selection.namespace_matches(self.spec.namespace, namespace):
            return PodDecision(namespace, name, NONE, "namespace-mismatch")
        if not self.labels_match(metadata.get("labels") or {}):
            return PodDecision(namespace, name, NONE, "label-mismatch")
        pod_annotations = metadata.get("annotations") or {}
        if not optin.is_enabled(pod_annotations):
            return PodDecision(namespace, name, NONE, "not-enabled")
        path = f"pods[{index}]"
        status = pod.get("status") or {}
        if not isinstance(status, dict):
            cluster.raise_state_error(f"{path}.status", "must be an object")
        pod_ip = status.get("podIP")
        if status.get("phase") != "Running" or metadata.get("deletionTimestamp") or not pod_ip:
            return PodDecision(namespace, name, NONE, "not-running")
        if not isinstance(pod_ip, str):
            cluster.raise_state_error(f"{path}.status.podIP", "must be a string")
        endpoint = optin.endpoint(pod_annotations)
        if isinstance(endpoint, str):
            return PodDecision(namespace, name, NONE, "invalid-annotation", message=endpoint)
        self.active_pods += 1
        return self._decide_capture(pod, path, namespace, name, pod_ip, endpoint)

    def _decide_capture(
        self, pod: dict[str, Any], path: str, namespace: str, name: str, pod_ip: str, endpoint: optin.Endpoint
    ) -> PodDecision:
        history = self.state.history.get(f"{namespace}/{name}") or cluster.History()
        measured = usage.NO_METRICS
        reasons: list[str] = []
        crossed: tuple[str, ...] = ()
        held_back = False
        thresholds = self.thresholds
        if thresholds is not None:
            metrics_key = (namespace, name)
            measured = usage.measure(
                pod, path, self.state.metrics.get(metrics_key), self.state.metrics_paths.get(metrics_key, "")
            )
            crossed = tuple(
                reason
                for reason, percent, limit in (
                    (CPU_THRESHOLD, measured.cpu_percent, thresholds.cpu_percent),
                    (MEMORY_THRESHOLD, measured.memory_percent, thresholds.memory_percent),
                )
                if percent is not None and percent >= limit
            )
            if crossed:
                last = history.last_threshold
                if last is not None and (self.state.now - last).total_seconds() < thresholds.cooldown:
                    held_back = True
                else:
                    reasons.extend(crossed)
        if self.on_demand_interval is not None and cadence.is_on_demand_due(
            history.last_on_demand, self.on_demand_interval, self.state.now
        ):
            reasons.append(ON_DEMAND)
        interval = self.spec.baseline_interval
        if (
            not reasons
            and thresholds is not None
            and interval is not None
            and not crossed
            and (measured.cpu_percent is not None or measured.memory_percent is not None)
        ):
            workload = (namespace, naming.service_name(pod["metadata"]))
            last = self.baselines.get(workload)
            if last is None or (self.state.now - last).total_seconds() >= interval:
                self.baselines[workload] = self.state.now  # one pod per workload and interval
                reasons.append(BASELINE)

        observed = Usage(_round(measured.cpu_percent), _round(measured.memory_percent))
        metadata = pod["metadata"]
        uid = metadata.get("uid")
        retry = cadence.retry_due(history)
        if reasons and retry is not None and self.state.now < retry:
            assert history.last_failed is not None
            return PodDecision(
                namespace,
                name,
                NONE,
                "backoff",
                uid=uid,
                crossed=crossed,
                observed=observed if thresholds is not None else None,
                message=f"the last capture failed at {cluster.format_time(history.last_failed)}; "
                f"next attempt from {cluster.format_time(retry)}",
            )
        if reasons:
            return PodDecision(
                namespace,
                name,
                CAPTURE,
                reasons[0],
                uid=uid,
                reasons=tuple(reasons),
                crossed=crossed,
                pod_ip=pod_ip,
                endpoint=endpoint,
                profile_types=self.spec.profile_types,
                cpu_profile_seconds=self.spec.cpu_profile_seconds,
                observed=observed,
                thresholds=thresholds,
                service=naming.service_name(metadata),
                labels=dict(metadata.get("labels") or {}),
                failing=retry is not None,
            )
        if thresholds is None:
            return PodDecision(namespace, name, NONE, "not-due", uid=uid)
        if held_back:
            reason = "cooldown"
        elif not measured.matched:
            reason = "no-metrics"
        elif measured.cpu_percent is None and measured.memory_percent is None:
            reason = "no-baseline"
        else:
            reason = "below-threshold"
        return PodDecision(namespace, name, NONE, reason, uid=uid, crossed=crossed, observed=observed)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)

"""reconcile(spec, cluster_state) -> Plan: what to do about every pod, and why. Pure and deterministic.

Level-based, like a controller-runtime reconciler: it looks at the whole observed state each time.
It never reads the clock (`cluster_state["now"]` is the time), never opens a socket and never
changes its arguments. The operator, the sidecar, the CLI and users' scripts all call it; the
executor carries out the plan; check mode is the plan alone.

Order of decisions for one pod (the first that fails names the "none" reason):
selection (namespace-mismatch, label-mismatch, not-enabled, not-running, invalid-annotation), then
captures due (cpu-threshold, memory-threshold, on-demand, in that precedence), then why not
(cooldown, no-metrics, no-baseline, below-threshold, not-due).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from kprof_lib.planning import naming, selection, usage
from kprof_lib.spec import validation
from kprof_lib.state import cluster, optin

CPU_THRESHOLD = "cpu-threshold"
MEMORY_THRESHOLD = "memory-threshold"
ON_DEMAND = "on-demand"
THRESHOLD_REASONS = (CPU_THRESHOLD, MEMORY_THRESHOLD)


@dataclass(frozen=True)
class Plan:
    """The decisions of one reconcile. `results` has one entry per pod, sorted by (namespace, pod)."""

    now: str
    spec: dict[str, Any]
    results: list[dict[str, Any]]
    summary: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """The plan as JSON-ready data; it validates against schemas/plan.schema.json."""
        return {"now": self.now, "spec": self.spec, "summary": self.summary, "results": self.results}

    @property
    def captures(self) -> list[dict[str, Any]]:
        return [result for result in self.results if result["action"] == "capture"]

    def recap(self) -> str:
        """One line in the manner of Ansible's play recap: `capture: 1 (cpu-threshold: 1)  none: 2 (...)`."""
        parts = []
        for action in ("capture", "none"):
            count = self.summary["byAction"].get(action, 0)
            reasons = Counter(r["reason"] for r in self.results if r["action"] == action)
            detail = ", ".join(
                f"{reason}: {n}" for reason, n in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))
            )
            parts.append(f"{action}: {count}" + (f" ({detail})" if detail else ""))
        return "  ".join(parts)


def reconcile(spec: Any, cluster_state: Any) -> Plan:
    """The plan for `spec` (a ProfilingConfig's .spec) over `cluster_state`.

    Raises `SpecError` if the spec is invalid and `StateError` if the cluster state is; each lists
    every problem with its path. Nothing else is raised for any input.
    """
    spec = validation.validate_spec(spec)
    state = cluster.read(cluster_state)
    decide = _Decider(spec, state)
    results = [decide(index, pod) for index, pod in enumerate(state.pods)]
    results.sort(key=lambda result: (result["namespace"], result["pod"]))
    by_action = Counter(result["action"] for result in results)
    by_reason = Counter(result["reason"] for result in results)
    summary = {
        "activePods": decide.active_pods,
        "byAction": dict(sorted(by_action.items())),
        "byReason": dict(sorted(by_reason.items())),
    }
    return Plan(now=state.now_text, spec=spec, results=results, summary=summary)


class _Decider:
    """Decides about one pod at a time; holds what is computed once per reconcile."""

    def __init__(self, spec: dict[str, Any], state: cluster.ClusterState):
        self.state = state
        selector = spec.get("selector") or {}
        self.namespace = selector.get("namespace")
        self.labels_match = selection.compile_label_selector(selector.get("labelSelector"))
        self.thresholds = spec.get("thresholds")
        on_demand = spec.get("onDemand") or {}
        self.on_demand_interval = on_demand.get("intervalSeconds") if on_demand.get("enabled") else None
        self.profile_types = spec["profileTypes"]
        self.cpu_seconds = spec["cpuProfileSeconds"]
        if self.thresholds is not None:
            self.threshold_view = {
                "cpuPercent": self.thresholds["cpuThresholdPercent"],
                "memoryPercent": self.thresholds["memoryThresholdPercent"],
            }
        else:
            self.threshold_view = None
        self.active_pods = 0

    def __call__(self, index: int, pod: dict[str, Any]) -> dict[str, Any]:
        metadata = pod["metadata"]
        namespace, name = metadata["namespace"], metadata["name"]
        if not selection.namespace_matches(self.namespace, namespace):
            return _none(namespace, name, "namespace-mismatch")
        if not self.labels_match(metadata.get("labels") or {}):
            return _none(namespace, name, "label-mismatch")
        pod_annotations = metadata.get("annotations") or {}
        if not optin.is_enabled(pod_annotations):
            return _none(namespace, name, "not-enabled")
        path = f"pods[{index}]"
        status = pod.get("status") or {}
        if not isinstance(status, dict):
            cluster.raise_state_error(f"{path}.status", "must be an object")
        pod_ip = status.get("podIP")
        if status.get("phase") != "Running" or metadata.get("deletionTimestamp") or not pod_ip:
            return _none(namespace, name, "not-running")
        if not isinstance(pod_ip, str):
            cluster.raise_state_error(f"{path}.status.podIP", "must be a string")
        endpoint = optin.endpoint(pod_annotations)
        if isinstance(endpoint, str):
            return {**_none(namespace, name, "invalid-annotation"), "message": endpoint}
        self.active_pods += 1
        return self._decide_capture(pod, path, namespace, name, pod_ip, endpoint)

    def _decide_capture(self, pod, path, namespace, name, pod_ip, endpoint) -> dict[str, Any]:
        key = f"{namespace}/{name}"
        history = self.state.history.get(key) or cluster.History()
        measured = usage.NO_METRICS
        reasons: list[str] = []
        held_back = False
        if self.thresholds is not None:
            metrics_key = (namespace, name)
            measured = usage.measure(
                pod, path, self.state.metrics.get(metrics_key), self.state.metrics_paths.get(metrics_key, "")
            )
            crossed = []
            if measured.cpu_percent is not None and measured.cpu_percent >= self.thresholds["cpuThresholdPercent"]:
                crossed.append(CPU_THRESHOLD)
            if (
                measured.memory_percent is not None
                and measured.memory_percent >= self.thresholds["memoryThresholdPercent"]
            ):
                crossed.append(MEMORY_THRESHOLD)
            if crossed:
                last = history.last_threshold
                if last is not None and (self.state.now - last).total_seconds() < self.thresholds["cooldownSeconds"]:
                    held_back = True
                else:
                    reasons.extend(crossed)
        if self.on_demand_interval is not None:
            last = history.last_on_demand
            if last is None or (self.state.now - last).total_seconds() >= self.on_demand_interval:
                reasons.append(ON_DEMAND)

        observed = {"cpuPercent": _round(measured.cpu_percent), "memoryPercent": _round(measured.memory_percent)}
        if reasons:
            metadata = pod["metadata"]
            return {
                "namespace": namespace,
                "pod": name,
                "action": "capture",
                "reason": reasons[0],
                "reasons": reasons,
                "podIP": pod_ip,
                "profileTypes": list(self.profile_types),
                "cpuProfileSeconds": self.cpu_seconds,
                "endpoint": endpoint.to_dict(),
                "observed": observed,
                "thresholds": dict(self.threshold_view) if self.threshold_view is not None else None,
                "service": naming.service_name(metadata),
                "labels": dict(metadata.get("labels") or {}),
            }
        if self.thresholds is None:
            return _none(namespace, name, "not-due")
        if held_back:
            reason = "cooldown"
        elif not measured.matched:
            reason = "no-metrics"
        elif measured.cpu_percent is None and measured.memory_percent is None:
            reason = "no-baseline"
        else:
            reason = "below-threshold"
        return {**_none(namespace, name, reason), "observed": observed}


def _none(namespace: str, name: str, reason: str) -> dict[str, Any]:
    return {"namespace": namespace, "pod": name, "action": "none", "reason": reason}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)

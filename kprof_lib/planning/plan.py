"""What reconcile decides, as values: a `Plan` of one immutable `PodDecision` per pod, sorted by
(namespace, pod), with the key layout its captures are stored under. The executor, the check cycle
and the runtimes read these fields; dicts appear only in `to_dict()`, the JSON of
schemas/plan.schema.json that `kprof plan -o json` prints. Pure.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, NamedTuple

from kprof_lib.spec.model import KeyLayout, Spec, Thresholds
from kprof_lib.state import cluster
from kprof_lib.state.optin import Endpoint

# Why a capture is due (a decision's `reasons`, in precedence order), and the kinds of capture a
# check may decide (`reconcile(..., kinds=...)`).
REQUESTED = "requested"  # the profiling.io/capture-now annotation has a value not served yet
ALERT = "alert"  # a firing Alertmanager alert names the pod
OOM_RISK = "oom-risk"  # the memory trend reaches the limit within the horizon
CPU_THRESHOLD = "cpu-threshold"
MEMORY_THRESHOLD = "memory-threshold"
GOROUTINE_THRESHOLD = "goroutine-threshold"
CPU_SPIKE = "cpu-spike"  # usage over its rolling mean
MEMORY_SPIKE = "memory-spike"
GOROUTINE_SPIKE = "goroutine-spike"
ON_DEMAND = "on-demand"
BASELINE = "baseline"  # a healthy capture kprof takes itself (spec.baseline)
# The precedence of every reason, in this one place: a capture's `reason` is the first of its
# `reasons` in this order (docs/CONFIGURATION.md, spec.triggers, says the same).
PRECEDENCE = (
    REQUESTED,
    ALERT,
    OOM_RISK,
    CPU_THRESHOLD,
    MEMORY_THRESHOLD,
    GOROUTINE_THRESHOLD,
    CPU_SPIKE,
    MEMORY_SPIKE,
    GOROUTINE_SPIKE,
    ON_DEMAND,
    BASELINE,
)
RANK = {reason: rank for rank, reason in enumerate(PRECEDENCE)}
THRESHOLD_REASONS = (CPU_THRESHOLD, MEMORY_THRESHOLD, GOROUTINE_THRESHOLD)
SPIKE_REASONS = (CPU_SPIKE, MEMORY_SPIKE, GOROUTINE_SPIKE)
# Each reason's family: the history field its captures set, which its cooldown (or interval) runs from.
FAMILY_KEYS = {
    REQUESTED: cluster.REQUESTED_KEY,
    ALERT: cluster.ALERT_KEY,
    OOM_RISK: cluster.OOM_KEY,
    **dict.fromkeys(THRESHOLD_REASONS, cluster.THRESHOLD_KEY),
    **dict.fromkeys(SPIKE_REASONS, cluster.SPIKE_KEY),
    ON_DEMAND: cluster.ON_DEMAND_KEY,
    BASELINE: cluster.BASELINE_KEY,
}
THRESHOLD = "threshold"
KINDS = frozenset({THRESHOLD, ON_DEMAND})

# Why nothing is captured, beyond selection's reasons, in the order reconcile says them: held back
# by a failed capture's backoff, by the config's rate limit, by a family's cooldown; a measurement
# missing; too few samples in the window for a trend or a baseline; nothing to measure against
# (no request, no memory limit); nothing crossed; nothing due.
BACKOFF = "backoff"
RATE_LIMITED = "rate-limited"
COOLDOWN = "cooldown"
NO_METRICS = "no-metrics"
NO_WINDOW = "no-window"
NO_BASELINE = "no-baseline"
BELOW_THRESHOLD = "below-threshold"
NOT_DUE = "not-due"

CAPTURE = "capture"
NONE = "none"
_NO_LABELS: Mapping[str, str] = MappingProxyType({})


class Usage(NamedTuple):
    """A pod's usage in percent of its requests (limits where none), rounded to 0.01; None where
    there is nothing to measure against."""

    cpu_percent: float | None = None
    memory_percent: float | None = None

    def to_dict(self) -> dict[str, float | None]:
        return {"cpuPercent": self.cpu_percent, "memoryPercent": self.memory_percent}


# A named tuple, not a frozen dataclass: one is made per pod, 100,000 of them in a big cluster, and
# a frozen dataclass sets each of its 21 fields through object.__setattr__ (4 µs a decision here,
# against 1 µs).
class PodDecision(NamedTuple):
    """What to do about one pod, and why. A capture decision has the pod's address, endpoint and
    what to capture; `crossed` names the thresholds its usage crossed (also when a cooldown held
    the capture back), `observed` its usage when thresholds were looked at."""

    namespace: str
    pod: str
    action: str  # CAPTURE or NONE
    reason: str
    uid: str | None = None
    reasons: tuple[str, ...] = ()
    crossed: tuple[str, ...] = ()
    message: str | None = None
    pod_ip: str | None = None
    endpoint: Endpoint | None = None
    profile_types: tuple[str, ...] = ()
    cpu_profile_seconds: int = 0
    observed: Usage | None = None
    thresholds: Thresholds | None = None
    service: str = ""
    labels: Mapping[str, str] = _NO_LABELS
    # The pod's previous captures failed (a retry after backoff): its failure run goes on if this
    # one fails too. Not part of the plan's JSON.
    failing: bool = False
    # This check's measurement of the pod, for the runtimes' window store: {"time", "cpuCores",
    # "memoryBytes", "goroutines"} (cores, bytes, a count; None where not measured). Only when a
    # trigger of the spec reads the window; None otherwise.
    sample: Mapping[str, Any] | None = None
    alert: str | None = None  # reason alert: the alert's name
    request_value: str | None = None  # reason requested: the capture-now value served
    # Reason alert: the pod's served fingerprints once this capture is done (the history's, then
    # this capture's; the newest cluster.MAX_FINGERPRINTS), for the history.
    alert_fingerprints: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """ "namespace/pod", the pod's key in the capture history."""
        return f"{self.namespace}/{self.pod}"

    @property
    def captures(self) -> bool:
        return self.action == CAPTURE

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "namespace": self.namespace,
            "pod": self.pod,
            "action": self.action,
            "reason": self.reason,
        }
        if self.message is not None:
            out["message"] = self.message
        if self.sample is not None:
            out["sample"] = dict(self.sample)
        if self.action != CAPTURE:
            if self.observed is not None:
                out["observed"] = self.observed.to_dict()
            return out
        if self.alert is not None:
            out["alert"] = self.alert
        if self.request_value is not None:
            out["requestValue"] = self.request_value
        assert self.endpoint is not None
        out.update(
            reasons=list(self.reasons),
            podIP=self.pod_ip,
            profileTypes=list(self.profile_types),
            cpuProfileSeconds=self.cpu_profile_seconds,
            endpoint=self.endpoint.to_dict(),
            observed=(self.observed or Usage()).to_dict(),
            thresholds=(
                {"cpuPercent": self.thresholds.cpu_percent, "memoryPercent": self.thresholds.memory_percent}
                if self.thresholds is not None
                else None
            ),
            service=self.service,
            labels=dict(self.labels),
        )
        return out


@dataclass(frozen=True)
class Plan:
    """The decisions of one reconcile: one per pod, sorted by (namespace, pod)."""

    now: str
    spec: Spec
    results: tuple[PodDecision, ...]
    active_pods: int

    @property
    def key_layout(self) -> KeyLayout:
        return self.spec.key_layout

    @property
    def captures(self) -> list[PodDecision]:
        return [decision for decision in self.results if decision.captures]

    @property
    def summary(self) -> dict[str, Any]:
        by_action = Counter(decision.action for decision in self.results)
        by_reason = Counter(decision.reason for decision in self.results)
        return {
            "activePods": self.active_pods,
            "byAction": dict(sorted(by_action.items())),
            "byReason": dict(sorted(by_reason.items())),
        }

    def to_dict(self) -> dict[str, Any]:
        """The plan as JSON-ready data; it validates against schemas/plan.schema.json."""
        return {
            "now": self.now,
            "spec": self.spec.data,
            "summary": self.summary,
            "results": [decision.to_dict() for decision in self.results],
        }

    def recap(self) -> str:
        """One line in the manner of Ansible's play recap: `capture: 1 (cpu-threshold: 1)  none: 2 (...)`."""
        parts = []
        for action in (CAPTURE, NONE):
            reasons = Counter(d.reason for d in self.results if d.action == action)
            count = sum(reasons.values())
            detail = ", ".join(
                f"{reason}: {n}" for reason, n in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))
            )
            parts.append(f"{action}: {count}" + (f" ({detail})" if detail else ""))
        return "  ".join(parts)

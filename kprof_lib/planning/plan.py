"""What reconcile decides, as values: a `Plan` of one frozen `PodDecision` per pod, sorted by
(namespace, pod), with the key layout its captures are stored under. The executor, the check cycle
and the runtimes read these fields; dicts appear only in `to_dict()`, the JSON of
schemas/plan.schema.json that `kprof plan -o json` prints. Pure.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kprof_lib.spec.model import KeyLayout, Spec, Thresholds
from kprof_lib.state.optin import Endpoint

# Why a capture is due (a decision's `reasons`, in precedence order), and the kinds of capture a
# check may decide (`reconcile(..., kinds=...)`).
CPU_THRESHOLD = "cpu-threshold"
MEMORY_THRESHOLD = "memory-threshold"
ON_DEMAND = "on-demand"
BASELINE = "baseline"  # a healthy capture kprof takes itself (spec.baseline)
THRESHOLD_REASONS = (CPU_THRESHOLD, MEMORY_THRESHOLD)
THRESHOLD = "threshold"
KINDS = frozenset({THRESHOLD, ON_DEMAND})

CAPTURE = "capture"
NONE = "none"


@dataclass(frozen=True)
class Usage:
    """A pod's usage in percent of its requests (limits where none), rounded to 0.01; None where
    there is nothing to measure against."""

    cpu_percent: float | None = None
    memory_percent: float | None = None

    def to_dict(self) -> dict[str, float | None]:
        return {"cpuPercent": self.cpu_percent, "memoryPercent": self.memory_percent}


@dataclass(frozen=True)
class PodDecision:
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
    labels: Mapping[str, str] = field(default_factory=dict)
    # The pod's previous captures failed (a retry after backoff): its failure run goes on if this
    # one fails too. Not part of the plan's JSON.
    failing: bool = False

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
        if self.action != CAPTURE:
            if self.message is not None:
                out["message"] = self.message
            if self.observed is not None:
                out["observed"] = self.observed.to_dict()
            return out
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

"""Status conditions (`metav1.Condition`: type, status, reason, message, observedGeneration,
lastTransitionTime) as Kubernetes API conventions want them kept: one entry per type, and
lastTransitionTime moves only when the status changes, so `kubectl wait` and dashboards see real
transitions. Pure; the operator builds a ProfilingConfig's status with it before patching.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from kprof_lib.state import cluster

TRUE = "True"
FALSE = "False"
UNKNOWN = "Unknown"


def set_condition(
    conditions: Iterable[Mapping[str, Any]] | None,
    type: str,
    status: str | bool,
    reason: str,
    message: str,
    observed_generation: int | None,
    now: dt.datetime | str,
) -> list[dict[str, Any]]:
    """A new list with condition `type` set; the others are kept as they were, in their order
    (a new type goes last). `status` is "True", "False", "Unknown" or a bool; `now` an aware
    datetime or an RFC 3339 string, used as lastTransitionTime when the status changed."""
    if isinstance(status, bool):
        status = TRUE if status else FALSE
    if status not in (TRUE, FALSE, UNKNOWN):
        raise ValueError(f"condition status must be True, False or Unknown, not {status!r}")
    result = [dict(condition) for condition in conditions or ()]
    previous = next((c for c in result if c.get("type") == type), None)
    transition = _rfc3339(now)
    if previous is not None and previous.get("status") == status and previous.get("lastTransitionTime"):
        transition = previous["lastTransitionTime"]
    condition: dict[str, Any] = {
        "type": type,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": transition,
    }
    if observed_generation is not None:
        condition["observedGeneration"] = observed_generation
    if previous is None:
        result.append(condition)
    else:
        result[result.index(previous)] = condition
    return result


def find_condition(conditions: Iterable[Mapping[str, Any]] | None, type: str) -> Mapping[str, Any] | None:
    return next((c for c in conditions or () if c.get("type") == type), None)


def _rfc3339(now: dt.datetime | str) -> str:
    if isinstance(now, str):
        return now
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return cluster.format_time(now)

"""A ProfilingConfig's status after a run, built by one pure function from the status it builds on
and what the run came to: `Checked` (the check ran; Ready unless the history could not be saved),
`Invalid` (the spec breaks the schema: Valid=False and Ready=False) or `Failed` (the check could
not gather or carry out: Valid=True, Ready=False). A run that captured sets `lastCapture`. The
operator's check runner patches the result.
Conditions are kept as `conditions` keeps them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kprof_lib.planning import conditions

READY = "Ready"
VALID = "Valid"


@dataclass(frozen=True)
class Checked:
    kind: str  # the kind of run: "check" or "on-demand"
    active_pods: int
    captured: int  # pods with a profile kept
    failed: int  # pods due whose capture produced nothing
    profiles_kept: int
    profiles_stored: int
    history_error: str | None = None
    # The run's latest capture (time, pod, reason, uri, topFunctions, topGrower), when it made one.
    last_capture: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Invalid:
    message: str  # the SpecError's text


@dataclass(frozen=True)
class Failed:
    message: str


Outcome = Checked | Invalid | Failed


def build(base: Mapping[str, Any], outcome: Outcome, *, generation: int | None, now: str) -> dict[str, Any]:
    """The status to patch: `base` is the status the run builds on (its totals and conditions)."""
    previous = base.get("conditions")
    if isinstance(outcome, Invalid):
        conds = conditions.set_condition(previous, VALID, False, "InvalidSpec", outcome.message, generation, now)
        why = "not checking: the spec is invalid (see the Valid condition)"
        conds = conditions.set_condition(conds, READY, False, "InvalidSpec", why, generation, now)
        return {"activePods": 0, "observedGeneration": generation, "lastCheckTime": now, "conditions": conds}
    conds = conditions.set_condition(previous, VALID, True, "SpecValid", "the spec is valid", generation, now)
    if isinstance(outcome, Failed):
        conds = conditions.set_condition(conds, READY, False, "CheckFailed", outcome.message, generation, now)
        return {"lastCheckTime": now, "observedGeneration": generation, "conditions": conds}
    if outcome.history_error:
        ready = (False, "HistoryNotSaved", f"profiles stored but the capture history was not: {outcome.history_error}")
    else:
        message = f"{outcome.active_pods} active pod(s); last {outcome.kind}: {outcome.captured} captured"
        ready = (True, "Checked", message + (f", {outcome.failed} failed" if outcome.failed else ""))
    conds = conditions.set_condition(conds, READY, *ready, generation, now)
    status = {
        "activePods": outcome.active_pods,
        "totalProfiles": int(base.get("totalProfiles") or 0) + outcome.profiles_kept,
        "totalUploads": int(base.get("totalUploads") or 0) + outcome.profiles_stored,
        "lastCheckTime": now,
        "observedGeneration": generation,
        "conditions": conds,
    }
    if outcome.last_capture:
        status["lastCapture"] = replacing(base.get("lastCapture"), outcome.last_capture)
    return status


def replacing(old: Any, new: Mapping[str, Any]) -> dict[str, Any]:
    """`new` as a merge patch that replaces `old` whole: the status is merge-patched, and a key of
    the previous value that the new one lacks (a profile type, the top grower) must be nulled, or
    the previous capture's would stay."""
    patch: dict[str, Any] = dict(new)
    if isinstance(old, Mapping):
        for key, value in old.items():
            if key not in new:
                patch[key] = None
            elif isinstance(value, Mapping) and isinstance(new[key], Mapping):
                patch[key] = replacing(value, new[key])
    return patch


def already_reported(base: Mapping[str, Any], outcome: Invalid, generation: int | None) -> bool:
    """Whether `base` already says this spec is invalid for this reason at this generation (nothing
    to write, no second Event)."""
    previous = conditions.find_condition(base.get("conditions"), VALID)
    return (
        previous is not None
        and previous.get("status") == conditions.FALSE
        and previous.get("message") == outcome.message
        and base.get("observedGeneration") == generation
    )

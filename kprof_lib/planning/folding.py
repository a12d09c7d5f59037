"""A ProfilingConfig's status folded from the reports of its node agents. Each node agent
(`runtimes.node`) builds the status of its own node's share with `planning.status.build` and keeps
it in a report of its own (one writer per object); the elected agent folds the reports into the
config's status with `fold`, so one writer patches the config. Pure.

How each field folds: `totalProfiles` and `totalUploads` add up over every report (a node that
left keeps its part of the totals); `activePods` adds up over the fresh reports only (written since
`fresh_since`: an agent rewrites its report at least every refresh period, so an older one is a
node that is gone or an agent that is down); `lastCheckTime` is the latest; `lastCapture` the
latest capture of any node; `observedGeneration` the config's generation once every fresh report
has seen it, else the oldest seen. Conditions: Valid is False when a fresh report at the current
generation says so (its message: every node validates the same spec); Ready is True when every
fresh report is Ready, else False naming the first node that is not and how many are not.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from kprof_lib.planning import conditions
from kprof_lib.planning.status import READY, VALID, replacing
from kprof_lib.state import cluster


def fold(
    reports: Mapping[str, Mapping[str, Any]],
    base: Mapping[str, Any],
    *,
    generation: int | None,
    now: str,
    fresh_since: dt.datetime,
) -> dict[str, Any] | None:
    """The status to merge-patch over `base` (the config's current status) from `reports` (node
    name -> that node's report); None when there is no report yet (nothing to say)."""
    if not reports:
        return None
    nodes = sorted(reports)
    fresh = [node for node in nodes if _time(reports[node].get("lastCheckTime")) >= fresh_since]
    status: dict[str, Any] = {
        "activePods": sum(int(reports[n].get("activePods") or 0) for n in fresh),
        "totalProfiles": sum(int(reports[n].get("totalProfiles") or 0) for n in nodes),
        "totalUploads": sum(int(reports[n].get("totalUploads") or 0) for n in nodes),
    }
    checked = [str(reports[n]["lastCheckTime"]) for n in nodes if reports[n].get("lastCheckTime")]
    if checked:
        status["lastCheckTime"] = max(checked, key=_time)
    captures = [reports[n]["lastCapture"] for n in nodes if isinstance(reports[n].get("lastCapture"), Mapping)]
    if captures:
        status["lastCapture"] = replacing(base.get("lastCapture"), max(captures, key=lambda c: _time(c.get("time"))))
    seen = [reports[n].get("observedGeneration") for n in fresh]
    seen_numbers = [g for g in seen if isinstance(g, int)]
    if generation is not None and seen_numbers and all(g == generation for g in seen):
        status["observedGeneration"] = generation
    elif seen_numbers:
        status["observedGeneration"] = min(seen_numbers)
    status["conditions"] = _conditions(reports, fresh, base, generation, now, status["activePods"], fresh_since)
    return status


def _conditions(
    reports: Mapping[str, Mapping[str, Any]],
    fresh: list[str],
    base: Mapping[str, Any],
    generation: int | None,
    now: str,
    active: int,
    fresh_since: dt.datetime,
) -> list[dict[str, Any]]:
    conds = list(base.get("conditions") or ())
    current = [n for n in fresh if generation is None or reports[n].get("observedGeneration") == generation]
    invalid = [n for n in current if _status(reports[n], VALID) == conditions.FALSE]
    if invalid:
        valid = conditions.find_condition(reports[invalid[0]].get("conditions"), VALID) or {}
        message = str(valid.get("message") or "the spec is invalid")
        conds = conditions.set_condition(conds, VALID, False, "InvalidSpec", message, generation, now)
    elif current:
        conds = conditions.set_condition(conds, VALID, True, "SpecValid", "the spec is valid", generation, now)
    if not fresh:
        why = f"{len(reports)} node report(s), none written since {cluster.format_time(fresh_since)}"
        return conditions.set_condition(conds, READY, False, "NoNodeReports", why, generation, now)
    not_ready = [n for n in fresh if _status(reports[n], READY) != conditions.TRUE]
    if not_ready:
        first = conditions.find_condition(reports[not_ready[0]].get("conditions"), READY) or {}
        reason = str(first.get("reason") or "NodeNotReady")
        message = f"{len(not_ready)} of {len(fresh)} node(s) not ready; {not_ready[0]}: {first.get('message') or '-'}"
        return conditions.set_condition(conds, READY, False, reason, message, generation, now)
    message = f"{active} active pod(s) on {len(fresh)} node(s)"
    return conditions.set_condition(conds, READY, True, "Checked", message, generation, now)


def _status(report: Mapping[str, Any], kind: str) -> str | None:
    found = conditions.find_condition(report.get("conditions"), kind)
    return None if found is None else found.get("status")


def _time(value: Any) -> dt.datetime:
    try:
        return cluster.parse_time(value)
    except (TypeError, ValueError):
        return dt.datetime.min.replace(tzinfo=dt.UTC)

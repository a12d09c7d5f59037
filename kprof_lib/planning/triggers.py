"""The arithmetic of spec.triggers, one finding per trigger and pod: a spike over the rolling mean of
the window (`spike`), the least-squares memory trend against the limit (`memory_trend`), which firing
alerts name a pod (`AlertIndex`), and how many captures the history holds for the rate limit
(`recent_captures`). Pure; reconcile puts the findings together.

A finding either fires (its `reason`), could not decide (`undecided`: no-window, no-baseline, with
the why in `note`) or decided that nothing is due (neither; `note` may still give the numbers).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

from kprof_lib.planning.plan import NO_BASELINE, NO_WINDOW
from kprof_lib.spec.model import Oom
from kprof_lib.state import cluster

RATE_WINDOW_SECONDS = 60


class Finding(NamedTuple):
    reason: str | None = None  # fires: the capture reason
    undecided: str | None = None  # could not decide: the none-reason
    note: str | None = None  # the numbers behind it, for the plan's message


NOTHING = Finding()


def spike(
    reason: str,
    what: str,
    current: float,
    earlier: Sequence[float],
    *,
    diff_percent: float,
    min_samples: int,
    floor_met: bool,
    floor_text: str,
    unit: str = "",
) -> Finding:
    """`current` at least the mean of `earlier` times (1 + diff/100), and the floor met: `reason`."""
    if len(earlier) < min_samples:
        return Finding(
            undecided=NO_WINDOW, note=f"{what}: {len(earlier)} of the {min_samples} samples a baseline needs"
        )
    mean = sum(earlier) / len(earlier)
    bound = mean * (1 + diff_percent / 100)
    if current < bound:
        return NOTHING
    rise = f"+{100 * (current - mean) / mean:.0f}%" if mean > 0 else "from 0"
    shown = f"{what} {_number(current)}{unit}, {rise} over its mean {_number(mean)}{unit} of {len(earlier)} samples"
    if not floor_met:
        return Finding(note=f"{shown}, below the floor ({floor_text})")
    return Finding(reason=reason, note=shown)


def memory_trend(
    earlier: Sequence[tuple[float, float]], current: float, limit: float | None, oom: Oom, reason: str
) -> Finding:
    """Time-to-OOM: the least-squares slope of memory over the window's (seconds before now, bytes)
    and this check's measurement; `reason` when the limit is reached within the horizon."""
    if limit is None:
        return Finding(undecided=NO_BASELINE, note="memory trend: not every measured container has a memory limit")
    if len(earlier) < oom.min_samples:
        return Finding(
            undecided=NO_WINDOW, note=f"memory trend: {len(earlier)} of the {oom.min_samples} samples it needs"
        )
    slope = least_squares_slope([*earlier, (0.0, current)])  # bytes per second
    share = f"memory {100 * current / limit:.0f}% of limit"
    if slope <= 0:
        return Finding(note=f"{share}, {'flat' if slope == 0 else 'falling'}")
    seconds = max(0.0, (limit - current) / slope)
    note = f"{share}, rising {100 * slope * 60 / limit:.1f}%/min, limit reached in {_duration(seconds)}"
    return Finding(reason=reason if seconds < oom.horizon else None, note=note)


def least_squares_slope(points: Sequence[tuple[float, float]]) -> float:
    """The slope of the least-squares line through (x, y) points; 0 when x does not vary."""
    count = len(points)
    mean_x = sum(x for x, _ in points) / count
    mean_y = sum(y for _, y in points) / count
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    if spread == 0:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / spread


class AlertIndex:
    """The firing alerts by what they name: (namespace, pod), or a namespace and labels."""

    def __init__(self, alerts: Iterable[cluster.Alert]):
        self.by_pod: dict[tuple[str, str], list[cluster.Alert]] = {}
        self.by_labels: dict[str, list[cluster.Alert]] = {}
        for alert in alerts:
            if alert.pod is not None:
                self.by_pod.setdefault((alert.namespace, alert.pod), []).append(alert)
            elif alert.match_labels:
                self.by_labels.setdefault(alert.namespace, []).append(alert)
            # An alert naming neither a pod nor labels matches nothing.

    def unserved(
        self, namespace: str, pod: str, labels: Mapping[str, str], served: Sequence[str]
    ) -> list[cluster.Alert]:
        """The alerts naming the pod whose fingerprint is not in `served`, oldest first."""
        found = {
            alert.fingerprint: alert
            for alert in (
                *self.by_pod.get((namespace, pod), ()),
                *(a for a in self.by_labels.get(namespace, ()) if a.matches(labels)),
            )
            if alert.fingerprint not in served
        }
        return sorted(found.values(), key=lambda alert: (alert.starts_at, alert.fingerprint))


def recent_captures(history: Mapping[str, cluster.History], now: dt.datetime) -> int:
    """Captures (and failed attempts) the history records in the last `RATE_WINDOW_SECONDS`; a
    capture with several reasons sets several fields to one time and counts once."""
    since = now - dt.timedelta(seconds=RATE_WINDOW_SECONDS)
    return sum(1 for entry in history.values() for moment in entry.capture_times() if since < moment <= now)


def _number(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"~{seconds:.0f} s"
    if seconds < 7200:
        return f"~{seconds / 60:.0f} min"
    return f"~{seconds / 3600:.0f} h"

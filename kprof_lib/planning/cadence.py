"""When checks and on-demand captures fall due, computed here once for reconcile, the operator's
scheduler and the single-target check loop. Pure: every time is given.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping

from kprof_lib.spec.model import Spec
from kprof_lib.spec.schemas import DEFAULT_CHECK_INTERVAL
from kprof_lib.state import cluster


def on_demand_due(last: dt.datetime | None, interval: float) -> dt.datetime | None:
    """When a pod last captured on demand at `last` is due again; None: at once (never captured)."""
    return None if last is None else last + dt.timedelta(seconds=interval)


def is_on_demand_due(last: dt.datetime | None, interval: float, now: dt.datetime) -> bool:
    due = on_demand_due(last, interval)
    return due is None or now >= due


def earliest_on_demand_due(
    history: Mapping[str, Mapping[str, str]], interval: float, keys: Iterable[str] | None = None
) -> dt.datetime | None:
    """The first time any pod of `history` ("namespace/pod" -> its entry; only `keys` when given)
    is due on demand again; None when none has a readable lastOnDemandCapture (nothing to wait for).
    Unreadable timestamps are left out: reconcile treats such a pod as due."""
    times = []
    for key in history if keys is None else keys:
        last = (history.get(key) or {}).get(cluster.ON_DEMAND_KEY)
        try:
            times.append(cluster.parse_time(last))
        except ValueError:
            continue
    return min(times) + dt.timedelta(seconds=interval) if times else None


def check_interval(spec: Spec | None) -> int:
    """Seconds between checks: the spec's thresholds.checkIntervalSeconds, else the schema's default
    (a spec without thresholds is still looked at, to keep its status current)."""
    if spec is not None and spec.thresholds is not None:
        return spec.thresholds.check_interval
    return DEFAULT_CHECK_INTERVAL

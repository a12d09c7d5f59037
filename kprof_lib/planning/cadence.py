"""When checks and on-demand captures fall due, computed here once for reconcile, the operator's
scheduler and the single-target check loop; and when a pod whose capture failed may be tried
again. Pure: every time is given.
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


# A pod whose capture failed is tried again after RETRY_FIRST_SECONDS, then after as long as its
# failures have lasted (so the wait doubles), never more than RETRY_MAX_SECONDS apart.
RETRY_FIRST_SECONDS = 30
RETRY_MAX_SECONDS = 900


def failing(history: cluster.History) -> bool:
    """Whether the pod's last capture failed: a failure later than its last successful capture
    (of any reason)."""
    if history.last_failed is None or history.failing_since is None:
        return False
    successes = [
        t
        for t in (
            history.last_threshold,
            history.last_on_demand,
            history.last_baseline,
            history.last_spike,
            history.last_oom,
            history.last_alert,
            history.last_requested,
        )
        if t is not None
    ]
    return not successes or history.last_failed > max(successes)


def retry_due(history: cluster.History) -> dt.datetime | None:
    """When a pod whose captures have been failing may be tried again; None: it is not failing.
    Exponential with a cap, per pod: each wait is as long as the failures have lasted so far."""
    if not failing(history):
        return None
    assert history.last_failed is not None and history.failing_since is not None
    lasted = max(0.0, (history.last_failed - history.failing_since).total_seconds())
    wait = min(RETRY_MAX_SECONDS, max(RETRY_FIRST_SECONDS, lasted))
    return history.last_failed + dt.timedelta(seconds=wait)


def check_interval(spec: Spec | None) -> int:
    """Seconds between checks: the spec's thresholds.checkIntervalSeconds, else the schema's default
    (a spec without thresholds is still looked at, to keep its status current)."""
    if spec is not None and spec.thresholds is not None:
        return spec.thresholds.check_interval
    return DEFAULT_CHECK_INTERVAL

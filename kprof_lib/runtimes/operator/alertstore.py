"""The firing alerts the operator's Alertmanager receiver holds, in memory: what each check gives
reconcile as the cluster state's `alerts`. Bounded in number, and each alert expires a while after
its last delivery (Alertmanager repeats a firing alert at its group's repeat_interval), so an alert
whose resolution never arrived does not stay forever. A resolved alert is forgotten at once.

`runtimes.operator.alertreceiver` adds what each delivery says; `app.Operator` reads `firing()`
in every check. Which pods an alert matches, and whether it was served already (its fingerprint in
the capture history), is reconcile's business.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from kprof_lib.adapters.alertmanager import Alert, Notification
from kprof_lib.execution.clock import SystemClock
from kprof_lib.execution.ports import Clock

DEFAULT_MAX_ALERTS = 1000
DEFAULT_EXPIRY_SECONDS = 3600.0


class StoreFull(Exception):
    """Holding a delivery's new alerts would pass the bound; nothing of it was kept."""


@dataclass(frozen=True)
class Kept:
    """What a delivery changed: alerts new to the store, alerts delivered again, alerts resolved."""

    added: int
    renewed: int
    resolved: int


class AlertStore:
    """At most `max_alerts` firing alerts by fingerprint, each until `expiry_seconds` after its last
    delivery. Thread-safe: the receiver's request threads add, check threads read."""

    def __init__(
        self,
        max_alerts: int = DEFAULT_MAX_ALERTS,
        expiry_seconds: float = DEFAULT_EXPIRY_SECONDS,
        clock: Clock | None = None,
    ):
        self.max_alerts = max_alerts
        self.expiry_seconds = expiry_seconds
        self._clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._alerts: dict[str, tuple[Alert, float]] = {}  # fingerprint -> (alert, when it expires)

    def keep(self, notification: Notification) -> Kept:
        """Holds the delivery's firing alerts and forgets its resolved ones, all or nothing:
        `StoreFull` when the new ones do not fit (the oldest are kept, as the spool does: they are
        nearest the start of an incident; Alertmanager retries later)."""
        with self._lock:
            now = self._clock.monotonic()
            self._expire(now)
            resolved = [f for f in notification.resolved if f in self._alerts]
            firing = {alert.fingerprint: alert for alert in notification.firing}
            added = [f for f in firing if f not in self._alerts]
            room = self.max_alerts - (len(self._alerts) - len(resolved))
            if len(added) > room:
                raise StoreFull(
                    f"{len(added)} new alert(s) do not fit: {len(self._alerts)} of at most {self.max_alerts} held"
                )
            for fingerprint in resolved:
                del self._alerts[fingerprint]
            until = now + self.expiry_seconds
            for fingerprint, alert in firing.items():
                self._alerts[fingerprint] = (alert, until)
            return Kept(added=len(added), renewed=len(firing) - len(added), resolved=len(resolved))

    def firing(self) -> list[dict[str, Any]]:
        """The alerts held, as cluster state entries, in the order they first arrived."""
        with self._lock:
            self._expire(self._clock.monotonic())
            return [alert.to_state() for alert, _ in self._alerts.values()]

    def __len__(self) -> int:
        with self._lock:
            self._expire(self._clock.monotonic())
            return len(self._alerts)

    def _expire(self, now: float) -> None:
        for fingerprint in [f for f, (_, until) in self._alerts.items() if until <= now]:
            del self._alerts[fingerprint]

"""The operator's HTTP endpoints and Prometheus instruments: `/healthz` (the process answers),
`/readyz` (caches synced and leadership settled) on the health address, `/metrics` on the metrics
address (one server when both addresses are the same). `Instruments` owns a private
prometheus-client registry, so several operators in one process (tests) never share counters.
Used by `app.Operator`, which starts and stops the servers, and by `runner`, which counts.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from kprof_lib.runtimes.endpoints import Address, Endpoints, Route, health_routes

# Label values -> the counts summed under them, read when scraped.
_Sources = dict[tuple[str, ...], list[Callable[[], int]]]

# CPU profiles take cpuProfileSeconds (1-300 s); the others a fraction of a second.
CAPTURE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 45, 60, 90, 120, 180, 300, 600)


class Instruments:
    """The operator's metrics, on a registry of their own."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry(auto_describe=True)
        counter = functools.partial(Counter, registry=r)
        gauge = functools.partial(Gauge, registry=r)
        self.checks = counter(
            "kprof_checks", "Checks run, by ProfilingConfig and result (ok, error, invalid).", ["config", "result"]
        )
        self.captures = counter(
            "kprof_captures",
            "Profiles captured, by profile type, reason and result (stored, spooled, failed).",
            ["type", "reason", "result"],
        )
        self.uploads = counter(
            "kprof_uploads", "Profiles handed to a store, by result (stored, spooled, failed).", ["result"]
        )
        self.capture_duration = Histogram(
            "kprof_capture_duration_seconds",
            "Time to fetch and store one profile, by profile type.",
            ["type"],
            buckets=CAPTURE_BUCKETS,
            registry=r,
        )
        self.active_pods = gauge(
            "kprof_active_pods", "Pods a ProfilingConfig selects that are running and opted in.", ["config"]
        )
        self.threshold_violations = counter(
            "kprof_threshold_violations",
            "Pods seen at or above a threshold in a check, by config and resource.",
            ["config", "resource"],
        )
        self.spool_bytes = gauge("kprof_spool_bytes", "Bytes of profiles waiting in the local spool.")
        self.leader = gauge("kprof_leader", "1 while this process holds the leader Lease, else 0.")
        self.alert_notifications = counter(
            "kprof_alert_notifications",
            "Alertmanager webhook deliveries, by result (accepted, unauthorized, standing-by, bad-request, too-large, "
            "store-full).",
            ["result"],
        )
        self.alerts_held = gauge("kprof_alerts_held", "Firing alerts the Alertmanager receiver holds.")
        self._watch_restarts: _Sources = {}
        restarted = "Watches started again after an error, a 410 Gone or a dropped stream."
        r.register(_ReadOnScrape("kprof_watch_restarts", restarted, self._watch_restarts, ("resource",)))
        self._spool_refused: _Sources = {(): []}
        refused = "Profiles refused because the store was unreachable and the spool full (the oldest are kept)."
        r.register(_ReadOnScrape("kprof_spool_refused", refused, self._spool_refused))

    def track_watch(self, resource: str, restarts: Callable[[], int]) -> None:
        """Export `restarts()` (the informer's own count of watches started again) as
        kprof_watch_restarts_total{resource}."""
        self._watch_restarts[(resource,)] = [restarts]

    def track_leader(self, is_leader: Callable[[], bool]) -> None:
        self.leader.set_function(lambda: 1.0 if is_leader() else 0.0)

    def track_alerts(self, held: Callable[[], int]) -> None:
        self.alerts_held.set_function(lambda: float(held()))

    def track_spool(self, pending_bytes: Callable[[], int], refused: Callable[[], int] | None = None) -> None:
        """Export the spool's size, and `refused()` (profiles a full spool turned away, counted by
        the spools) as kprof_spool_refused_total."""
        self.spool_bytes.set_function(lambda: float(pending_bytes()))
        if refused is not None:
            self._spool_refused[()].append(refused)

    def forget_config(self, config: str) -> None:
        """Drop the per-config gauge of a deleted ProfilingConfig (counters keep their history)."""
        try:
            self.active_pods.remove(config)
        except KeyError:
            pass

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _ReadOnScrape(Collector):
    """A counter read from its owners when scraped (the informers, the spools): they count, not us.
    `sources` maps label values to the functions whose counts are summed under them."""

    def __init__(self, name: str, documentation: str, sources: _Sources, labels: tuple[str, ...] = ()):
        self._family = functools.partial(CounterMetricFamily, name, documentation, labels=labels)
        self._sources = sources

    def describe(self) -> list[CounterMetricFamily]:
        return [self._family()]

    def collect(self) -> list[CounterMetricFamily]:
        family = self._family()
        for labels, counts in sorted(self._sources.items()):
            family.add_metric(labels, float(sum(count() for count in counts)))
        return [family]


def metrics_routes(instruments: Instruments) -> dict[str, Route]:
    return {"/metrics": lambda: (200, CONTENT_TYPE_LATEST, instruments.exposition())}


def serve(
    health: Address, metrics: Address, ready: Callable[[], tuple[bool, str]], instruments: Instruments
) -> list[Endpoints]:
    """The servers for the two addresses (one when they are the same), not yet started."""
    if health == metrics:
        return [Endpoints(health, {**health_routes(ready), **metrics_routes(instruments)}, "health+metrics")]
    return [
        Endpoints(health, health_routes(ready), "health"),
        Endpoints(metrics, metrics_routes(instruments), "metrics"),
    ]

"""reconcile(spec, cluster_state) -> Plan: what to do about every pod, and why. Pure and deterministic.

Level-based, like a controller-runtime reconciler: it looks at the whole observed state each time.
It never reads the clock (`cluster_state["now"]` is the time), never opens a socket and never
changes its arguments. The operator, the sidecar, the CLI and users' scripts all call it; the
executor carries out the plan; check mode is the plan alone.

Order of decisions for one pod (the first that fails names the "none" reason):
selection (namespace-mismatch, label-mismatch, not-enabled, not-running, invalid-annotation), then
captures due, then held back while the pod's last capture failed and its retry is not due yet
(backoff, `planning.cadence.retry_due`), then the config's rate limit (rate-limited: with
spec.triggers.maxCapturesPerMinute, the captures of the last 60 s in the history count, and the
pods due go first in precedence order, then by namespace and pod), then why not (cooldown,
no-metrics, no-window, no-baseline, below-threshold, not-due).

Captures due, each reason with its family (whose cooldown holds all of its reasons back together):
requested (the profiling.io/capture-now annotation has a value the history has not served; no
cooldown), alert (a firing alert names the pod and its fingerprint was not served; alert cooldown),
oom-risk (the memory trend reaches the limit within the horizon; oom cooldown), cpu-threshold,
memory-threshold, goroutine-threshold (threshold cooldown), cpu-spike, memory-spike, goroutine-spike
(over the rolling mean and the floor; spike cooldown), on-demand (its interval), then baseline
(with spec.baseline, one pod of a workload found below every threshold whose latest baseline or
healthy capture is older than the interval). That is the precedence too: a capture's reason is the
first of its reasons in `plan.PRECEDENCE`. Each decision's message gives the numbers behind it.

`kinds` says which kinds of capture this check decides (threshold, on-demand; both by default): the
operator runs its threshold checks and its on-demand runs on their own schedules, each deciding
its kind over the same spec. A kind left out is decided as if the spec did not ask for it; every
trigger of spec.triggers belongs to the threshold kind (the check).

Cost: what the spec does not enable costs nothing per pod (no window read, no alert looked up).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping
from types import MappingProxyType
from typing import Any

from kprof_lib.planning import cadence, selection, usage
from kprof_lib.planning import triggers as triggers_math
from kprof_lib.planning.plan import (
    ALERT,
    BACKOFF,
    BASELINE,
    BELOW_THRESHOLD,
    CAPTURE,
    COOLDOWN,
    CPU_SPIKE,
    CPU_THRESHOLD,
    GOROUTINE_SPIKE,
    GOROUTINE_THRESHOLD,
    KINDS,
    MEMORY_SPIKE,
    MEMORY_THRESHOLD,
    NO_BASELINE,
    NO_METRICS,
    NO_WINDOW,
    NONE,
    NOT_DUE,
    ON_DEMAND,
    OOM_RISK,
    RANK,
    RATE_LIMITED,
    REQUESTED,
    THRESHOLD,
    Plan,
    PodDecision,
    Usage,
)
from kprof_lib.spec import validation
from kprof_lib.spec.model import Spec
from kprof_lib.state import cluster, digest, optin
from kprof_lib.state.podusage import PodUsage


def reconcile(spec: Any, cluster_state: Any, *, kinds: Collection[str] = KINDS) -> Plan:
    """The plan for `spec` (a ProfilingConfig's .spec, or a validated `Spec`) over `cluster_state`.

    Raises `SpecError` if the spec is invalid and `StateError` if the cluster state is; each lists
    every problem with its path. Nothing else is raised for any input.
    """
    valid = validation.validate_spec(spec)
    state = cluster.read(cluster_state)
    decide = _Decider(valid, state, kinds)
    results = [decide(index, pod) for index, pod in enumerate(state.pods)]
    limit = valid.triggers.max_captures_per_minute
    if limit is not None:
        results = _rate_limited(results, limit, state)
    # By (namespace, pod): no two decisions share them (cluster.read refuses duplicate pods), so the
    # decisions compare by those first two fields alone.
    results.sort()
    return Plan(now=state.now_text, spec=valid, results=tuple(results), active_pods=decide.active_pods)


def _rate_limited(results: list[PodDecision], limit: int, state: cluster.ClusterState) -> list[PodDecision]:
    """The decisions with the captures beyond the config's rate limit turned into rate-limited
    ones: the captures of the last minute in the history count against it, and the pods due go
    first in precedence order, then by namespace and pod."""
    recent = triggers_math.recent_captures(state.history, state.now)
    due = sorted((d for d in results if d.captures), key=lambda d: (RANK[d.reason], d.namespace, d.pod))
    over = {d.key for d in due[max(0, limit - recent) :]}
    if not over:
        return results
    why = (
        f"{recent} capture(s) of this config in the last {triggers_math.RATE_WINDOW_SECONDS} s and "
        f"{len(due)} due now; at most {limit} per minute"
    )
    return [
        d._replace(
            action=NONE,
            reason=RATE_LIMITED,
            reasons=(),
            message=f"{', '.join(d.reasons)} due; {why}" + (f"; {d.message}" if d.message else ""),
        )
        if d.key in over
        else d
        for d in results
    ]


class _Decider:
    """Decides about one pod at a time; holds what is computed once per reconcile."""

    def __init__(self, spec: Spec, state: cluster.ClusterState, kinds: Collection[str]):
        self.spec = spec
        self.state = state
        self.now = state.now
        self.history = state.history
        self.metrics = state.metrics
        self.labels_match = selection.compile_label_selector(spec.label_selector)
        self.namespace = spec.namespace
        # A shared label map's read-only view for the capture decisions; None: the selector does not match.
        self.label_views: dict[int, Mapping[str, str] | None] = {}
        self.endpoints: dict[int, optin.Endpoint | str | None] = {}
        self.bases: dict[int, usage.Bases | None] = {}
        self.seen_maps: list[object] = []
        self.thresholds = spec.thresholds if THRESHOLD in kinds else None
        # A pod is due on demand when its last on-demand capture is at or before this moment.
        self.on_demand_since = (
            state.now - dt.timedelta(seconds=spec.on_demand_interval)
            if ON_DEMAND in kinds and spec.on_demand_interval is not None
            else None
        )
        # The triggers this check decides, worked out once: a trigger left out costs nothing per pod.
        checks = THRESHOLD in kinds
        self.triggers = spec.triggers
        self.capture_now = checks and spec.triggers.capture_now
        self.alerts = triggers_math.AlertIndex(state.alerts) if checks and spec.triggers.alerts else None
        self.goroutines = spec.triggers.goroutines if checks else None
        self.checks_metrics = checks and spec.reads_metrics
        self.checks_usage = self.checks_metrics or self.goroutines is not None
        self.uses_window = checks and spec.triggers.uses_window
        self.with_limit = spec.triggers.oom is not None
        # The triggers that read the window (spikes, the memory trend) or the goroutine count.
        self.trends = spec.triggers.spike is not None or self.with_limit or self.goroutines is not None
        self.active_pods = 0
        self.cooled_since: dict[int, dt.datetime] = {}
        # (namespace, workload) -> its latest baseline or healthy capture, from every pod's history;
        # a workload is added once this reconcile picks one of its pods for a baseline.
        self.baselines: dict[tuple[str, str], dt.datetime] = {}
        for key, entry in state.history.items() if spec.baseline_interval is not None else ():
            if entry.workload and entry.last_baseline is not None:
                where = (key.split("/", 1)[0], entry.workload)
                if where not in self.baselines or entry.last_baseline > self.baselines[where]:
                    self.baselines[where] = entry.last_baseline

    # The operator's pod cache shares one label map and one annotation map among the replicas of a
    # workload: what is read from one is worked out once per reconcile (by the map's id; the map
    # is kept alive meanwhile, in seen_maps, so that its id is not reused).

    def __call__(self, index: int, pod: digest.PodDigest) -> PodDecision:
        namespace, name = pod.namespace, pod.name
        if self.namespace is not None and self.namespace != namespace:
            return PodDecision(namespace, name, NONE, "namespace-mismatch")
        labels = pod.labels
        view = self.label_views.get(id(labels), _UNSEEN)
        if view is _UNSEEN:
            view = self.label_views[id(labels)] = MappingProxyType(labels) if self.labels_match(labels) else None
            self.seen_maps.append(labels)
        if view is None:
            return PodDecision(namespace, name, NONE, "label-mismatch")
        annotations = pod.annotations
        endpoint = self.endpoints.get(id(annotations), _UNSEEN)
        if endpoint is _UNSEEN:
            endpoint = self.endpoints[id(annotations)] = optin.endpoint_if_enabled(annotations)
            self.seen_maps.append(annotations)
        if endpoint is None:
            return PodDecision(namespace, name, NONE, "not-enabled")
        if not pod.running or not pod.pod_ip:
            return PodDecision(namespace, name, NONE, "not-running")
        if isinstance(endpoint, str):
            return PodDecision(namespace, name, NONE, "invalid-annotation", message=endpoint)
        self.active_pods += 1
        return self._decide_capture(pod, index, pod.pod_ip, endpoint, view)

    def _decide_capture(
        self, pod: digest.PodDigest, index: int, pod_ip: str, endpoint: optin.Endpoint, labels: Mapping[str, str]
    ) -> PodDecision:
        """The decision about a selected pod; `labels` is the read-only view of its labels."""
        namespace, name, key = pod.namespace, pod.name, pod.key
        history = self.history.get(key) or _NO_HISTORY
        now = self.now
        found = _Found()
        request_value = alert_name = None
        fingerprints: tuple[str, ...] = ()
        if self.capture_now:
            value = pod.annotations.get(optin.CAPTURE_NOW)
            if value and value != history.capture_now_value:
                request_value = value
                found.fire(REQUESTED, f"capture-now={optin.shown(value)}")
        if self.alerts is not None:
            firing = self.alerts.unserved(namespace, name, labels, history.alert_fingerprints)
            if firing:
                names = ", ".join(dict.fromkeys(alert.alertname for alert in firing))
                until = self._cooling(history.last_alert, self.triggers.alert_cooldown)
                if until is not None:
                    found.crossed.append(ALERT)
                    found.hold(f"alert {names}: alert cooldown until {cluster.format_time(until)}")
                else:
                    alert_name = firing[0].alertname
                    served = (*history.alert_fingerprints, *(alert.fingerprint for alert in firing))
                    fingerprints = served[-cluster.MAX_FINGERPRINTS :]
                    found.fire(ALERT, f"alert {names}")

        measured = usage.NO_METRICS
        sample = None
        if self.checks_usage:
            measured, sample = self._usage_findings(pod, index, key, history, found)

        reasons = found.reasons
        since = self.on_demand_since
        if since is not None and (history.last_on_demand is None or history.last_on_demand <= since):
            reasons.append(ON_DEMAND)
        interval = self.spec.baseline_interval
        if (
            not reasons
            and self.thresholds is not None
            and interval is not None
            and not found.crossed
            and (measured.cpu_percent is not None or measured.memory_percent is not None)
        ):
            workload = (namespace, pod.service)
            last = self.baselines.get(workload)
            if last is None or (now - last).total_seconds() >= interval:
                self.baselines[workload] = now  # one pod per workload and interval
                reasons.append(BASELINE)

        if len(reasons) > 1:
            reasons.sort(key=RANK.__getitem__)
        crossed = tuple(sorted(found.crossed, key=RANK.__getitem__) if len(found.crossed) > 1 else found.crossed)
        cpu, memory = measured.cpu_percent, measured.memory_percent
        observed = tuple.__new__(
            Usage, (None if cpu is None else round(cpu, 2), None if memory is None else round(memory, 2))
        )
        uid = pod.uid
        message = "; ".join(found.notes) if found.notes else None
        retry = None if history.last_failed is None else cadence.retry_due(history)
        if reasons and retry is not None and now < retry:
            assert history.last_failed is not None
            return PodDecision(
                namespace,
                name,
                NONE,
                BACKOFF,
                uid=uid,
                crossed=crossed,
                observed=observed if self.checks_metrics else None,
                message=f"the last capture failed at {cluster.format_time(history.last_failed)}; "
                f"next attempt from {cluster.format_time(retry)}",
                sample=sample,
            )
        if reasons:
            types = self.spec.profile_types
            if OOM_RISK in reasons and self.triggers.oom is not None:
                # heap first (what a leak shows), and the spec's types when another reason wants them.
                oom_types = self.triggers.oom.profile_types
                types = oom_types if reasons == [OOM_RISK] else tuple(dict.fromkeys((*oom_types, *types)))
            # Every field, in PodDecision's order, given to tuple.__new__: the named tuple's own
            # __new__ binds 21 arguments one name at a time (0.4 µs a decision, against 0.12).
            return tuple.__new__(
                PodDecision,
                (
                    namespace,
                    name,
                    CAPTURE,
                    reasons[0],
                    uid,
                    tuple(reasons),
                    crossed,
                    message,
                    pod_ip,
                    endpoint,
                    types,  # profile_types
                    self.spec.cpu_profile_seconds,
                    observed,
                    self.thresholds,
                    pod.service,
                    labels,
                    retry is not None,  # failing
                    sample,
                    alert_name,
                    request_value,
                    fingerprints if ALERT in reasons else (),  # alert_fingerprints
                ),
            )
        if found.held:
            reason = COOLDOWN
        elif found.undecided:
            reason = min(found.undecided, key=_NONE_ORDER.index)
        elif not self.checks_usage:
            return PodDecision(namespace, name, NONE, NOT_DUE, uid=uid, message=message)
        else:
            reason = BELOW_THRESHOLD
        return PodDecision(
            namespace,
            name,
            NONE,
            reason,
            uid=uid,
            crossed=crossed,
            observed=observed if self.checks_metrics else None,
            message=message,
            sample=sample,
        )

    def _cooling(self, last: dt.datetime | None, cooldown: int) -> dt.datetime | None:
        """Until when a family whose last capture was at `last` cools down; None: it does not."""
        if last is None:
            return None
        since = self.cooled_since.get(cooldown)
        if since is None:  # a family that last captured at `since` or before has cooled down
            since = self.cooled_since[cooldown] = self.now - dt.timedelta(seconds=cooldown)
        return None if last <= since else last + dt.timedelta(seconds=cooldown)

    def _thresholds(
        self, measured: usage.Usage, goroutines: int | None, history: cluster.History, found: _Found
    ) -> None:
        """The threshold family (CPU, memory, goroutines) of one pod, into `found`."""
        crossed: list[str] = []
        thresholds = self.thresholds
        if thresholds is not None:
            cpu, memory = measured.cpu_percent, measured.memory_percent
            if cpu is not None and cpu >= thresholds.cpu_percent:
                crossed.append(CPU_THRESHOLD)
            if memory is not None and memory >= thresholds.memory_percent:
                crossed.append(MEMORY_THRESHOLD)
        gauge = self.goroutines
        if (
            gauge is not None
            and gauge.threshold is not None
            and goroutines is not None
            and goroutines >= gauge.threshold
        ):
            crossed.append(GOROUTINE_THRESHOLD)
            found.notes.append(f"goroutines {goroutines} >= {gauge.threshold}")
        if crossed:
            found.family(crossed, self._cooling(history.last_threshold, self.triggers.threshold_cooldown), "threshold")

    def _usage_findings(
        self, pod: digest.PodDigest, index: int, key: str, history: cluster.History, found: _Found
    ) -> tuple[usage.Usage, dict[str, Any] | None]:
        """The usage triggers (thresholds, spikes, the memory trend, goroutines) of one pod, into
        `found`; returns the pod's usage and, when the window is read, this check's sample."""
        triggers = self.triggers
        measured = usage.NO_METRICS
        if self.checks_metrics:
            metrics_key = (pod.namespace, pod.name)
            metrics = self.metrics.get(metrics_key)
            if metrics is not None:
                # A PodUsage has no path: nothing in it can be wrong.
                path = "" if type(metrics) is PodUsage else self.state.metrics_paths[metrics_key]
                containers = pod.containers  # None: a v1 Pod's, not read yet
                summed = self.bases.get(id(containers), _UNSEEN)
                if summed is _UNSEEN:
                    summed = self.bases[id(containers)] = None if containers is None else usage.bases(containers)
                    self.seen_maps.append(containers)
                measured = usage.measure(pod, index, metrics, path, with_limit=self.with_limit, summed=summed)
            if not measured.matched:
                found.undecided.append(NO_METRICS)
            elif measured.cpu_percent is None and measured.memory_percent is None:
                found.undecided.append(NO_BASELINE)
        if not self.trends:  # thresholds alone (the usual spec): no goroutine count, no window
            if measured.matched:
                self._thresholds(measured, None, history, found)
            return measured, None
        goroutines = None
        if self.goroutines is not None:
            goroutines = self.state.goroutine_count(key)
            if goroutines is None:
                found.undecided.append(NO_METRICS)
                found.notes.append("goroutines: not read")
        if not measured.matched and goroutines is None:
            return measured, None
        window: list[cluster.Sample] = []
        sample = None
        if self.uses_window:
            window = self.state.window(key, triggers.window_samples)
            sample = {
                "time": self.state.now_text,
                "cpuCores": measured.cpu_cores,
                "memoryBytes": measured.memory_bytes,
                "goroutines": goroutines,
            }

        self._thresholds(measured, goroutines, history, found)
        gauge = self.goroutines

        spike_family: list[str] = []
        spikes = triggers.spike
        if spikes is not None:
            for reason, what, current, percent, diff, floor, unit, scale, field in (
                (
                    CPU_SPIKE,
                    "cpu",
                    measured.cpu_cores,
                    measured.cpu_percent,
                    spikes.cpu_diff_percent,
                    spikes.cpu_floor_percent,
                    " cores",
                    1.0,
                    1,
                ),
                (
                    MEMORY_SPIKE,
                    "memory",
                    measured.memory_bytes,
                    measured.memory_percent,
                    spikes.memory_diff_percent,
                    spikes.memory_floor_percent,
                    " MiB",
                    1 / MIB,
                    2,
                ),
            ):
                if diff is None or current is None or percent is None:
                    continue
                earlier = [value * scale for value in (s[field] for s in window) if value is not None]
                found.add(
                    triggers_math.spike(
                        reason,
                        what,
                        current * scale,
                        earlier,
                        diff_percent=diff,
                        min_samples=spikes.min_samples,
                        floor_met=percent >= floor,
                        floor_text=f"{percent:.0f}% of request, floor {floor:g}%",
                        unit=unit,
                    ),
                    spike_family,
                )
        if gauge is not None and gauge.spike_diff_percent is not None and goroutines is not None:
            earlier_counts = [float(s.goroutines) for s in window if s.goroutines is not None]
            finding = triggers_math.spike(
                GOROUTINE_SPIKE,
                "goroutines",
                float(goroutines),
                earlier_counts,
                diff_percent=gauge.spike_diff_percent,
                min_samples=gauge.min_samples,
                floor_met=goroutines >= gauge.floor,
                floor_text=f"floor {gauge.floor}",
            )
            found.add(finding, spike_family)
        if spike_family:
            found.family(spike_family, self._cooling(history.last_spike, triggers.spike_cooldown), "spike")

        oom = triggers.oom
        if oom is not None and measured.memory_bytes is not None:
            points = [(s.offset, s.memory_bytes) for s in window if s.memory_bytes is not None]
            oom_family: list[str] = []
            found.add(
                triggers_math.memory_trend(points, measured.memory_bytes, measured.memory_limit, oom, OOM_RISK),
                oom_family,
            )
            if oom_family:
                found.family(oom_family, self._cooling(history.last_oom, oom.cooldown), "oom-risk")
        return measured, sample


class _Found:
    """What one pod's triggers found: the reasons due, what fired but waits for its family's
    cooldown, what could not be decided, and the notes that explain it."""

    __slots__ = ("crossed", "held", "notes", "reasons", "undecided")

    def __init__(self) -> None:
        self.reasons: list[str] = []
        self.crossed: list[str] = []  # every reason whose condition holds, held back or not
        self.held = False
        self.undecided: list[str] = []  # the first in _NONE_ORDER is said
        self.notes: list[str] = []

    def fire(self, reason: str, note: str) -> None:
        self.reasons.append(reason)
        self.crossed.append(reason)
        self.notes.append(note)

    def hold(self, note: str) -> None:
        self.held = True
        self.notes.append(note)

    def add(self, finding: triggers_math.Finding, family: list[str]) -> None:
        if finding.reason is not None:
            family.append(finding.reason)
        if finding.undecided is not None:
            self.undecided.append(finding.undecided)
        if finding.note is not None:
            self.notes.append(finding.note)

    def family(self, fired: list[str], cooling: dt.datetime | None, name: str) -> None:
        """A family's reasons are due together, or held back together by its cooldown (until `cooling`)."""
        self.crossed.extend(fired)
        if cooling is not None:
            self.hold(f"{', '.join(fired)}: {name} cooldown until {cluster.format_time(cooling)}")
        else:
            self.reasons.extend(fired)


_UNSEEN: Any = object()  # a shared map not read yet
_NO_HISTORY = cluster.History()  # a pod never captured (most of them): one value, not one per pod
# The order in which the reasons a pod could not be decided for are said (the first found).
_NONE_ORDER = (NO_METRICS, NO_WINDOW, NO_BASELINE)
MIB = 1024 * 1024

"""One run of one ProfilingConfig, as the operator runs it on a scheduler thread: validate the spec
once, then the check cycle (`execution.cycle.run_check`) over pods from the watch cache, PodMetrics
with ONE list per selected namespace or one cluster-wide with the label selector pushed to the
server, and history from its ConfigMap; the cycle saves the history and flushes the spool, and
this module's reporter records Events, counts, and patches the status (`planning.status.build`).

A config reaches only what `planning.tenancy` allows it (its own namespace unless the installer
says otherwise, allowed destinations); asking for more makes it invalid. Only the leader checks.
An invalid spec is reported (condition Valid=False with the SpecError's
text, Ready=False, an InvalidConfig Event on the ProfilingConfig) and never stops other configs.
A check that cannot gather (metrics-server down, history unreadable) captures nothing, sets
Ready=False with the reason and is tried again at the next interval; so does a check whose S3
destination does not exist or refuses the credentials (`operator.destinations`, looked at again
with backoff).

The two kinds of run decide one kind of capture each over the same spec (`kinds_for_run`): a
"check" run decides threshold captures, an "on-demand" run scheduled captures (and reads no
metrics). Both keep activePods, the totals and the conditions current.

A check run also hands reconcile what the trend triggers judge: the config's usage windows
(`adapters.kube.windows`, each check's samples appended after reconcile) and, for a config with
`triggers.goroutines`, the goroutine count of each selected, opted-in running pod, read at most
`GoroutineReader.concurrency` at a time within half the check interval, beside the captures (not
in the executor's capture slots, which 30 s CPU profiles may hold).
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kprof_lib.adapters.kube import events
from kprof_lib.adapters.kube.windows import ConfigMapWindows
from kprof_lib.adapters.pprof import goroutines
from kprof_lib.execution import ports, results, summaries
from kprof_lib.execution.cycle import CheckReport, run_check
from kprof_lib.execution.executor import Executor
from kprof_lib.planning import cadence, tenancy
from kprof_lib.planning import status as statuses
from kprof_lib.planning.plan import ALERT, CPU_THRESHOLD, KINDS, MEMORY_THRESHOLD, ON_DEMAND, REQUESTED, THRESHOLD
from kprof_lib.runtimes.operator.destinations import DestinationChecks, DestinationUnusable
from kprof_lib.runtimes.operator.monitoring import Instruments
from kprof_lib.runtimes.operator.scheduling import ON_DEMAND as ON_DEMAND_RUN
from kprof_lib.runtimes.operator.scheduling import Run
from kprof_lib.spec import validation
from kprof_lib.spec.errors import Problem, SpecError
from kprof_lib.spec.model import Spec
from kprof_lib.spec.schemas import API_VERSION, KIND
from kprof_lib.state import cluster
from kprof_lib.state.digest import PodDigest

log = logging.getLogger("kprof.operator.checks")

READY = statuses.READY
VALID = statuses.VALID


def kinds_for_run(spec: Spec, kind: str) -> frozenset[str]:
    """The kinds of capture one kind of run decides (see the module's docstring): a check decides
    the threshold kind (thresholds and every trigger of spec.triggers), and on-demand captures too
    when the spec has no on-demand job of its own to decide them."""
    if kind == ON_DEMAND_RUN:
        return frozenset({ON_DEMAND})
    return frozenset({THRESHOLD}) if spec.on_demand_interval is not None else KINDS


@dataclass
class Outcome:
    """What one run did, for logs and tests: ok | invalid | error | skipped, and the report."""

    result: str
    message: str = ""
    report: CheckReport | None = None
    status: dict[str, Any] = field(default_factory=dict)


@dataclass(kw_only=True, eq=False)
class CheckRunner:
    """Runs checks for the scheduler (`runner(run)`); everything it needs is given."""

    configs: Callable[[str], dict[str, Any] | None]
    pods: ports.PodSource
    metrics: ports.MetricsSource
    history: ports.HistoryStore
    events: ports.EventRecorder
    status: ports.StatusPort
    executor: Executor
    store_for: Callable[[Spec], ports.ProfileStore]
    transport_for: Callable[[str], ports.Transport]
    default_transport: str
    instruments: Instruments
    selector_string: Callable[[Any], str]
    is_leader: Callable[[], bool] = lambda: True
    flush: Callable[[ports.ProfileStore], None] | None = None  # e.g. upload what the store's spool holds
    # What configs may reach (namespaces, destinations); None: the default, strict one.
    policy: tenancy.Policy | None = None
    jaeger_url: str | None = None  # where the capture pages link their traces
    usage_windows: ConfigMapWindows | None = None  # kept between checks (None: no trends)
    goroutine_reader: goroutines.GoroutineReader | None = None  # None: no goroutine counts
    # The firing alerts the Alertmanager receiver holds (cluster state `alerts`); None: no receiver.
    alerts: Callable[[], list[dict[str, Any]]] | None = None
    # The latest status this process built per config (uid, status, whether the API took it): the
    # base the totals are added to, newer than the watch cache right after a write. A write that
    # failed is kept too, so the next one still counts what this one did.
    _written: dict[str, tuple[str | None, dict[str, Any], bool]] = field(default_factory=dict, init=False)
    _written_lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _destinations: DestinationChecks = field(default_factory=DestinationChecks, init=False)

    def __call__(self, run: Run) -> Outcome:
        if not self.is_leader():
            return Outcome("skipped", "not the leader")
        config = self.configs(run.key)
        if config is None or (run.uid and config["metadata"].get("uid") != run.uid):
            return Outcome("skipped", "the config is gone")
        try:
            spec = validation.validate_spec(config.get("spec"))
        except SpecError as error:
            return self._invalid(run, config, error)
        # What the installer allows and what the API's selector syntax can carry are checked side
        # by side, so that the author sees every problem at once.
        problems: list[Problem] = []
        try:
            spec = tenancy.scope(spec, config["metadata"]["namespace"], self.policy or tenancy.Policy())
        except SpecError as error:
            problems += error.errors
        try:
            selector = self._selector(spec)
        except SpecError as error:
            problems += error.errors
        if problems:
            return self._invalid(run, config, SpecError(problems))
        kinds = kinds_for_run(spec, run.kind)

        # The trend triggers' windows: only for checks of a spec with a trigger that reads them.
        windowed = THRESHOLD in kinds and spec.triggers.uses_window and self.usage_windows is not None

        def gather() -> dict[str, Any]:
            # A pod that does not opt in is never captured, whatever else reconcile would say of
            # it: reconcile gets the opted-in pods only (in a big cluster, a tenth of them or
            # fewer), and their PodMetrics only, the others' dropped as they are read.
            pods = [pod for pod in self.pods.pods(spec.namespace) if pod.enabled]
            state: dict[str, Any] = {"now": cluster.format_time(run.now), "pods": pods}
            if THRESHOLD in kinds and spec.reads_metrics:
                wanted = {(pod.namespace, pod.name) for pod in pods}
                state["podMetrics"] = self.metrics.pod_metrics(spec.namespace, selector or None, wanted.__contains__)
            state["history"] = self.history.load(run.key)
            if windowed and self.usage_windows is not None:
                state["usageWindow"] = self.usage_windows.view(run.key)
            if THRESHOLD in kinds and spec.reads_goroutines and self.goroutine_reader is not None:
                counts = self._count_goroutines(run.key, spec, pods)
                if counts:
                    state["goroutines"] = counts
            if self.alerts is not None and THRESHOLD in kinds and spec.triggers.alerts:
                state["alerts"] = self.alerts()
            return state

        def save_samples(samples: Mapping[str, Mapping[str, Any]]) -> None:
            assert self.usage_windows is not None
            self.usage_windows.append(run.key, samples, limit=spec.triggers.window_samples)

        try:
            store = self.store_for(spec)
            unusable = self._destinations.problem(store)
            if unusable is not None:
                raise DestinationUnusable(unusable)
            transport = self.transport_for(spec.transport or self.default_transport)
            report = run_check(
                config_name=run.key,
                spec=spec,
                gather=gather,
                executor=self.executor,
                store=store,
                transport=transport,
                kinds=kinds,
                save_history=lambda updates: self.history.merge(run.key, updates),
                save_samples=save_samples if windowed else None,
                flush=None if self.flush is None else functools.partial(self.flush, store),
                cancelled=run.cancelled,
                jaeger_url=self.jaeger_url,
            )
        except Exception as error:
            if isinstance(error, SpecError):  # the spec passed validation; a selector or state may not
                return self._invalid(run, config, error)
            return self._failed(run, config, error)

        if report.discarded:
            extra = {"config": run.key, "action": "discard", "reason": "deleted"}
            log.info("%s was deleted during its %s; nothing recorded", run.key, run.kind, extra=extra)
            return Outcome("skipped", "deleted during the run", report)
        self._record_events(run, report)
        self._count(run, report)
        # The run's captures started together; the last pod in the plan's order stands for them.
        latest = [s for s in report.summaries.values() if s.summary is not None]
        outcome = statuses.Checked(
            kind=run.kind,
            active_pods=report.plan.active_pods,
            captured=report.execution.count(results.CAPTURED),
            failed=report.execution.count(results.FAILED),
            profiles_kept=report.execution.profiles_kept,
            profiles_stored=report.execution.profiles_stored,
            history_error=report.history_error,
            last_capture=latest[-1].to_status() if latest else None,
        )
        status = self._write_status(run, config, outcome)
        self.instruments.checks.labels(run.key, "ok").inc()
        done: dict[str, Any] = {
            "config": run.key,
            "action": run.kind,
            "reason": "done",
            "activePods": report.plan.active_pods,
            "captured": outcome.captured,
            "failed": outcome.failed,
        }
        log.info("%s %s: %s", run.kind, run.key, report.recap(), extra=done)
        return Outcome("ok", report.recap(), report, status)

    # Parts of a run ----------------------------------------------------------------------------

    def _count_goroutines(self, key: str, spec: Spec, pods: list[PodDigest]) -> dict[str, int]:
        assert self.goroutine_reader is not None
        name = spec.transport or self.default_transport
        transport = self.transport_for(name)
        requests = goroutines.requests_for(spec, pods)
        return self.goroutine_reader.read(transport, requests, within=cadence.check_interval(spec) / 2, label=key)

    def _selector(self, spec: Spec) -> str:
        try:
            return self.selector_string(spec.label_selector)
        except ValueError as error:
            # The schema lets through keys and values the API's selector syntax cannot carry.
            raise SpecError([{"path": "spec.selector.labelSelector", "message": str(error)}]) from None

    def _record_events(self, run: Run, report: CheckReport) -> None:
        decisions = {d.key: d for d in report.plan.captures}
        for result in report.execution.results:
            if result.status not in (results.CAPTURED, results.FAILED):
                continue
            involved = {"apiVersion": "v1", "kind": "Pod", "namespace": result.namespace, "name": result.pod}
            involved["uid"] = result.uid or ""  # left out of the Event when empty
            stored = [p for p in result.profiles if p.status == results.STORED]
            spooled = [p for p in result.profiles if p.status == results.SPOOLED]
            failed = [p for p in result.profiles if p.status == results.FAILED]
            written = report.summaries.get(result.key)
            decision = decisions.get(result.key)
            # The numbers behind the reasons ("memory 41% of limit, rising 3.1%/min, limit reached
            # in ~4 min", a goroutine count, the capture-now value).
            detail = f"; {decision.message}" if decision is not None and decision.message else ""
            why = f"{', '.join(result.reasons) or result.reason}, config {run.key}{detail}"
            if stored and written is not None and written.summary is not None and decision is not None:
                # What was hot and where the capture is: its folder holds the profiles and the page.
                types = ", ".join(p.type for p in stored)
                if set(decision.reasons) <= {REQUESTED, ALERT}:
                    detail = ""  # the headline names the capture-now value or the alert already
                message = f"{summaries.headline(decision, written)} (config {run.key}; profiles: {types}{detail})"
                self.events.record(involved, events.NORMAL, events.PROFILE_CAPTURED, message)
            elif stored:
                places = ", ".join(f"{p.type} → {p.uri}" for p in stored)
                self.events.record(involved, events.NORMAL, events.PROFILE_CAPTURED, f"Captured ({why}): {places}")
            if spooled:
                places = ", ".join(f"{p.type} → {p.uri}" for p in spooled)
                message = f"Captured ({why}) but the store is unreachable; kept in the local spool for {places}"
                self.events.record(involved, events.WARNING, events.PROFILE_SPOOLED, message)
            if failed:
                reasons = "; ".join(f"{p.type}: {p.error}" for p in failed)
                self.events.record(
                    involved, events.WARNING, events.PROFILE_CAPTURE_FAILED, f"Capture failed ({why}): {reasons}"
                )

    def _count(self, run: Run, report: CheckReport) -> None:
        instruments = self.instruments
        instruments.active_pods.labels(run.key).set(report.plan.active_pods)
        for result in report.execution.results:
            for profile in result.profiles:
                instruments.captures.labels(profile.type, result.reason, profile.status).inc()
                instruments.capture_duration.labels(profile.type).observe(profile.seconds)
                if profile.status in (results.STORED, results.SPOOLED):
                    instruments.uploads.labels(profile.status).inc()
                elif profile.key:  # captured, then refused by the store
                    instruments.uploads.labels("failed").inc()
        for decision in report.plan.results:  # the crossings reconcile found, held back or not
            if CPU_THRESHOLD in decision.crossed:
                instruments.threshold_violations.labels(run.key, "cpu").inc()
            if MEMORY_THRESHOLD in decision.crossed:
                instruments.threshold_violations.labels(run.key, "memory").inc()

    def _write_status(self, run: Run, config: dict[str, Any], outcome: statuses.Outcome) -> dict[str, Any]:
        base, generation = self._base_status(run.key, config), config["metadata"].get("generation")
        status = statuses.build(base, outcome, generation=generation, now=cluster.format_time(run.now))
        self._patch(run.key, config, status)
        return status

    def _invalid(self, run: Run, config: dict[str, Any], error: SpecError) -> Outcome:
        self.instruments.checks.labels(run.key, "invalid").inc()
        self.instruments.active_pods.labels(run.key).set(0)
        outcome = statuses.Invalid(str(error))
        generation = config["metadata"].get("generation")
        # Reported means written: an Invalid status the API did not take is written again.
        if statuses.already_reported(self._base_status(run.key, config, sent_only=True), outcome, generation):
            return Outcome("invalid", outcome.message)  # already reported for this generation
        extra = {"config": run.key, "action": "reject", "reason": "invalid-spec"}
        log.warning("%s: %s", run.key, outcome.message.replace("\n  ", "; "), extra=extra)
        status = self._write_status(run, config, outcome)
        meta = config["metadata"]
        involved = {"apiVersion": API_VERSION, "kind": KIND, "namespace": meta["namespace"], "name": meta["name"]}
        involved["uid"] = meta.get("uid", "")
        self.events.record(involved, events.WARNING, events.INVALID_CONFIG, outcome.message)
        return Outcome("invalid", outcome.message, status=status)

    def _failed(self, run: Run, config: dict[str, Any], error: Exception) -> Outcome:
        self.instruments.checks.labels(run.key, "error").inc()
        extra = {"config": run.key, "action": run.kind, "reason": "check-failed"}
        log.warning("%s of %s failed: %s", run.kind, run.key, error, extra=extra)
        if run.cancelled():
            return Outcome("error", str(error))
        status = self._write_status(run, config, statuses.Failed(str(error)))
        return Outcome("error", str(error), status=status)

    # Status bookkeeping ------------------------------------------------------------------------

    def _base_status(self, key: str, config: dict[str, Any], *, sent_only: bool = False) -> dict[str, Any]:
        """The status to build on: what this process last built for this object (only if the API
        took it, with `sent_only`), else what the watch cache has (written by a previous leader,
        or before a restart)."""
        uid = config["metadata"].get("uid")
        with self._written_lock:
            written = self._written.get(key)
        if written is not None and written[0] == uid and (written[2] or not sent_only):
            return written[1]
        return dict(config.get("status") or {})

    def _patch(self, key: str, config: dict[str, Any], status: dict[str, Any]) -> None:
        metadata = config["metadata"]
        try:
            updated = self.status.patch_status(metadata["namespace"], metadata["name"], status)
        except Exception as error:
            extra = {"config": key, "action": "write-status", "reason": "status-error"}
            log.error("%s: status not written: %s", key, error, extra=extra)
            with self._written_lock:
                self._written[key] = (metadata.get("uid"), status, False)
            return
        if updated is None:
            return  # deleted meanwhile
        with self._written_lock:
            self._written[key] = (updated["metadata"].get("uid"), dict(updated.get("status") or {}), True)

    def forget(self, key: str) -> None:
        """Drop what is remembered of a deleted config."""
        with self._written_lock:
            self._written.pop(key, None)
        self.instruments.forget_config(key)
        if self.goroutine_reader is not None:
            self.goroutine_reader.forget(key)

    def leadership_changed(self) -> None:
        """What this process wrote may be stale once another leader has written: read afresh."""
        with self._written_lock:
            self._written.clear()

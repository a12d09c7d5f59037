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
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kprof_lib.adapters.kube.events import (
    INVALID_CONFIG,
    NORMAL,
    PROFILE_CAPTURE_FAILED,
    PROFILE_CAPTURED,
    PROFILE_SPOOLED,
    WARNING,
)
from kprof_lib.execution import results
from kprof_lib.execution.cycle import CheckReport, run_check
from kprof_lib.execution.executor import Executor
from kprof_lib.execution.ports import (
    EventRecorder,
    HistoryStore,
    MetricsSource,
    PodSource,
    ProfileStore,
    StatusPort,
    Transport,
)
from kprof_lib.planning import status as statuses
from kprof_lib.planning import tenancy
from kprof_lib.planning.plan import CPU_THRESHOLD, KINDS, MEMORY_THRESHOLD, ON_DEMAND, THRESHOLD
from kprof_lib.runtimes.operator.destinations import DestinationChecks, DestinationUnusable
from kprof_lib.runtimes.operator.monitoring import Instruments
from kprof_lib.runtimes.operator.scheduling import ON_DEMAND as ON_DEMAND_RUN
from kprof_lib.runtimes.operator.scheduling import Run
from kprof_lib.spec import validation
from kprof_lib.spec.errors import Problem, SpecError
from kprof_lib.spec.model import Spec
from kprof_lib.spec.schemas import API_VERSION, KIND

log = logging.getLogger("kprof.operator.checks")

READY = statuses.READY
VALID = statuses.VALID


def rfc3339(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def kinds_for_run(spec: Spec, kind: str) -> frozenset[str]:
    """The kinds of capture one kind of run decides (see the module's docstring); a check of a spec
    without thresholds decides both, so a spec with neither is still looked at."""
    if kind == ON_DEMAND_RUN:
        return frozenset({ON_DEMAND})
    return frozenset({THRESHOLD}) if spec.thresholds is not None else KINDS


@dataclass
class Outcome:
    """What one run did, for logs and tests: ok | invalid | error | skipped, and the report."""

    result: str
    message: str = ""
    report: CheckReport | None = None
    status: dict[str, Any] = field(default_factory=dict)


class CheckRunner:
    """Runs checks for the scheduler (`runner(run)`); everything it needs is given."""

    def __init__(
        self,
        *,
        configs: Callable[[str], dict[str, Any] | None],
        pods: PodSource,
        metrics: MetricsSource,
        history: HistoryStore,
        events: EventRecorder,
        status: StatusPort,
        executor: Executor,
        store_for: Callable[[Spec], ProfileStore],
        transport_for: Callable[[str], Transport],
        default_transport: str,
        instruments: Instruments,
        is_leader: Callable[[], bool] = lambda: True,
        selector_string: Callable[[Any], str],
        flush: Callable[[ProfileStore], None] | None = None,
        policy: tenancy.Policy | None = None,
    ):
        self._configs = configs
        self._pods = pods
        self._metrics = metrics
        self._history = history
        self._events = events
        self._status = status
        self._executor = executor
        self._store_for = store_for
        self._transport_for = transport_for
        self._default_transport = default_transport
        self._instruments = instruments
        self._is_leader = is_leader
        self._selector_string = selector_string
        self._flush = flush  # e.g. upload what the store's spool holds
        # What configs may reach (namespaces, destinations); the default is the strict one.
        self._policy = policy or tenancy.Policy()
        # The latest status this process wrote per config (uid, status): the base the totals are
        # added to, newer than the watch cache right after a write.
        self._written: dict[str, tuple[str | None, dict[str, Any]]] = {}
        self._written_lock = threading.Lock()
        self._destinations = DestinationChecks()

    def __call__(self, run: Run) -> Outcome:
        if not self._is_leader():
            return Outcome("skipped", "not the leader")
        config = self._configs(run.key)
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
            spec = tenancy.scope(spec, config["metadata"]["namespace"], self._policy)
        except SpecError as error:
            problems += error.errors
        try:
            selector = self._selector(spec)
        except SpecError as error:
            problems += error.errors
        if problems:
            return self._invalid(run, config, SpecError(problems))
        kinds = kinds_for_run(spec, run.kind)

        def gather() -> dict[str, Any]:
            state: dict[str, Any] = {"now": rfc3339(run.now), "pods": self._pods.pods(spec.namespace)}
            if THRESHOLD in kinds and spec.thresholds is not None:
                state["podMetrics"] = self._metrics.pod_metrics(spec.namespace, selector or None)
            state["history"] = self._history.load(run.key)
            return state

        try:
            store = self._store_for(spec)
            unusable = self._destinations.problem(store)
            if unusable is not None:
                raise DestinationUnusable(unusable)
            transport = self._transport_for(spec.transport or self._default_transport)
            report = run_check(
                config_name=run.key,
                spec=spec,
                gather=gather,
                executor=self._executor,
                store=store,
                transport=transport,
                kinds=kinds,
                save_history=lambda updates: self._history.merge(run.key, updates),
                flush=None if self._flush is None else functools.partial(self._flush, store),
                cancelled=run.cancelled,
            )
        except Exception as error:
            if isinstance(error, SpecError):  # the spec passed validation; a selector or state may not
                return self._invalid(run, config, error)
            return self._failed(run, config, error)

        if report.discarded:
            log.info(
                "%s was deleted during its %s; nothing recorded",
                run.key,
                run.kind,
                extra={"config": run.key, "action": "discard", "reason": "deleted"},
            )
            return Outcome("skipped", "deleted during the run", report)
        self._record_events(run, report)
        self._count(run, report)
        outcome = statuses.Checked(
            kind=run.kind,
            active_pods=report.plan.active_pods,
            captured=report.execution.count(results.CAPTURED),
            failed=report.execution.count(results.FAILED),
            profiles_kept=report.execution.profiles_kept,
            profiles_stored=report.execution.profiles_stored,
            history_error=report.history_error,
        )
        status = self._write_status(run, config, outcome)
        self._instruments.checks.labels(run.key, "ok").inc()
        log.info(
            "%s %s: %s",
            run.kind,
            run.key,
            report.recap(),
            extra={
                "config": run.key,
                "action": run.kind,
                "reason": "done",
                "activePods": report.plan.active_pods,
                "captured": outcome.captured,
                "failed": outcome.failed,
            },
        )
        return Outcome("ok", report.recap(), report, status)

    # Parts of a run ----------------------------------------------------------------------------

    def _selector(self, spec: Spec) -> str:
        try:
            return self._selector_string(spec.label_selector)
        except ValueError as error:
            # The schema lets through keys and values the API's selector syntax cannot carry.
            raise SpecError([{"path": "spec.selector.labelSelector", "message": str(error)}]) from None

    def _record_events(self, run: Run, report: CheckReport) -> None:
        for result in report.execution.results:
            if result.status not in (results.CAPTURED, results.FAILED):
                continue
            involved = {"apiVersion": "v1", "kind": "Pod", "namespace": result.namespace, "name": result.pod}
            if result.uid:
                involved["uid"] = result.uid
            stored = [p for p in result.profiles if p.status == results.STORED]
            spooled = [p for p in result.profiles if p.status == results.SPOOLED]
            failed = [p for p in result.profiles if p.status == results.FAILED]
            why = f"{', '.join(result.reasons) or result.reason}, config {run.key}"
            if stored:
                places = ", ".join(f"{p.type} → {p.uri}" for p in stored)
                self._events.record(involved, NORMAL, PROFILE_CAPTURED, f"Captured ({why}): {places}")
            if spooled:
                places = ", ".join(f"{p.type} → {p.uri}" for p in spooled)
                self._events.record(
                    involved,
                    WARNING,
                    PROFILE_SPOOLED,
                    f"Captured ({why}) but the store is unreachable; kept in the local spool for {places}",
                )
            if failed:
                reasons = "; ".join(f"{p.type}: {p.error}" for p in failed)
                self._events.record(involved, WARNING, PROFILE_CAPTURE_FAILED, f"Capture failed ({why}): {reasons}")

    def _count(self, run: Run, report: CheckReport) -> None:
        instruments = self._instruments
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
        base = self._base_status(run.key, config)
        status = statuses.build(base, outcome, generation=config["metadata"].get("generation"), now=rfc3339(run.now))
        self._patch(run.key, config, status)
        return status

    def _invalid(self, run: Run, config: dict[str, Any], error: SpecError) -> Outcome:
        self._instruments.checks.labels(run.key, "invalid").inc()
        self._instruments.active_pods.labels(run.key).set(0)
        outcome = statuses.Invalid(str(error))
        generation = config["metadata"].get("generation")
        if statuses.already_reported(self._base_status(run.key, config), outcome, generation):
            return Outcome("invalid", outcome.message)  # already reported for this generation
        log.warning(
            "%s: %s",
            run.key,
            outcome.message.replace("\n  ", "; "),
            extra={"config": run.key, "action": "reject", "reason": "invalid-spec"},
        )
        status = self._write_status(run, config, outcome)
        involved = {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "namespace": config["metadata"]["namespace"],
            "name": config["metadata"]["name"],
            "uid": config["metadata"].get("uid", ""),
        }
        self._events.record(involved, WARNING, INVALID_CONFIG, outcome.message)
        return Outcome("invalid", outcome.message, status=status)

    def _failed(self, run: Run, config: dict[str, Any], error: Exception) -> Outcome:
        self._instruments.checks.labels(run.key, "error").inc()
        log.warning(
            "%s of %s failed: %s",
            run.kind,
            run.key,
            error,
            extra={"config": run.key, "action": run.kind, "reason": "check-failed"},
        )
        if run.cancelled():
            return Outcome("error", str(error))
        status = self._write_status(run, config, statuses.Failed(str(error)))
        return Outcome("error", str(error), status=status)

    # Status bookkeeping ------------------------------------------------------------------------

    def _base_status(self, key: str, config: dict[str, Any]) -> dict[str, Any]:
        """The status to build on: what this process last wrote for this object, else what the
        watch cache has (written by a previous leader, or before a restart)."""
        uid = config["metadata"].get("uid")
        with self._written_lock:
            written = self._written.get(key)
        if written is not None and written[0] == uid:
            return written[1]
        return dict(config.get("status") or {})

    def _patch(self, key: str, config: dict[str, Any], status: dict[str, Any]) -> None:
        metadata = config["metadata"]
        try:
            updated = self._status.patch_status(metadata["namespace"], metadata["name"], status)
        except Exception as error:
            log.error(
                "%s: status not written: %s",
                key,
                error,
                extra={"config": key, "action": "write-status", "reason": "status-error"},
            )
            return
        if updated is None:
            return  # deleted meanwhile
        with self._written_lock:
            self._written[key] = (updated["metadata"].get("uid"), dict(updated.get("status") or {}))

    def forget(self, key: str) -> None:
        """Drop what is remembered of a deleted config."""
        with self._written_lock:
            self._written.pop(key, None)
        self._instruments.forget_config(key)

    def leadership_changed(self) -> None:
        """What this process wrote may be stale once another leader has written: read afresh."""
        with self._written_lock:
            self._written.clear()

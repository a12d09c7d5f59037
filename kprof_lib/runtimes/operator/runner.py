"""One check of one ProfilingConfig, as the operator runs it on a scheduler thread: validate the
spec, gather the cluster state (pods from the watch cache, PodMetrics with ONE list per selected
namespace or one cluster-wide with the label selector pushed to the server, history from its
ConfigMap), `run_check`, persist the history updates, record Events, count, and patch the status.

Only the leader checks. An invalid spec is reported (condition Valid=False with the SpecError's
text, Ready=False, an InvalidConfig Event on the ProfilingConfig) and never stops other configs.
A check that cannot gather (metrics-server down, history unreadable) captures nothing, sets
Ready=False with the reason and is tried again at the next interval.

The two kinds of run split the spec: a "check" run decides threshold captures (the spec without
onDemand), an "on-demand" run decides scheduled captures (the spec without thresholds, so it reads
no metrics). Both keep activePods, the totals and the conditions current.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

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
from kprof_lib.execution.ports import EventRecorder, HistoryStore, MetricsSource, PodSource, ProfileStore, Transport
from kprof_lib.planning import conditions
from kprof_lib.runtimes.operator.monitoring import Instruments
from kprof_lib.runtimes.operator.scheduling import ON_DEMAND, Run
from kprof_lib.spec import validation
from kprof_lib.spec.errors import SpecError
from kprof_lib.spec.schemas import API_VERSION, KIND

log = logging.getLogger("kprof.operator.checks")

READY = "Ready"
VALID = "Valid"


class StatusPort(Protocol):
    """Writes a ProfilingConfig's status (merge patch on the status subresource); returns the
    updated object, or None when the config no longer exists."""

    def patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> dict[str, Any] | None: ...


def rfc3339(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def spec_for_run(spec: dict[str, Any], kind: str) -> dict[str, Any]:
    """The part of a (validated) spec one kind of run decides on: thresholds for a check, the
    on-demand schedule for an on-demand run (see the module's docstring)."""
    if kind == ON_DEMAND:
        return {key: value for key, value in spec.items() if key != "thresholds"}
    if spec.get("thresholds") is not None:
        return {key: value for key, value in spec.items() if key != "onDemand"}
    return spec


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
        store_for: Callable[[dict[str, Any]], ProfileStore],
        transport_for: Callable[[str], Transport],
        default_transport: str,
        instruments: Instruments,
        is_leader: Callable[[], bool] = lambda: True,
        selector_string: Callable[[Any], str],
        after_run: Callable[[ProfileStore], None] | None = None,
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
        self._after_run = after_run  # e.g. upload what the store's spool holds
        # The latest status this process wrote per config (uid, status): the base the totals are
        # added to, newer than the watch cache right after a write.
        self._written: dict[str, tuple[str | None, dict[str, Any]]] = {}
        self._written_lock = threading.Lock()

    def __call__(self, run: Run) -> Outcome:
        if not self._is_leader():
            return Outcome("skipped", "not the leader")
        config = self._configs(run.key)
        if config is None or (run.uid and config["metadata"].get("uid") != run.uid):
            return Outcome("skipped", "the config is gone")
        try:
            spec = validation.validate_spec(config.get("spec"))
            selector = self._selector(spec)
        except SpecError as error:
            return self._invalid(run, config, error)

        job_spec = spec_for_run(spec, run.kind)
        gathered: dict[str, Any] = {}

        def gather() -> dict[str, Any]:
            selected_namespace = (spec.get("selector") or {}).get("namespace")
            pods = self._pods.pods(selected_namespace)
            state: dict[str, Any] = {"now": rfc3339(run.now), "pods": pods}
            if job_spec.get("thresholds") is not None:
                state["podMetrics"] = self._metrics.pod_metrics(selected_namespace, selector or None)
            state["history"] = self._history.load(run.key)
            gathered["pods"] = pods
            return state

        try:
            store = self._store_for(spec)
            transport = self._transport_for(spec.get("transport") or self._default_transport)
            report = run_check(
                config_name=run.key,
                spec=job_spec,
                gather=gather,
                executor=self._executor,
                store=store,
                transport=transport,
            )
        except Exception as error:
            return self._failed(run, config, error)

        if run.cancelled():
            log.info(
                "%s was deleted during its %s; nothing recorded",
                run.key,
                run.kind,
                extra={"config": run.key, "action": "discard", "reason": "deleted"},
            )
            return Outcome("skipped", "deleted during the run", report)
        history_error = self._save_history(run, report)
        if self._after_run is not None:
            try:
                self._after_run(store)
            except Exception as error:
                log.warning("%s: after the check: %s", run.key, error, extra={"config": run.key, "action": "flush"})
        self._record_events(run, report, gathered.get("pods") or [])
        self._count(run, job_spec, report)
        status = self._write_status(run, config, report, history_error)
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
                "activePods": report.plan.summary["activePods"],
                "captured": report.execution.count(results.CAPTURED),
                "failed": report.execution.count(results.FAILED),
            },
        )
        return Outcome("ok", report.recap(), report, status)

    # Parts of a run ----------------------------------------------------------------------------

    def _selector(self, spec: dict[str, Any]) -> str:
        label_selector = (spec.get("selector") or {}).get("labelSelector")
        try:
            return self._selector_string(label_selector)
        except ValueError as error:
            # The schema lets through keys and values the API's selector syntax cannot carry.
            raise SpecError([{"path": "spec.selector.labelSelector", "message": str(error)}]) from None

    def _save_history(self, run: Run, report: CheckReport) -> str | None:
        updates = report.execution.history_updates
        if not updates:
            return None
        try:
            self._history.merge(run.key, updates)
        except Exception as error:
            # The profiles are stored; without the history the next check may capture again.
            log.error(
                "%s: capture history not saved: %s",
                run.key,
                error,
                extra={"config": run.key, "action": "save-history", "reason": "history-error"},
            )
            return str(error)
        return None

    def _record_events(self, run: Run, report: CheckReport, pods: list[dict[str, Any]]) -> None:
        uids = {
            (pod["metadata"].get("namespace"), pod["metadata"].get("name")): pod["metadata"].get("uid") for pod in pods
        }
        for result in report.execution.results:
            if result.status not in (results.CAPTURED, results.FAILED):
                continue
            involved = {"apiVersion": "v1", "kind": "Pod", "namespace": result.namespace, "name": result.pod}
            uid = uids.get((result.namespace, result.pod))
            if uid:
                involved["uid"] = uid
            stored = [p for p in result.profiles if p.status == results.STORED]
            spooled = [p for p in result.profiles if p.status == results.SPOOLED]
            failed = [p for p in result.profiles if p.status == "failed"]
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

    def _count(self, run: Run, job_spec: dict[str, Any], report: CheckReport) -> None:
        instruments = self._instruments
        instruments.active_pods.labels(run.key).set(report.plan.summary["activePods"])
        for result in report.execution.results:
            for profile in result.profiles:
                instruments.captures.labels(profile.type, result.reason, profile.status).inc()
                instruments.capture_duration.labels(profile.type).observe(profile.seconds)
                if profile.status in (results.STORED, results.SPOOLED):
                    instruments.uploads.labels(profile.status).inc()
                elif profile.key:  # captured, then refused by the store
                    instruments.uploads.labels("failed").inc()
        thresholds = job_spec.get("thresholds")
        if thresholds is None:
            return
        for entry in report.plan.results:
            observed = entry.get("observed") or {}
            cpu, memory = observed.get("cpuPercent"), observed.get("memoryPercent")
            if cpu is not None and cpu >= thresholds["cpuThresholdPercent"]:
                instruments.threshold_violations.labels(run.key, "cpu").inc()
            if memory is not None and memory >= thresholds["memoryThresholdPercent"]:
                instruments.threshold_violations.labels(run.key, "memory").inc()

    def _write_status(
        self, run: Run, config: dict[str, Any], report: CheckReport, history_error: str | None
    ) -> dict[str, Any]:
        base = self._base_status(run.key, config)
        generation = config["metadata"].get("generation")
        now = rfc3339(run.now)
        captured = report.execution.count(results.CAPTURED)
        failed = report.execution.count(results.FAILED)
        message = f"{report.plan.summary['activePods']} active pod(s); last {run.kind}: {captured} captured"
        message += f", {failed} failed" if failed else ""
        if history_error:
            ready = (False, "HistoryNotSaved", f"profiles stored but the capture history was not: {history_error}")
        else:
            ready = (True, "Checked", message)
        conds = conditions.set_condition(
            base.get("conditions"), VALID, True, "SpecValid", "the spec is valid", generation, now
        )
        conds = conditions.set_condition(conds, READY, ready[0], ready[1], ready[2], generation, now)
        status = {
            "activePods": report.plan.summary["activePods"],
            "totalProfiles": int(base.get("totalProfiles") or 0) + report.execution.profiles_kept,
            "totalUploads": int(base.get("totalUploads") or 0) + report.execution.profiles_stored,
            "lastCheckTime": now,
            "observedGeneration": generation,
            "conditions": conds,
        }
        self._patch(run.key, config, status)
        return status

    def _invalid(self, run: Run, config: dict[str, Any], error: SpecError) -> Outcome:
        self._instruments.checks.labels(run.key, "invalid").inc()
        self._instruments.active_pods.labels(run.key).set(0)
        base = self._base_status(run.key, config)
        generation = config["metadata"].get("generation")
        message = str(error)
        previous = conditions.find_condition(base.get("conditions"), VALID)
        if (
            previous is not None
            and previous.get("status") == conditions.FALSE
            and previous.get("message") == message
            and base.get("observedGeneration") == generation
        ):
            return Outcome("invalid", message)  # already reported for this generation
        log.warning(
            "%s: %s",
            run.key,
            message.replace("\n  ", "; "),
            extra={"config": run.key, "action": "reject", "reason": "invalid-spec"},
        )
        now = rfc3339(run.now)
        conds = conditions.set_condition(base.get("conditions"), VALID, False, "InvalidSpec", message, generation, now)
        conds = conditions.set_condition(
            conds,
            READY,
            False,
            "InvalidSpec",
            "not checking: the spec is invalid (see the Valid condition)",
            generation,
            now,
        )
        status = {"activePods": 0, "observedGeneration": generation, "lastCheckTime": now, "conditions": conds}
        self._patch(run.key, config, status)
        involved = {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "namespace": config["metadata"]["namespace"],
            "name": config["metadata"]["name"],
            "uid": config["metadata"].get("uid", ""),
        }
        self._events.record(involved, WARNING, INVALID_CONFIG, message)
        return Outcome("invalid", message, status=status)

    def _failed(self, run: Run, config: dict[str, Any], error: Exception) -> Outcome:
        self._instruments.checks.labels(run.key, "error").inc()
        reason = "SpecInvalid" if isinstance(error, SpecError) else "CheckFailed"
        log.warning(
            "%s of %s failed: %s",
            run.kind,
            run.key,
            error,
            extra={"config": run.key, "action": run.kind, "reason": "check-failed"},
        )
        if run.cancelled():
            return Outcome("error", str(error))
        base = self._base_status(run.key, config)
        generation = config["metadata"].get("generation")
        now = rfc3339(run.now)
        conds = conditions.set_condition(
            base.get("conditions"), VALID, True, "SpecValid", "the spec is valid", generation, now
        )
        conds = conditions.set_condition(conds, READY, False, reason, str(error), generation, now)
        status = {"lastCheckTime": now, "observedGeneration": generation, "conditions": conds}
        self._patch(run.key, config, status)
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

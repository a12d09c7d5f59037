"""One check cycle, the same in the operator, the sidecar and local mode, from the cluster state to
the report: gather (the metrics check), reconcile, carry out the plan, write each capture's
summary.json and index.html beside its profiles (`execution.summaries`), persist the history
updates, flush what waits in a spool, report. Traced as a `kprof.check` span with a
`kprof.metrics` child around the gathering, the executor's capture and upload spans, and a
`kprof.summary` per captured pod.

What differs between runtimes is given: how to gather, where history goes (`save_history`), where
each pod's sample goes for the triggers' usage windows (`save_samples`), what to flush, and the
reporter (status and Events, log lines, the terminal). `kinds` says which kinds of
capture the check decides (see `planning.reconcile`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import trace

from kprof_lib.execution import redact, results, summaries, telemetry
from kprof_lib.execution.executor import Executor, record_error
from kprof_lib.execution.ports import ProfileStore, Transport
from kprof_lib.execution.summaries import CaptureSummary
from kprof_lib.planning.plan import CAPTURE, KINDS, Plan
from kprof_lib.planning.reconcile import reconcile

log = logging.getLogger("kprof.check")

History = Mapping[str, Mapping[str, Any]]
Samples = Mapping[str, Mapping[str, Any]]  # "namespace/pod" -> this check's sample (plan.PodDecision.sample)


@dataclass
class CheckReport:
    """What one check decided and did. `history_error` says why the history updates could not be
    saved (the profiles are stored; the next check may capture again); `discarded` that the check
    was cancelled after it executed, so nothing was saved or reported."""

    plan: Plan
    execution: results.ExecutionReport
    history_error: str | None = None
    discarded: bool = False
    # Per captured pod ("ns/pod"): its summary.json and index.html, the top functions.
    summaries: dict[str, CaptureSummary] = field(default_factory=dict)

    def recap(self) -> str:
        return f"{self.plan.recap()}  |  {self.execution.recap()}"


def run_check(
    *,
    config_name: str,
    spec: Any,
    gather: Callable[[], dict[str, Any]],
    executor: Executor,
    store: ProfileStore,
    transport: Transport,
    kinds: Collection[str] = KINDS,
    save_history: Callable[[History], None] | None = None,
    save_samples: Callable[[Samples], None] | None = None,
    flush: Callable[[], None] | None = None,
    report: Callable[[CheckReport], None] | None = None,
    cancelled: Callable[[], bool] = lambda: False,
    check_mode: bool = False,
    jaeger_url: str | None = None,
) -> CheckReport:
    """Runs one check. `gather()` returns the cluster state (now, pods, podMetrics, history); it
    may raise, and so may reconcile (`SpecError`, `StateError`): the error is recorded on the span
    and raised to the caller, which reports it. Capture and store failures are in the report.

    Right after reconcile, this check's samples of the pods it measured go to `save_samples`
    (also when nothing is captured, never in check mode; an exception there is logged, and the
    check goes on: a window one sample short only delays a trend).

    After executing: unless `cancelled()` (the report is then marked `discarded`, and nothing is
    saved, flushed or reported), the history updates go to `save_history` (an exception there
    becomes `history_error`). Then each capture's summary and page are written (discarded or not:
    they belong with the stored profiles; with `jaeger_url` each page links its trace), a healthy
    capture's reference goes to `save_history`
    too, `flush()` runs (its exceptions are logged), and `report(check_report)`."""
    tracer = executor.tracer
    with tracer.start_as_current_span(telemetry.SPAN_CHECK) as span:
        span.set_attribute(telemetry.ATTR_CONFIG, config_name)
        try:
            with tracer.start_as_current_span(telemetry.SPAN_METRICS) as metrics_span:
                state = gather()
                metrics = state.get("podMetrics")
                count = len(metrics.get("items", []) if isinstance(metrics, dict) else metrics or [])
                metrics_span.set_attribute(telemetry.ATTR_METRICS_PODS, count)
            plan = reconcile(spec, state, kinds=kinds)
        except Exception as error:
            record_error(span, error, redact.text(str(error)))
            raise
        if save_samples is not None and not check_mode:
            _save_samples(save_samples, plan, config_name)
        span.set_attributes(
            {
                telemetry.ATTR_PODS_SEEN: len(plan.results),
                telemetry.ATTR_PODS_ACTIVE: plan.active_pods,
                telemetry.ATTR_CAPTURES_PLANNED: len(plan.captures),
            }
        )
        for decision in plan.results:
            log.log(
                logging.INFO if decision.action == CAPTURE else logging.DEBUG,
                "%s: %s (%s)",
                decision.key,
                decision.action,
                decision.reason,
                extra={
                    "config": config_name,
                    "pod": decision.key,
                    "action": decision.action,
                    "reason": decision.reason,
                },
            )
        # The store remembers what it took, so the summaries are made from the profiles' own
        # bytes once every capture of the check is over (nothing is downloaded again).
        keeping = summaries.Keeping(store)
        try:
            execution = executor.execute(
                plan, store=keeping, transport=transport, check_mode=check_mode, config_name=config_name
            )
            failed = execution.count(results.FAILED)
            span.set_attribute(telemetry.ATTR_CAPTURES_FAILED, failed)
            if failed:
                span.set_status(trace.Status(trace.StatusCode.ERROR, f"{failed} pod(s) could not be captured"))
            done = CheckReport(plan, execution)
            done.discarded = cancelled()
            # The history first: cooldowns must hold even if the process dies while summarising.
            if not done.discarded:
                _save(save_history, execution.history_updates, config_name, done)
            if not check_mode:
                done.summaries = summaries.write(
                    plan,
                    execution,
                    keeping,
                    tracer=tracer,
                    config_name=config_name,
                    history=state.get("history"),
                    jaeger_url=jaeger_url,
                )
        finally:
            keeping.release()
    if done.discarded:
        return done
    # A healthy capture's summary makes it its workload's reference (a second, small history write).
    references = {k: made.history_fields for k, made in done.summaries.items() if made.history_fields}
    if references:
        _save(save_history, references, config_name, done)
        for pod_key, fields in references.items():
            execution.history_updates.setdefault(pod_key, {}).update(fields)
    if flush is not None:
        try:
            flush()
        except Exception as error:
            log.warning("%s: after the check: %s", config_name, error, extra={"config": config_name, "action": "flush"})
    if report is not None:
        report(done)
    return done


def _save_samples(save_samples: Callable[[Samples], None], plan: Plan, config_name: str) -> None:
    samples = {decision.key: decision.sample for decision in plan.results if decision.sample is not None}
    if samples:
        _saved(save_samples, samples, config_name, "usage samples", "save-samples", logging.WARNING)


def _save(
    save_history: Callable[[History], None] | None, updates: History, config_name: str, done: CheckReport
) -> None:
    if save_history is None or not updates:
        return
    error = _saved(save_history, updates, config_name, "capture history", "save-history", logging.ERROR)
    if error is not None:
        done.history_error = error


def _saved(save: Callable[[Any], None], what: Any, config_name: str, name: str, action: str, level: int) -> str | None:
    """`save(what)`; what it raised, logged at `level` as `action` (reason "<what>-error"), and as
    text (None: saved)."""
    try:
        save(what)
    except Exception as error:
        extra = {"config": config_name, "action": action, "reason": f"{action.removeprefix('save-')}-error"}
        log.log(level, "%s: %s not saved: %s", config_name, name, error, extra=extra)
        return str(error)
    return None

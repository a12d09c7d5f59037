"""One check cycle, the same in the operator, the sidecar and local mode: gather the cluster state
(the metrics check), reconcile, carry out the plan. Traced as a `kprof.check` span with a
`kprof.metrics` child around the gathering, and the executor's capture and upload spans below it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace

from kprof_lib.execution import results, telemetry
from kprof_lib.execution.executor import Executor
from kprof_lib.execution.ports import ProfileStore, Transport
from kprof_lib.planning.reconcile import Plan, reconcile

log = logging.getLogger("kprof.check")


@dataclass
class CheckReport:
    plan: Plan
    execution: results.ExecutionReport

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
    check_mode: bool = False,
) -> CheckReport:
    """Runs one check. `gather()` returns the cluster state (now, pods, podMetrics, history); it
    may raise, and so may reconcile (`SpecError`, `StateError`): the error is recorded on the span
    and raised to the caller, which reports it. Capture and store failures are in the report."""
    tracer = executor.tracer
    with tracer.start_as_current_span(telemetry.SPAN_CHECK) as span:
        span.set_attribute(telemetry.ATTR_CONFIG, config_name)
        try:
            with tracer.start_as_current_span(telemetry.SPAN_METRICS) as metrics_span:
                state = gather()
                metrics = state.get("podMetrics")
                count = len(metrics.get("items", []) if isinstance(metrics, dict) else metrics or [])
                metrics_span.set_attribute(telemetry.ATTR_METRICS_PODS, count)
            plan = reconcile(spec, state)
        except Exception as error:
            span.record_exception(error)
            span.set_status(trace.Status(trace.StatusCode.ERROR, str(error)))
            raise
        span.set_attributes(
            {
                telemetry.ATTR_PODS_SEEN: len(plan.results),
                telemetry.ATTR_PODS_ACTIVE: plan.summary["activePods"],
                telemetry.ATTR_CAPTURES_PLANNED: plan.summary["byAction"].get("capture", 0),
            }
        )
        for entry in plan.results:
            level = logging.INFO if entry["action"] == "capture" else logging.DEBUG
            log.log(
                level,
                "%s/%s: %s (%s)",
                entry["namespace"],
                entry["pod"],
                entry["action"],
                entry["reason"],
                extra={
                    "config": config_name,
                    "pod": f"{entry['namespace']}/{entry['pod']}",
                    "action": entry["action"],
                    "reason": entry["reason"],
                },
            )
        execution = executor.execute(
            plan, store=store, transport=transport, check_mode=check_mode, config_name=config_name
        )
        failed = execution.count(results.FAILED)
        span.set_attribute(telemetry.ATTR_CAPTURES_FAILED, failed)
        if failed:
            span.set_status(trace.Status(trace.StatusCode.ERROR, f"{failed} pod(s) could not be captured"))
        return CheckReport(plan, execution)

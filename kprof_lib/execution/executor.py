"""Carries out a plan: captures each due pod's profiles through a transport, stores them, and reports.

Captures across pods run concurrently. Two limits hold across every execute() of one executor
(the operator runs all its checks through one): at most `concurrency` byte-bound profiles (heap,
goroutine, ...: what they cost is bytes streamed and stored) and at most `cpu_concurrency` CPU
profiles (what they cost is mostly waiting out their seconds while the target samples itself) are
fetched at once, so CPU captures do not queue for slots they barely use; the bytes of both kinds
count against the one in-flight byte budget. One pod's profiles are taken one after the other,
and at most one capture per pod runs at a time (pass the same `PodLocks` to every executor that
may reach the same pods): a second capture of a pod (another config's, on the same
schedule) waits for the first to end, then runs. A failed capture is reported and the run goes on.
When Go's CPU profiler is held by another profiler, that capture is retried at the end of the pod's
turn with backoff. Every capture and upload is an OpenTelemetry span under the caller's current span.

Stopping: `drain()` (a first Ctrl-C, SIGTERM) starts no new profile, in this execute() or any
later one, and lets those in flight end; `abort()` (a second Ctrl-C, the grace period over) also
cuts those in flight through their transports' `abort()`, at once, and stores nothing more. A
profile not started or cut is reported `cancelled`, never `failed`; `in_flight()` says what a
drain is waiting for and how long it may take at most.

Check mode (`check_mode=True`) touches nothing: it reports what would be captured and where.
The report carries the history updates the caller must persist (the plan's `now` for each
family of reasons of a capture that produced at least one profile, with a baseline capture's
workload and the alert fingerprints served; a requested capture's annotation value, captured or
failed; for a pod whose capture failed, when it failed and when its run of failures began), so
cooldowns, on-demand intervals, baselines, one capture per capture-now value and per alert, and
retry backoff hold. Objects stored for an alert or a capture-now request name it in their metadata.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import itertools
import logging
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace

from kprof_lib.execution import budget, capture, keys, redact, results, telemetry
from kprof_lib.execution.capture import DEFAULT_CPU_CONCURRENCY, DEFAULT_MAX_BYTES
from kprof_lib.execution.clock import SystemClock
from kprof_lib.execution.ports import (
    PPROF_CONTENT_TYPE,
    CaptureError,
    Clock,
    ProfileRequest,
    ProfileStore,
    StoreError,
    TargetBusy,
    Transport,
)
from kprof_lib.planning.plan import ALERT, BASELINE, FAMILY_KEYS, REQUESTED, Plan, PodDecision
from kprof_lib.spec.model import KeyLayout
from kprof_lib.state import cluster

log = logging.getLogger("kprof.executor")

# How long a capture waits for another capture of the same pod (another config's, say) to end.
# That one ends by its own deadlines; waiting, rather than skipping, is what keeps two configs on
# the same schedule from starving the second one forever.
POD_WAIT_SECONDS = 600.0
STOP_POLL_SECONDS = 0.1
MILLISECOND = dt.timedelta(milliseconds=1)


@dataclass(frozen=True)
class BusyRetry:
    """Backoff for a CPU capture refused because another profiler holds Go's CPU profiler."""

    attempts: int = 4  # retries after the first refusal
    first_delay: float = 2.0
    factor: float = 2.0
    max_delay: float = 30.0

    def delays(self) -> Iterator[float]:
        delay = self.first_delay
        for _ in range(self.attempts):
            yield min(delay, self.max_delay)
            delay *= self.factor


class PodLocks:
    """Which pods are being captured right now, shared by every executor that may reach them."""

    def __init__(self) -> None:
        self._busy: set[str] = set()
        self._freed = threading.Condition()
        self._started: dict[str, dt.datetime] = {}

    def start_time(self, key: str, now: dt.datetime) -> dt.datetime:
        """`now`, or a millisecond after the previous capture of the pod began if that is later:
        keys carry the time in milliseconds, and two captures of one pod never share a key."""
        with self._freed:
            previous = self._started.get(key)
            if previous is not None and now <= previous + MILLISECOND:
                now = previous + MILLISECOND
            self._started[key] = now
            return now

    @contextmanager
    def hold(self, key: str, wait: float = 0.0, stopping: Callable[[], bool] = lambda: False) -> Iterator[bool]:
        """Yields True when the pod is held (it was free, or became free within `wait` seconds),
        False when another capture kept it the whole time or `stopping()` became true."""
        deadline = time.monotonic() + wait
        with self._freed:
            while key in self._busy and not stopping():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                # In slices, so a stop is seen within a moment without anyone notifying.
                self._freed.wait(min(remaining, STOP_POLL_SECONDS))
            taken = key in self._busy
            if not taken:
                self._busy.add(key)
        try:
            yield not taken
        finally:
            if not taken:
                with self._freed:
                    self._busy.discard(key)
                    self._freed.notify_all()


@dataclass(frozen=True)
class InFlight:
    """A profile being fetched: of which pod, which type, how long until its deadline, and for a
    CPU profile how long until the target is due to answer (its seconds are up)."""

    pod: str
    profile_type: str
    seconds_left: float
    expected_left: float | None = None


class Executor:
    def __init__(
        self,
        *,
        concurrency: int = 8,
        cpu_concurrency: int = DEFAULT_CPU_CONCURRENCY,
        max_bytes: int = DEFAULT_MAX_BYTES,
        base_timeout: float = 30.0,
        cpu_margin: float = 15.0,
        busy_retry: BusyRetry | None = None,
        clock: Clock | None = None,
        pod_locks: PodLocks | None = None,
        tracer: trace.Tracer | None = None,
        byte_budget: budget.ByteBudget | None = None,
        pod_wait: float = POD_WAIT_SECONDS,
    ):
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, not {concurrency}")
        if cpu_concurrency < 1:
            raise ValueError(f"cpu_concurrency must be at least 1, not {cpu_concurrency}")
        # Bytes of profiles held at once, from the first byte until stored, across every execute()
        # (the operator runs several checks at once through one executor). Default: exactly room
        # for `concurrency` profiles at the cap.
        self.byte_budget = byte_budget or budget.ByteBudget(concurrency * max_bytes)
        problem = budget.fits(concurrency, max_bytes, self.byte_budget.limit)
        if problem:
            raise ValueError(problem)
        self.concurrency = concurrency
        self.cpu_concurrency = cpu_concurrency
        self._slots = {
            True: threading.BoundedSemaphore(cpu_concurrency),
            False: threading.BoundedSemaphore(concurrency),
        }
        self.max_bytes = max_bytes
        self.base_timeout = base_timeout
        self.cpu_margin = cpu_margin
        self.busy_retry = busy_retry or BusyRetry()
        self.clock = clock or SystemClock()
        self.pod_locks = pod_locks or PodLocks()
        self.pod_wait = pod_wait
        # The global tracer is a no-op until a runtime installs an SDK; tests pass a private one.
        self.tracer = tracer or trace.get_tracer(telemetry.TRACER_NAME)
        self._draining = threading.Event()
        self._aborted = threading.Event()
        # Re-entrant: drain() and abort() run in signal handlers, on the thread that may hold it.
        self._lock = threading.RLock()
        self._in_flight: dict[int, tuple[str, str, float, float | None]] = {}
        self._ids = itertools.count()
        self._transports: list[Transport] = []

    # Stopping ----------------------------------------------------------------------------------

    def drain(self) -> None:
        """Start no new profile from now on; those in flight go on. Safe from a signal handler."""
        self._draining.set()

    def abort(self) -> None:
        """`drain()`, and cut every profile in flight now (the transports' `abort()`); nothing
        more is stored. Safe from a signal handler."""
        self._draining.set()
        self._aborted.set()
        with self._lock:
            transports = list(self._transports)
        for transport in transports:
            transport.abort()

    @property
    def draining(self) -> bool:
        return self._draining.is_set()

    @property
    def aborted(self) -> bool:
        return self._aborted.is_set()

    def in_flight(self) -> list[InFlight]:
        """The profiles being fetched now, the one with the most time left first."""
        now = time.monotonic()
        with self._lock:
            entries = list(self._in_flight.values())
        found = [
            InFlight(pod, kind, max(0.0, deadline - now), None if due is None else max(0.0, due - now))
            for pod, kind, deadline, due in entries
        ]
        return sorted(found, key=lambda entry: -entry.seconds_left)

    def execute(
        self,
        plan: Plan,
        *,
        store: ProfileStore,
        transport: Transport,
        check_mode: bool = False,
        config_name: str | None = None,
    ) -> results.ExecutionReport:
        """Carries out `plan`'s captures and returns a result for every pod of the plan."""
        layout = plan.key_layout
        parent = otel_context.get_current()
        due = plan.captures
        # By the decision's identity: most pods of a big plan capture nothing, and their results
        # are made without building a key for each.
        outcomes: dict[int, results.PodResult] = {}
        with self._lock:
            if transport not in self._transports:
                self._transports.append(transport)

        def run(decision: PodDecision) -> results.PodResult:
            token = otel_context.attach(parent)
            job = _PodJob(decision, layout, store, transport, config_name, self.clock.now())
            try:
                return self._plan_pod(job) if check_mode else self._capture_pod(job)
            except Exception as error:
                # One pod's unexpected error is that pod's result: the others keep theirs, and the
                # caller still gets a report to persist history from.
                log.exception("capture of %s failed unexpectedly", decision.key)
                failed = job.result(results.FAILED)
                failed.message = redact.text(f"internal error: {type(error).__name__}: {error}")
                return failed
            finally:
                otel_context.detach(token)

        if due:
            # Threads enough for both kinds at their limits; the slots (_slot) hold each kind to its own.
            workers = min(self.concurrency + self.cpu_concurrency, len(due))
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kprof-capture") as pool:
                for decision, outcome in zip(due, pool.map(run, due), strict=True):
                    outcomes[id(decision)] = outcome

        report = [
            outcomes.get(id(decision))
            or results.PodResult(
                decision.namespace, decision.pod, results.SKIPPED, decision.reason, message=decision.message
            )
            for decision in plan.results
        ]
        history = {} if check_mode else _history_updates(plan.now, due, report)
        return results.ExecutionReport(plan.now, check_mode, report, history)

    # One pod -----------------------------------------------------------------------------------

    def _plan_pod(self, job: _PodJob) -> results.PodResult:
        pod_result = job.result(results.PLANNED)
        for request in job.requests():
            key = job.key(request)
            pod_result.profiles.append(
                results.ProfileResult(
                    request.profile_type, results.PLANNED, key=key, uri=job.store.uri_for(key), target=request.target
                )
            )
        return pod_result

    def _capture_pod(self, job: _PodJob) -> results.PodResult:
        pod_result = job.result(results.FAILED)
        with self.pod_locks.hold(pod_result.key, self.pod_wait, self._draining.is_set) as free:
            if not free and self.draining:
                pod_result.status = results.CANCELLED
                pod_result.message = "not started: stopping"
                return pod_result
            if not free:
                pod_result.status = results.SKIPPED
                pod_result.message = f"another capture of this pod was still in progress after {self.pod_wait:g} s"
                job.log("skip", pod_result.message)
                return pod_result
            # The capture's time is when it really starts: after a wait, the keys of this capture
            # must not be those of the one it waited for.
            job = dataclasses.replace(job, captured_at=self.pod_locks.start_time(pod_result.key, self.clock.now()))
            busy: list[ProfileRequest] = []
            for request in job.requests():
                if self.draining:
                    pod_result.profiles.append(_cancelled(request, "not started: stopping"))
                    continue
                outcome = self._capture_contained(job, request)
                if outcome is None:
                    busy.append(request)
                else:
                    pod_result.profiles.append(outcome)
            # A CPU profile refused because another profiler holds Go's CPU profiler is retried
            # after the pod's other profiles, with backoff.
            pod_result.profiles.extend(self._retry_busy(job, request) for request in busy)

        kept = [p for p in pod_result.profiles if p.status in (results.STORED, results.SPOOLED)]
        failed = [p for p in pod_result.profiles if p.status == results.FAILED]
        cancelled = any(p.status == results.CANCELLED for p in pod_result.profiles)
        if kept:
            pod_result.status = results.CAPTURED
        else:
            pod_result.status = results.CANCELLED if cancelled and not failed else results.FAILED
        if failed:
            pod_result.message = "; ".join(f"{p.type}: {p.error}" for p in failed)
        return pod_result

    def _capture_contained(self, job: _PodJob, request: ProfileRequest) -> results.ProfileResult | None:
        """Captures and stores one profile; None: the target was busy (retry later). The profile's
        bytes count against the in-flight byte budget until the store has them. An unexpected error
        is this profile's failure: the pod's other profiles, stored already or to come, keep theirs."""
        with self._slot(request) as free:
            if not free:
                return _cancelled(request, "not started: stopping")
            return self._capture_in_slot(job, request)

    @contextmanager
    def _slot(self, request: ProfileRequest) -> Iterator[bool]:
        """Yields True once one of the slots of the request's kind is this capture's (given back
        after), False if a drain began while it waited."""
        slots = self._slots[request.profile_type == "cpu"]
        # In slices, so a drain is seen within a moment without anyone notifying.
        while not slots.acquire(timeout=STOP_POLL_SECONDS):
            if self.draining:
                yield False
                return
        try:
            yield True
        finally:
            slots.release()

    def _capture_in_slot(self, job: _PodJob, request: ProfileRequest) -> results.ProfileResult | None:
        timeout = capture.timeout_for(request, self.base_timeout, self.cpu_margin)
        started = self.clock.monotonic()
        entry = next(self._ids)
        with self._lock:
            begun = time.monotonic()
            due = begun + request.cpu_seconds if request.profile_type == "cpu" else None
            self._in_flight[entry] = (job.decision.key, request.profile_type, begun + timeout, due)
        try:
            with self.byte_budget.holding() as held:
                return self._fetch_and_store(job, request, held, timeout, started)
        except Exception as error:
            message = redact.text(f"internal error: {type(error).__name__}: {error}")
            job.log("capture-failed", message, profile=request.profile_type)
            return results.ProfileResult(request.profile_type, results.FAILED, error=message, target=request.target)
        finally:
            with self._lock:
                self._in_flight.pop(entry, None)

    def _retry_busy(self, job: _PodJob, request: ProfileRequest) -> results.ProfileResult:
        for delay in self.busy_retry.delays():
            if self.draining:
                return _cancelled(request, "not retried: stopping")
            job.log("retry", f"cpu profiler busy, retrying in {delay:g} s", level=logging.INFO)
            self._sleep(delay)
            if self.draining:
                return _cancelled(request, "not retried: stopping")
            outcome = self._capture_contained(job, request)
            if outcome is not None:
                return outcome
        error = f"cpu profiling already in use (gave up after {self.busy_retry.attempts + 1} attempts)"
        job.log("capture-failed", error, profile=request.profile_type)
        return results.ProfileResult(request.profile_type, results.FAILED, error=error, target=request.target)

    def _fetch_and_store(
        self, job: _PodJob, request: ProfileRequest, held: budget.Holding, timeout: float, started: float
    ) -> results.ProfileResult | None:
        if self.aborted:  # abort() came between the check of the loop and here
            return _cancelled(request, "not started: stopping")
        with self.tracer.start_as_current_span(telemetry.SPAN_CAPTURE) as span:
            span.set_attributes(
                {
                    telemetry.ATTR_K8S_NAMESPACE: request.namespace,
                    telemetry.ATTR_K8S_POD: request.pod,
                    telemetry.ATTR_PROFILE_TYPE: request.profile_type,
                    telemetry.ATTR_TRANSPORT: job.transport.name,
                    telemetry.ATTR_CAPTURE_REASON: job.decision.reason,
                    telemetry.ATTR_URL_FULL: redact.text(request.target),
                }
            )
            try:
                data = capture.fetch_profile(
                    job.transport, request, timeout=timeout, max_bytes=self.max_bytes, reserve=held.reserve
                )
            except CaptureError as error:  # TargetBusy among them
                if self.aborted:
                    # Cut by abort(): not the target's fault, and nothing of it is kept.
                    span.set_attribute(telemetry.ATTR_RESULT, results.CANCELLED)
                    span.add_event("cancelled", {"message": "the process was stopping"})
                    job.log("cancelled", "cut: stopping", profile=request.profile_type, level=logging.INFO)
                    return _cancelled(request, "cut: stopping", seconds=self._since(started))
                if isinstance(error, TargetBusy):
                    span.set_attribute(telemetry.ATTR_RESULT, "busy")
                    span.add_event("target busy", {"message": redact.text(str(error))})
                    return None
                message = redact.text(str(error))
                span.set_attribute(telemetry.ATTR_RESULT, results.FAILED)
                record_error(span, error, message)
                job.log("capture-failed", message, profile=request.profile_type)
                return results.ProfileResult(
                    request.profile_type,
                    results.FAILED,
                    error=message,
                    target=request.target,
                    seconds=self._since(started),
                )
            span.set_attribute(telemetry.ATTR_BYTES, len(data))
            span.set_attribute(telemetry.ATTR_RESULT, "captured")
            context = span.get_span_context()
            trace_id = format(context.trace_id, "032x") if context.is_valid else None
        if self.aborted:
            return _cancelled(request, "not stored: stopping", seconds=self._since(started))
        return self._store(job, request, data, self._since(started), trace_id)

    def _store(
        self, job: _PodJob, request: ProfileRequest, data: bytes, seconds: float, trace_id: str | None
    ) -> results.ProfileResult:
        key = job.key(request)
        metadata = keys.object_metadata(
            namespace=request.namespace,
            pod=request.pod,
            service=job.decision.service,
            reason=job.decision.reason,
            profile_type=request.profile_type,
            captured_at=job.captured_at,
            trace_id=trace_id,
            alert=job.decision.alert,
            request_value=job.decision.request_value,
        )
        tags, dropped = keys.object_tags(job.decision.labels)
        if dropped:
            job.log("tag", f"labels not stored as object tags: {'; '.join(dropped)}", level=logging.INFO)
        with self.tracer.start_as_current_span(telemetry.SPAN_UPLOAD) as span:
            span.set_attributes(
                {
                    telemetry.ATTR_STORE: redact.text(job.store.description),
                    telemetry.ATTR_OBJECT_KEY: key,
                    telemetry.ATTR_BYTES: len(data),
                    telemetry.ATTR_K8S_NAMESPACE: request.namespace,
                    telemetry.ATTR_K8S_POD: request.pod,
                    telemetry.ATTR_PROFILE_TYPE: request.profile_type,
                }
            )
            bucket = job.store.bucket
            if bucket:
                span.set_attribute(telemetry.ATTR_BUCKET, bucket)
            # What both outcomes say of the profile.
            outcome = functools.partial(
                results.ProfileResult, request.profile_type, bytes=len(data), seconds=seconds, target=request.target
            )
            try:
                stored = job.store.put(key, data, metadata=metadata, tags=tags, content_type=PPROF_CONTENT_TYPE)
            except StoreError as error:
                message = redact.text(str(error))
                record_error(span, error, message)
                span.set_attribute(telemetry.ATTR_ATTEMPTS, error.attempts)
                job.log("store-failed", message, profile=request.profile_type)
                return outcome(results.FAILED, key=key, error=message, attempts=error.attempts)
            status = results.SPOOLED if stored.spooled else results.STORED
            span.set_attributes(
                {
                    telemetry.ATTR_URL_FULL: redact.text(stored.uri),
                    telemetry.ATTR_ATTEMPTS: stored.attempts,
                    telemetry.ATTR_RESULT: status,
                }
            )
        job.log(status, stored.uri, profile=request.profile_type, bytes=len(data))
        return outcome(status, uri=stored.uri, key=stored.key, attempts=stored.attempts)

    def _sleep(self, seconds: float) -> None:
        # The system clock's sleep would hold a stopping process for up to a whole backoff delay;
        # other clocks (tests') keep their own sleep.
        if isinstance(self.clock, SystemClock):
            self._draining.wait(seconds)
        else:
            self.clock.sleep(seconds)

    def _since(self, started: float) -> float:
        return round(self.clock.monotonic() - started, 3)


@dataclass(frozen=True)
class _PodJob:
    """One pod's capture: its decision, where its profiles go, and when it started (the timestamp
    in every key of the capture, so one capture's profiles sit together)."""

    decision: PodDecision
    layout: KeyLayout
    store: ProfileStore
    transport: Transport
    config_name: str | None
    captured_at: dt.datetime

    def result(self, status: str) -> results.PodResult:
        decision = self.decision
        return results.PodResult(
            decision.namespace,
            decision.pod,
            status,
            decision.reason,
            list(decision.reasons),
            uid=decision.uid,
            alert=decision.alert,
            request_value=decision.request_value,
        )

    def requests(self) -> list[ProfileRequest]:
        decision, endpoint = self.decision, self.decision.endpoint
        assert endpoint is not None and decision.pod_ip is not None  # a capture decision has both
        return [
            ProfileRequest(
                namespace=decision.namespace,
                pod=decision.pod,
                pod_ip=decision.pod_ip,
                scheme=endpoint.scheme,
                port=endpoint.port,
                base_path=endpoint.path,
                profile_type=profile_type,
                cpu_seconds=decision.cpu_profile_seconds,
            )
            for profile_type in decision.profile_types
        ]

    def key(self, request: ProfileRequest) -> str:
        return keys.capture_key(self.layout, self.decision, request.profile_type, self.captured_at)

    def log(self, action: str, detail: str, *, level: int | None = None, **extra: Any) -> None:
        """One structured line per action: config, pod, action, reason, detail."""
        if level is None:
            level = logging.WARNING if action.endswith("failed") else logging.INFO
        pod = self.decision.key
        log.log(
            level,
            "%s %s: %s",
            action,
            pod,
            detail,
            extra={
                "config": self.config_name,
                "pod": pod,
                "action": action,
                "reason": self.decision.reason,
                "detail": detail,
                **extra,
            },
        )


def _cancelled(request: ProfileRequest, why: str, *, seconds: float = 0.0) -> results.ProfileResult:
    return results.ProfileResult(
        request.profile_type, results.CANCELLED, error=why, target=request.target, seconds=seconds
    )


def record_error(span: trace.Span, error: Exception, message: str) -> None:
    """The error on the span, its message and stack trace with credentials in URLs redacted."""
    stacktrace = redact.text("".join(traceback.format_exception(error)))
    span.record_exception(error, attributes={"exception.message": message, "exception.stacktrace": stacktrace})
    span.set_status(trace.Status(trace.StatusCode.ERROR, message))


def _history_updates(now: str, due: list[PodDecision], report: list[results.PodResult]) -> dict[str, dict[str, Any]]:
    """What the history must record of `report`: for a pod that captured, the plan's now for each
    family of its reasons (`plan.FAMILY_KEYS`), a baseline's workload, the alert fingerprints it
    served; for a pod whose capture failed, when (backoff). A requested capture's value is recorded
    when it captured and when it failed: one capture per value, a failure shown in the Event."""
    decisions = {decision.key: decision for decision in due}
    updates: dict[str, dict[str, Any]] = {}
    for result in report:
        if result.status not in (results.FAILED, results.CAPTURED):
            continue  # most of a big plan: nothing was due
        decision = decisions.get(result.key)
        served = {}
        if decision is not None and decision.request_value is not None and REQUESTED in result.reasons:
            served[cluster.CAPTURE_NOW_KEY] = decision.request_value
        if result.status == results.FAILED and decision is not None:
            # The pod is retried with backoff (planning.cadence.retry_due), not at every check.
            failed = {cluster.FAILED_KEY: now, **served}
            if not decision.failing:
                failed[cluster.FAILING_SINCE_KEY] = now
            updates[result.key] = failed
            continue
        if result.status != results.CAPTURED:
            continue
        update: dict[str, Any] = {FAMILY_KEYS[reason]: now for reason in result.reasons if reason != BASELINE}
        update |= served
        if ALERT in result.reasons and decision is not None:
            update[cluster.FINGERPRINTS_KEY] = list(decision.alert_fingerprints)
        if BASELINE in result.reasons and decision is not None:
            # Recorded for its workload whatever becomes of its summary (else the next check would
            # take another).
            update |= {cluster.BASELINE_KEY: now, cluster.WORKLOAD_KEY: decision.service}
        updates[result.key] = update
    return updates

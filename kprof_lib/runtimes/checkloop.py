"""The check loop of the runtimes that watch one target (the sidecar and local mode): when to run a
check, the capture history between checks, and stopping cleanly. Each check is `run_check`, the
operator's own cycle: gather a one-pod cluster state, reconcile, execute, keep the history, flush
the spools, report.

When: every check interval while the spec has thresholds (the CPU rate is measured over that
window), and when an on-demand capture falls due by the history (not before the previous check's
start plus the interval, so a capture that keeps failing is retried at the check pace rather than
in a tight loop). `run()` waits on an event, so `stop()` (from a signal handler) ends the wait at
once; a check in progress is finished first: its captures are stored and its history kept.

History ("namespace/pod" -> lastThresholdCapture, lastOnDemandCapture, ...) is kept in memory and,
when given a file, mirrored to it after every check that captured, so cooldowns hold across a
restart of the process (the sidecar keeps it on the pod's emptyDir). So are the usage windows the
trend triggers judge (`adapters.windows`: each check's samples appended after reconcile), and each
check reads the target's goroutine count when given a reader. `wake_early`, polled every
`POLL_SECONDS` while waiting, starts a check before it is due (the sidecar's capture-now
annotation).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kprof_lib.adapters import windows
from kprof_lib.adapters.files import write_atomically
from kprof_lib.execution.clock import SystemClock
from kprof_lib.execution.cycle import CheckReport, run_check
from kprof_lib.execution.executor import Executor
from kprof_lib.execution.ports import Clock, ProfileStore, Transport
from kprof_lib.planning import cadence
from kprof_lib.runtimes import captures, wiring
from kprof_lib.spec.model import Spec
from kprof_lib.state import cluster

log = logging.getLogger("kprof.loop")

WAKE_MARGIN = 0.05  # wake a moment after a capture falls due, so the check sees it due
POLL_SECONDS = 1.0  # how often `wake_early` is asked while waiting for the next check

# Reads the goroutine counts of the pods of a check ({"namespace/pod": count}); may return fewer.
GoroutineCounter = Callable[[Spec, list[dict[str, Any]]], Mapping[str, int]]


class HistoryBook:
    """Capture history in memory, mirrored to `path` (JSON) when one is given. A file that cannot
    be read is logged and ignored: the worst outcome is one capture too early."""

    def __init__(self, path: Path | None = None):
        self.path = path
        self._entries: dict[str, dict[str, str]] = {}
        if path is not None:
            self._entries = self._load(path)

    @staticmethod
    def _load(path: Path) -> dict[str, dict[str, str]]:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as error:
            log.warning("capture history %s cannot be read (%s); starting without it", path, error)
            return {}
        if not isinstance(data, dict):
            log.warning("capture history %s is not a JSON object; starting without it", path)
            return {}
        try:
            cluster.read({"now": "1970-01-01T00:00:00Z", "pods": [], "history": data})
        except ValueError as error:
            log.warning("capture history %s is malformed (%s); starting without it", path, error)
            return {}
        return {key: dict(value) for key, value in data.items() if isinstance(value, dict)}

    def snapshot(self) -> dict[str, dict[str, str]]:
        return {key: dict(value) for key, value in self._entries.items()}

    def get(self, key: str) -> dict[str, str]:
        return dict(self._entries.get(key, {}))

    def merge(self, updates: Mapping[str, Mapping[str, str]]) -> None:
        if not updates:
            return
        for key, update in updates.items():
            self._entries.setdefault(key, {}).update(update)
        if self.path is not None:
            text = json.dumps(self._entries, indent=2, sort_keys=True) + "\n"
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                write_atomically([(self.path, text.encode())])
            except OSError as error:
                log.warning("capture history %s cannot be written: %s", self.path, error)


@dataclass(kw_only=True, eq=False)
class CheckLoop:
    """Runs checks of one config over one target until stopped.

    `load_spec()` returns the current spec (validated, defaults applied); `observe()` returns the
    pods and PodMetrics of the moment; `pod_key` ("namespace/pod") is the target's history key.
    `interval` overrides the spec's checkIntervalSeconds (local mode's --check-interval).
    `windows` keeps the usage windows between checks; `count_goroutines(spec, pods)` reads the
    pods' goroutine counts at each check; `wake_early()` True: check now.
    """

    config_name: str
    load_spec: Callable[[], Spec]
    observe: Callable[[], tuple[list[dict[str, Any]], list[dict[str, Any]]]]
    pod_key: Callable[[], str]
    executor: Executor
    stores: wiring.Stores
    transport: Transport
    history: HistoryBook
    interval: float | None = None
    windows: windows.UsageWindows | windows.WindowFile | None = None
    count_goroutines: GoroutineCounter | None = None
    wake_early: Callable[[], bool] | None = None
    wrap_store: Callable[[ProfileStore], ProfileStore] | None = None
    on_report: Callable[[CheckReport], None] | None = None
    on_error: Callable[[Exception], None] | None = None
    clock: Clock = field(default_factory=SystemClock)
    jaeger_url: str | None = field(default_factory=captures.jaeger_url)  # the pages link their traces there
    checks: int = field(default=0, init=False)
    completed: bool = field(default=False, init=False)  # run() ended as asked (stop() or its duration), not by an error
    _stop: threading.Event = field(default_factory=threading.Event, init=False)
    _aborted: threading.Event = field(default_factory=threading.Event, init=False)
    _last_start: float | None = field(default=None, init=False)

    # Control ------------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ends `run()` after the check in progress, if any. Safe from a signal handler."""
        self._stop.set()

    def abort(self) -> None:
        """Ends `run()` now: the executor cuts what is in flight (`Executor.abort`), and the spools
        are not flushed on the way out (what they hold waits there for the next start)."""
        self._aborted.set()
        self._stop.set()
        self.executor.abort()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def aborted(self) -> bool:
        return self._aborted.is_set()

    def run(self, *, duration: float | None = None) -> None:
        """Checks until `stop()` or, with `duration`, until that many seconds have passed; then
        flushes the spools once more."""
        started = self.clock.monotonic()
        deadline = started + duration if duration is not None else None
        self.completed = False
        try:
            while not self._stop.is_set():
                try:
                    spec = self.load_spec()
                except Exception as error:  # the spec source logged why; try again later
                    self._report_error(error)
                    spec = None
                wake = self._next_wake(spec, started)
                if deadline is not None and wake >= deadline:
                    self._stop.wait(max(0.0, deadline - self.clock.monotonic()))
                    break
                if self._wait_until(wake):
                    break
                if spec is not None:
                    self.check(spec)
            self.completed = True
        finally:
            self.flush_spools()

    # One check ----------------------------------------------------------------------------------

    def check(self, spec: Spec) -> CheckReport | None:
        """Runs one check now; errors are reported, not raised."""
        self._last_start = self.clock.monotonic()
        self.checks += 1
        now_text = cluster.format_time(self.clock.now())

        def gather() -> dict[str, Any]:
            pods, metrics = self.observe()
            state: dict[str, Any] = {
                "now": now_text,
                "pods": pods,
                "podMetrics": metrics,
                "history": self.history.snapshot(),
            }
            if self.windows is not None:
                state["usageWindow"] = self.windows.view()
            if self.count_goroutines is not None:
                counts = self.count_goroutines(spec, pods)
                if counts:
                    state["goroutines"] = dict(counts)
            return state

        def save_samples(samples: Mapping[str, Mapping[str, Any]]) -> None:
            if self.windows is not None:
                self.windows.append(samples, limit=spec.triggers.window_samples)

        store = self.stores.for_spec(spec)
        if self.wrap_store is not None:
            store = self.wrap_store(store)
        try:
            return run_check(
                config_name=self.config_name,
                spec=spec,
                gather=gather,
                executor=self.executor,
                store=store,
                transport=self.transport,
                save_history=self.history.merge,
                save_samples=save_samples if self.windows is not None else None,
                flush=self.flush_spools,
                report=self.on_report,
                jaeger_url=self.jaeger_url,
            )
        except Exception as error:
            self._report_error(error)
            return None

    def flush_spools(self) -> None:
        if self._aborted.is_set():
            return
        for spooled in self.stores.spooling():
            with contextlib.suppress(Exception):  # the spool logs its own failures
                spooled.flush()

    # Scheduling ---------------------------------------------------------------------------------

    def _wait_until(self, wake: float) -> bool:
        """Waits until the monotonic time `wake`, or less if `wake_early()` says so; True when
        stopped meanwhile."""
        while True:
            remaining = wake - self.clock.monotonic()
            if self.wake_early is None or remaining <= 0:
                return self._stop.wait(max(0.0, remaining))
            if self._stop.wait(min(remaining, POLL_SECONDS)):
                return True
            if self.wake_early():
                return False

    def check_interval(self, spec: Spec | None) -> float:
        return self.interval if self.interval is not None else float(cadence.check_interval(spec))

    def _next_wake(self, spec: Spec | None, started: float) -> float:
        """The monotonic time of the next check."""
        interval = self.check_interval(spec)
        previous = self._last_start if self._last_start is not None else started
        paced = previous + interval
        if spec is None:
            return paced
        candidates = []
        if spec.thresholds is not None:
            candidates.append(paced)
        if spec.on_demand_interval is not None:
            due = self._on_demand_due(spec.on_demand_interval)
            earliest = paced if self._last_start is not None else started
            candidates.append(max(due, earliest))
        return min(candidates) if candidates else paced

    def _on_demand_due(self, interval_seconds: float) -> float:
        key = self.pod_key()
        due = cadence.earliest_on_demand_due({key: self.history.get(key)}, interval_seconds)
        now_mono = self.clock.monotonic()
        if due is None:
            return now_mono
        return now_mono + (due - self.clock.now()).total_seconds() + WAKE_MARGIN

    def _report_error(self, error: Exception) -> None:
        if self.on_error is not None:
            self.on_error(error)
        else:
            log.error("check failed: %s", error, extra={"config": self.config_name, "action": "check-failed"})

"""When each ProfilingConfig is checked: APScheduler jobs, one set per config, kept in step with the
configs the operator watches. Used by `app.Operator`, which calls `sync` for every added or changed
config and `remove` for every deleted one, and gives the scheduler the function that runs a check.

A config gets a "check" job every `thresholds.checkIntervalSeconds` (threshold captures), when
`onDemand.enabled` an "on-demand" job every `onDemand.intervalSeconds`, and when `pgo.enabled` a
"pgo" job every `pgo.intervalSeconds` (its workloads' merged profiles, `operator.pgojobs`); a
config with neither thresholds nor on-demand captures, or an invalid one, gets a check job at the
default interval, which keeps its status current. Jobs do not overlap: each has `max_instances=1`,
missed runs are coalesced, and the jobs of a config share a lock, so one config's status and
history are written by one run at a time.

An on-demand run is given its scheduled fire time as "now", not the clock: fire times are exactly
the interval apart, so a pod captured at one run is due again at the next one however late either
run started. Its first run is placed where the capture history says the earliest pod is due
again (`next_on_demand`), so a restarted operator neither captures early nor waits a whole extra
interval.

A spec change (a new metadata.generation, or a new uid: deleted and created again) reschedules;
`remove` takes the jobs away at once, lets a run in progress finish, then calls `on_removed`
(which forgets the history) once that run is over.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import math
import threading
from collections.abc import Callable
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from kprof_lib.execution.clock import SystemClock
from kprof_lib.execution.ports import Clock
from kprof_lib.planning import cadence
from kprof_lib.spec import validation
from kprof_lib.spec.errors import SpecError
from kprof_lib.spec.schemas import DEFAULT_CHECK_INTERVAL  # how often a config without thresholds is looked at
from kprof_lib.state import cluster

log = logging.getLogger("kprof.operator.scheduling")

CHECK = "check"
ON_DEMAND = "on-demand"
PGO = "pgo"
KINDS = (CHECK, ON_DEMAND, PGO)


@dataclasses.dataclass(frozen=True)
class JobPlan:
    """The jobs of one config: seconds between checks, between on-demand runs and between writes
    of its merged PGO profiles (None: no job)."""

    check_interval: int | None
    on_demand_interval: int | None
    pgo_interval: int | None = None

    def intervals(self) -> dict[str, int]:
        planned = {CHECK: self.check_interval, ON_DEMAND: self.on_demand_interval, PGO: self.pgo_interval}
        return {kind: seconds for kind, seconds in planned.items() if seconds is not None}


def plan_jobs(spec: Any) -> JobPlan:
    """Which jobs a config's spec calls for (see the module's docstring)."""
    try:
        valid = validation.validate_spec(spec)
    except SpecError:
        return JobPlan(DEFAULT_CHECK_INTERVAL, None)
    on_demand = valid.on_demand_interval
    # A spec with on-demand captures only needs no check job; one with neither keeps one, so its
    # status stays current.
    check = None if valid.thresholds is None and on_demand is not None else cadence.check_interval(valid)
    return JobPlan(check, on_demand, valid.pgo.interval if valid.pgo else None)


def config_key(config: dict[str, Any]) -> str:
    metadata = config["metadata"]
    return f"{metadata['namespace']}/{metadata['name']}"


@dataclasses.dataclass(frozen=True)
class Run:
    """One run of a job, as handed to the run function."""

    key: str  # namespace/name of the ProfilingConfig
    kind: str  # CHECK, ON_DEMAND or PGO
    now: dt.datetime  # the scheduled fire time (on-demand) or the clock, whole seconds, UTC
    uid: str | None
    generation: int | None
    cancelled: Callable[[], bool]  # True once the config was deleted (or replaced) meanwhile


@dataclasses.dataclass
class _Scheduled:
    uid: str | None
    generation: int | None
    plan: JobPlan
    anchors: dict[str, dt.datetime]
    lock: threading.Lock
    removed: bool = False
    running: set[str] = dataclasses.field(default_factory=set)  # kinds with a run in progress
    again: set[str] = dataclasses.field(default_factory=set)  # kinds asked to run again meanwhile


def _whole_seconds(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.UTC).replace(microsecond=0)


def fire_time(anchor: dt.datetime, interval: int, now: dt.datetime) -> dt.datetime:
    """The latest fire time at or before `now` of a job firing at anchor + k * interval."""
    if now <= anchor:
        return anchor
    return anchor + dt.timedelta(seconds=interval * math.floor((now - anchor).total_seconds() / interval))


class ConfigScheduler:
    """APScheduler jobs for every known config. `run(Run)` is called on a worker thread."""

    def __init__(
        self,
        run: Callable[[Run], object],
        *,
        on_removed: Callable[[str], None] | None = None,
        next_on_demand: Callable[[str, int], dt.datetime | None] | None = None,
        clock: Clock | None = None,
        workers: int = 16,
    ):
        self._run = run
        self._on_removed = on_removed
        self._next_on_demand = next_on_demand
        self._clock = clock or SystemClock()
        self._configs: dict[str, _Scheduled] = {}
        self._lock = threading.RLock()
        self._in_flight = 0
        self._idle = threading.Condition()
        self._stopping = False
        self._scheduler = BackgroundScheduler(
            timezone=dt.UTC,
            executors={"default": ThreadPoolExecutor(max_workers=workers)},
            job_defaults={"coalesce": True, "max_instances": 1},
        )

    # Lifecycle ---------------------------------------------------------------------------------

    def start(self, active: bool = True) -> None:
        """Start the scheduler; an inactive one (a standby) keeps its jobs but runs none of them
        until `activate()`."""
        self._scheduler.start(paused=not active)

    def activate(self) -> None:
        """Run jobs from now on, each config's first run at once (on becoming the leader)."""
        self.reschedule_all()
        with self._lock:
            if not self._stopping:
                self._scheduler.resume()

    def deactivate(self) -> None:
        """Start no more runs (leadership lost); runs in progress finish."""
        with self._lock:
            if not self._stopping:
                self._scheduler.pause()

    def stop(self, grace: float) -> bool:
        """Stop starting runs, wait up to `grace` seconds for those in progress; True when none is
        left running."""
        with self._lock:
            self._stopping = True
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        return self.wait_idle(grace)

    def wait_idle(self, timeout: float) -> bool:
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout=timeout)

    @property
    def in_flight(self) -> int:
        with self._idle:
            return self._in_flight

    # Configs -----------------------------------------------------------------------------------

    def sync(self, config: dict[str, Any]) -> None:
        """Schedule a config that was added or changed; nothing happens if neither its uid, its
        generation nor its jobs changed."""
        metadata = config["metadata"]
        plan = plan_jobs(config.get("spec"))
        self.schedule(config_key(config), metadata.get("uid"), metadata.get("generation"), plan)

    def schedule(self, key: str, uid: str | None, generation: int | None, plan: JobPlan) -> None:
        with self._lock:
            if self._stopping:
                return
            current = self._configs.get(key)
            if current is not None and (current.uid, current.generation, current.plan) == (uid, generation, plan):
                return
            self._unschedule(key)
            lock = current.lock if current is not None else threading.Lock()
            entry = _Scheduled(uid, generation, plan, {}, lock)
            self._configs[key] = entry
            if current is not None and current.uid != uid:
                # Deleted and created again under the same name: the old one's history goes first,
                # then the new one's jobs start, so the cleanup cannot erase the new history.
                self._retire(key, current, then=lambda: self._add_jobs_if_current(key, entry))
            else:
                self._add_jobs(key, entry)

    def remove(self, key: str) -> None:
        """Take a deleted config's jobs away; a run in progress finishes, then `on_removed(key)`."""
        with self._lock:
            current = self._configs.pop(key, None)
            if current is None:
                return
            self._unschedule(key)
            self._retire(key, current)
        log.info("unscheduled %s", key, extra={"config": key, "action": "unschedule", "reason": "deleted"})

    def reschedule_all(self) -> None:
        """Start every config's jobs again from now (check at once, on-demand as history says)."""
        with self._lock:
            if self._stopping:
                return
            for key, entry in self._configs.items():
                self._unschedule(key)
                self._add_jobs(key, entry)

    def run_now(self, key: str, kind: str = CHECK) -> bool:
        """Run the config's `kind` job at once (an alert arrived), or as soon as its run in
        progress is over; its next run is then one interval later. False when the config has no
        such job."""
        with self._lock:
            entry = self._configs.get(key)
            job = self._scheduler.get_job(_job_id(key, kind)) if entry is not None and not self._stopping else None
            if entry is None or job is None:
                return False
            if kind in entry.running:
                # APScheduler would skip a run of a job still running: it runs when this one ends.
                entry.again.add(kind)
            else:
                job.modify(next_run_time=self._clock.now())
        return True

    def keys(self) -> list[str]:
        with self._lock:
            return sorted(self._configs)

    def jobs(self, key: str) -> dict[str, dict[str, Any]]:
        """The jobs of a config as {kind: {interval, next_run}}, for logs and tests."""
        found = {}
        for kind in KINDS:
            job = self._scheduler.get_job(_job_id(key, kind))
            if job is not None:
                found[kind] = {"interval": int(job.trigger.interval.total_seconds()), "next_run": job.next_run_time}
        return found

    # Internals ---------------------------------------------------------------------------------

    def _add_jobs(self, key: str, entry: _Scheduled) -> None:
        now = _whole_seconds(self._clock.now())
        jobs = {}
        for kind, interval in entry.plan.intervals().items():
            anchor = self._aligned_start(key, interval, now) if kind == ON_DEMAND else now
            entry.anchors[kind] = anchor
            self._scheduler.add_job(
                self._job,
                trigger=IntervalTrigger(seconds=interval, start_date=anchor, timezone=dt.UTC),
                next_run_time=anchor,
                args=(key, kind, entry),
                id=_job_id(key, kind),
                name=f"{kind} {key}",
                replace_existing=True,
                # A run that could not start on time (workers busy, process paused) still runs
                # within one interval; later than that it is coalesced into the next one.
                misfire_grace_time=interval,
            )
            jobs[kind] = {"interval": interval, "first": cluster.format_time(anchor)}
        planned = ", ".join(f"{kind} every {job['interval']}s from {job['first']}" for kind, job in jobs.items())
        extra = {"config": key, "action": "schedule", "generation": entry.generation, "jobs": jobs}
        log.info("scheduled %s: %s", key, planned, extra=extra)

    def _aligned_start(self, key: str, interval: int, now: dt.datetime) -> dt.datetime:
        if self._next_on_demand is None:
            return now
        try:
            due = self._next_on_demand(key, interval)
        except Exception as error:  # history unreadable now: start at once, reconcile still decides
            extra = {"config": key, "action": "schedule", "reason": "history-unavailable"}
            log.warning("cannot read capture history of %s: %s", key, error, extra=extra)
            return now
        return max(now, _whole_seconds(due)) if due is not None else now

    def _unschedule(self, key: str) -> None:
        for kind in KINDS:
            try:
                self._scheduler.remove_job(_job_id(key, kind))
            except Exception:  # JobLookupError: it was not scheduled
                pass

    def _add_jobs_if_current(self, key: str, entry: _Scheduled) -> None:
        with self._lock:
            if not self._stopping and self._configs.get(key) is entry:
                self._add_jobs(key, entry)

    def _retire(self, key: str, entry: _Scheduled, then: Callable[[], None] | None = None) -> None:
        entry.removed = True

        def after_runs() -> None:
            with entry.lock:  # waits for a run of the config in progress
                try:
                    if self._on_removed is not None:
                        self._on_removed(key)
                except Exception:
                    log.exception("cleaning up after %s failed", key, extra={"config": key, "action": "forget"})
            if then is not None:
                then()

        threading.Thread(target=after_runs, name=f"kprof-forget-{key}", daemon=True).start()

    def _job(self, key: str, kind: str, entry: _Scheduled) -> None:
        with self._lock:
            if self._stopping or entry.removed:
                return
        with self._idle:
            self._in_flight += 1
        with self._lock:
            entry.running.add(kind)
        try:
            with entry.lock:
                if entry.removed:
                    return
                now = _whole_seconds(self._clock.now())
                if kind == ON_DEMAND:
                    now = fire_time(entry.anchors[kind], entry.plan.intervals()[kind], now)
                run = Run(key, kind, now, entry.uid, entry.generation, lambda: entry.removed)
                try:
                    self._run(run)
                except Exception:
                    log.exception("%s of %s failed", kind, key, extra={"config": key, "action": kind})
        finally:
            with self._lock:
                entry.running.discard(kind)
                asked = kind in entry.again
                entry.again.discard(kind)
            if asked:
                self.run_now(key, kind)
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()


def _job_id(key: str, kind: str) -> str:
    return f"{key}#{kind}"

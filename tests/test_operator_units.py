"""The operator's parts one at a time: which jobs a spec gets and when they fire (the real
APScheduler, short intervals), the check runner's status conditions, totals and Events over small
in-memory ports (a port's contract allows tests to implement it), the log formats, the HTTP
endpoints and the `kprof run` flags."""

from __future__ import annotations

import contextlib
import datetime as dt
import gzip
import io
import itertools
import json
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from kprof_lib.adapters.directory import LocalStore
from kprof_lib.adapters.kube.informer import digest_pod
from kprof_lib.adapters.kube.selectors import to_selector_string
from kprof_lib.execution.executor import Executor
from kprof_lib.execution.ports import ProfileRequest, Response
from kprof_lib.runtimes import cli, endpoints, logs
from kprof_lib.runtimes.operator import monitoring
from kprof_lib.runtimes.operator.runner import CheckRunner, kinds_for_run
from kprof_lib.runtimes.operator.scheduling import (
    CHECK,
    DEFAULT_CHECK_INTERVAL,
    ON_DEMAND,
    ConfigScheduler,
    JobPlan,
    Run,
    fire_time,
    plan_jobs,
)
from kprof_lib.spec.validation import validate_spec
from tests.operator_support import http_get, metric_value, wait_until
from tests.support.pods import ENABLED, pod, pod_metrics

UTC = dt.UTC
T0 = dt.datetime(2026, 11, 25, 10, 0, 0, tzinfo=UTC)


# Which jobs ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"thresholds": {"checkIntervalSeconds": 15}}, JobPlan(15, None)),
        ({"thresholds": {}}, JobPlan(30, None)),
        # Capture-now is on by default, and checks decide it.
        ({"onDemand": {"enabled": True, "intervalSeconds": 45}}, JobPlan(DEFAULT_CHECK_INTERVAL, 45)),
        (
            {"onDemand": {"enabled": True, "intervalSeconds": 45}, "triggers": {"captureNow": {"enabled": False}}},
            JobPlan(None, 45),
        ),
        (
            {
                "onDemand": {"enabled": True, "intervalSeconds": 45},
                "triggers": {"captureNow": {"enabled": False}, "goroutines": {"goroutineThreshold": 500}},
            },
            JobPlan(DEFAULT_CHECK_INTERVAL, 45),
        ),
        ({"thresholds": {"checkIntervalSeconds": 20}, "onDemand": {"enabled": True}}, JobPlan(20, 300)),
        ({"onDemand": {"enabled": False}}, JobPlan(DEFAULT_CHECK_INTERVAL, None)),
        ({}, JobPlan(DEFAULT_CHECK_INTERVAL, None)),
        ({"thresholds": {"checkIntervalSeconds": 1}}, JobPlan(DEFAULT_CHECK_INTERVAL, None)),  # invalid
        ("not a spec", JobPlan(DEFAULT_CHECK_INTERVAL, None)),
    ],
)
def test_plan_jobs(spec, expected):
    assert plan_jobs(spec) == expected


def test_each_kind_of_run_decides_its_kind_of_capture_over_the_whole_spec():
    both = validate_spec({"thresholds": {"cpuThresholdPercent": 80}, "onDemand": {"enabled": True}})
    assert kinds_for_run(both, CHECK) == {"threshold"}
    assert kinds_for_run(both, ON_DEMAND) == {"on-demand"}
    assert kinds_for_run(validate_spec({}), CHECK) == {"threshold", "on-demand"}
    # An on-demand job of its own: the check leaves on-demand captures to it.
    assert kinds_for_run(validate_spec({"onDemand": {"enabled": True}}), CHECK) == {"threshold"}


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (T0, T0),
        (T0 - dt.timedelta(seconds=5), T0),
        (T0 + dt.timedelta(seconds=29), T0),
        (T0 + dt.timedelta(seconds=30), T0 + dt.timedelta(seconds=30)),
        (T0 + dt.timedelta(seconds=31.7), T0 + dt.timedelta(seconds=30)),
        (T0 + dt.timedelta(seconds=95), T0 + dt.timedelta(seconds=90)),
    ],
)
def test_fire_time_is_the_latest_scheduled_time(now, expected):
    assert fire_time(T0, 30, now) == expected


# The scheduler, for real -----------------------------------------------------------------------


class Recorder:
    """A run function that records runs and can be made slow."""

    def __init__(self, delay: float = 0.0):
        self.runs: list[Run] = []
        self.delay = delay
        self.running = 0
        self.most_at_once = 0
        self._lock = threading.Lock()

    def __call__(self, run: Run) -> None:
        with self._lock:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
            self.runs.append(run)
        time.sleep(self.delay)
        with self._lock:
            self.running -= 1

    def of(self, kind: str) -> list[Run]:
        with self._lock:
            return [run for run in self.runs if run.kind == kind]


@contextlib.contextmanager
def scheduler(run, **options) -> Iterator[ConfigScheduler]:
    scheduled = ConfigScheduler(run, **options)
    scheduled.start()
    try:
        yield scheduled
    finally:
        scheduled.stop(10)


def test_jobs_run_at_once_then_every_interval_with_fire_times_as_now():
    record = Recorder()
    with scheduler(record) as jobs:
        jobs.schedule("ns/a", "uid-a", 1, JobPlan(1, 2))
        wait_until(lambda: len(record.of(ON_DEMAND)) >= 3, 15, "three on-demand runs")
    on_demand = record.of(ON_DEMAND)
    assert [(b.now - a.now).total_seconds() for a, b in itertools.pairwise(on_demand)][:2] == [2, 2]
    assert all(run.now.microsecond == 0 and run.now.tzinfo is not None for run in record.runs)
    assert len(record.of(CHECK)) >= 3
    assert {run.key for run in record.runs} == {"ns/a"}


def test_runs_of_one_config_never_overlap():
    record = Recorder(delay=1.5)  # longer than both intervals
    with scheduler(record) as jobs:
        jobs.schedule("ns/slow", "uid", 1, JobPlan(1, 1))
        wait_until(lambda: len(record.runs) >= 3, 15, "three runs")
    assert record.most_at_once == 1


def test_a_new_generation_reschedules_and_the_same_one_does_not():
    record = Recorder()
    with scheduler(record) as jobs:
        jobs.schedule("ns/a", "uid", 1, JobPlan(3600, None))
        wait_until(lambda: len(record.runs) == 1, 5, "the first run")
        jobs.schedule("ns/a", "uid", 1, JobPlan(3600, None))
        time.sleep(0.5)
        assert len(record.runs) == 1, "an unchanged config is not run again"
        jobs.schedule("ns/a", "uid", 2, JobPlan(3600, 3600))
        wait_until(lambda: len(record.runs) == 3, 5, "a run of each job of the new generation")
        assert {run.generation for run in record.runs[1:]} == {2}
        assert set(jobs.jobs("ns/a")) == {CHECK, ON_DEMAND}


def test_removing_a_config_lets_its_run_finish_then_cleans_up():
    removed: list[tuple[str, bool]] = []
    record = Recorder(delay=1.0)

    def on_removed(key: str) -> None:
        removed.append((key, record.running == 0))

    with scheduler(record, on_removed=on_removed) as jobs:
        jobs.schedule("ns/gone", "uid", 1, JobPlan(3600, None))
        wait_until(lambda: record.running == 1, 5, "the run in progress")
        jobs.remove("ns/gone")
        assert jobs.jobs("ns/gone") == {} and jobs.keys() == []
        assert record.runs[0].cancelled() is True, "the run in progress is told its config is gone"
        wait_until(lambda: removed, 5, "the clean-up")
    assert removed == [("ns/gone", True)]


def test_a_config_recreated_under_the_same_name_starts_after_the_old_one_is_cleaned_up():
    events: list[str] = []
    record = Recorder()
    with scheduler(
        lambda run: (events.append(f"run {run.uid}"), record(run)), on_removed=lambda key: events.append("forget")
    ) as jobs:
        jobs.schedule("ns/a", "old", 1, JobPlan(3600, None))
        wait_until(lambda: "run old" in events, 5, "the old config's run")
        jobs.schedule("ns/a", "new", 1, JobPlan(3600, None))
        wait_until(lambda: "run new" in events, 5, "the new config's run")
    assert events == ["run old", "forget", "run new"]


def test_the_first_on_demand_run_follows_the_history():
    record = Recorder()
    due = dt.datetime.now(UTC).replace(microsecond=0) + dt.timedelta(seconds=2)
    with scheduler(record, next_on_demand=lambda key, interval: due) as jobs:
        jobs.schedule("ns/a", "uid", 1, JobPlan(None, 3600))
        assert jobs.jobs("ns/a")[ON_DEMAND]["next_run"] == due
        wait_until(lambda: record.of(ON_DEMAND), 10, "the on-demand run when due")
    assert record.of(ON_DEMAND)[0].now == due


def test_an_inactive_scheduler_runs_nothing_until_activated():
    record = Recorder()
    jobs = ConfigScheduler(record)
    jobs.start(active=False)
    try:
        jobs.schedule("ns/a", "uid", 1, JobPlan(1, None))
        time.sleep(1.5)
        assert record.runs == []
        jobs.activate()
        wait_until(lambda: record.runs, 5, "a run once active")
        jobs.deactivate()
        count = len(record.runs)
        time.sleep(1.5)
        assert len(record.runs) == count
    finally:
        assert jobs.stop(5)


def test_run_now_runs_the_check_at_once_and_the_next_one_an_interval_later():
    record = Recorder()
    with scheduler(record) as jobs:
        jobs.schedule("ns/a", "uid", 1, JobPlan(3600, None))
        wait_until(lambda: len(record.runs) == 1, 5, "the first check")
        woken = dt.datetime.now(UTC)
        assert jobs.run_now("ns/a")
        wait_until(lambda: len(record.runs) == 2, 5, "the check woken at once (an alert arrived)")
        next_run = jobs.jobs("ns/a")[CHECK]["next_run"]
        assert dt.timedelta(seconds=3599) <= next_run - woken <= dt.timedelta(seconds=3605)
        assert not jobs.run_now("ns/unknown")
        assert not jobs.run_now("ns/a", ON_DEMAND), "no such job"


def test_run_now_during_a_check_runs_it_again_once_that_one_is_over():
    record = Recorder(delay=1.0)
    with scheduler(record) as jobs:
        jobs.schedule("ns/a", "uid", 1, JobPlan(3600, None))
        wait_until(lambda: len(record.runs) == 1, 5, "the first check, in progress")
        assert jobs.run_now("ns/a") and jobs.run_now("ns/a")  # twice while it runs: one more run
        wait_until(lambda: len(record.runs) == 2, 5, "the check again after the first")
        time.sleep(1.5)
        assert len(record.runs) == 2 and record.most_at_once == 1


def test_stop_waits_for_the_run_in_progress_up_to_the_grace_period():
    record = Recorder(delay=1.0)
    jobs = ConfigScheduler(record)
    jobs.start()
    jobs.schedule("ns/a", "uid", 1, JobPlan(3600, None))
    wait_until(lambda: record.running == 1, 5, "a run in progress")
    assert jobs.stop(0.1) is False
    assert jobs.wait_idle(5) is True
    jobs.schedule("ns/b", "uid", 1, JobPlan(1, None))
    time.sleep(1.2)
    assert [run.key for run in record.runs] == ["ns/a"], "nothing starts once stopping"


# The check runner over in-memory ports -----------------------------------------------------------


class Pods:
    """A `PodSource` holding the digests the operator's pod cache would hold of `pods`."""

    synced = True

    def __init__(self, *pods: dict):
        self.items = [digest_pod(p) for p in pods]

    def pods(self, namespace=None):
        return [p for p in self.items if namespace is None or p.namespace == namespace]


class Metrics:
    def __init__(self, *items: dict, error: Exception | None = None):
        self.items, self.error, self.calls = list(items), error, []

    def pod_metrics(self, namespace, label_selector, wanted=None):
        self.calls.append((namespace, label_selector))
        if self.error is not None:
            raise self.error
        self.kept = [m for m in self.items if (namespace is None or m["metadata"]["namespace"] == namespace)
                     and (wanted is None or wanted((m["metadata"]["namespace"], m["metadata"]["name"])))]
        return self.kept


class History:
    def __init__(self):
        self.entries: dict[str, dict] = {}

    def load(self, key):
        return json.loads(json.dumps(self.entries.get(key, {})))

    def merge(self, key, updates):
        self.entries.setdefault(key, {}).update({k: dict(v) for k, v in updates.items()})

    def forget(self, key):
        self.entries.pop(key, None)


class Events:
    def __init__(self):
        self.recorded: list[tuple[dict, str, str, str]] = []

    def record(self, involved, event_type, reason, message):
        self.recorded.append((dict(involved), event_type, reason, message))


class Status:
    """A status subresource: merge-patches the stored object's status."""

    def __init__(self, config: dict):
        self.config = config
        self.patches: list[dict] = []
        self.failures = 0  # how many of the next patches fail, as a connection cut mid-write does

    def patch_status(self, namespace, name, status):
        if self.failures:
            self.failures -= 1
            raise ConnectionResetError("connection cut")
        self.patches.append(json.loads(json.dumps(status)))
        self.config["status"] = {**(self.config.get("status") or {}), **status}
        return json.loads(json.dumps(self.config))


class CannedTransport:
    """Answers every profile request with a small gzip body, as a pprof endpoint would."""

    name = "canned"

    @contextlib.contextmanager
    def open(self, request: ProfileRequest, timeout: float) -> Iterator[Response]:
        body = gzip.compress(f"{request.pod} {request.profile_type}".encode())
        yield Response(200, "OK", {"Content-Length": str(len(body))}, iter([body]))


def config(spec: dict, generation: int = 1, namespace: str = "shop") -> dict:
    return {
        "apiVersion": "profiling.io/v1alpha1",
        "kind": "ProfilingConfig",
        "metadata": {"name": "cfg", "namespace": namespace, "uid": "uid-1", "generation": generation},
        "spec": spec,
    }


class Harness:
    def __init__(
        self, tmp_path, spec: dict, pods: list[dict], metrics: list[dict], metrics_error=None, *,
        namespace: str = "shop", policy=None, stores=None,
    ):
        self.config = config(spec, namespace=namespace)
        self.metrics = Metrics(*metrics, error=metrics_error)
        self.history, self.events, self.status = History(), Events(), Status(self.config)
        self.instruments = monitoring.Instruments()
        self.runner = CheckRunner(
            configs=lambda key: self.config,
            pods=Pods(*pods),
            metrics=self.metrics,
            history=self.history,
            events=self.events,
            status=self.status,
            executor=Executor(concurrency=2),
            store_for=stores or (lambda spec: LocalStore(tmp_path)),
            transport_for=lambda name: CannedTransport(),
            default_transport="direct",
            instruments=self.instruments,
            selector_string=to_selector_string,
            policy=policy,
        )
        self.key = f"{namespace}/cfg"

    def run(self, kind: str = CHECK, now: dt.datetime = T0):
        return self.runner(Run(self.key, kind, now, "uid-1", self.config["metadata"]["generation"], lambda: False))

    def condition(self, kind: str) -> dict:
        return next(c for c in self.config["status"]["conditions"] if c["type"] == kind)


def busy_pod(name: str, cpu: str = "500m") -> tuple[dict, dict]:
    return (
        pod(name, "shop", app="checkout", annotations=ENABLED, labels={"tier": "backend"}),
        pod_metrics(name, "shop", {"app": {"cpu": cpu, "memory": "10Mi"}}),
    )


THRESHOLD_SPEC = {
    "selector": {"namespace": "shop", "labelSelector": {"matchLabels": {"tier": "backend"}}},
    "thresholds": {"cpuThresholdPercent": 80, "cooldownSeconds": 300},
    "profileTypes": ["heap", "goroutine"],
}


def test_a_check_captures_counts_and_writes_status_events_and_history(tmp_path):
    hot, hot_metrics = busy_pod("hot-1")
    cool, cool_metrics = busy_pod("cool-1", cpu="10m")
    h = Harness(tmp_path, THRESHOLD_SPEC, [hot, cool], [hot_metrics, cool_metrics])
    outcome = h.run()
    assert outcome.result == "ok"
    assert h.metrics.calls == [("shop", "tier=backend")], "one LIST for the namespace, the selector pushed"
    assert h.history.entries == {"shop/cfg": {"shop/hot-1": {"lastThresholdCapture": "2026-11-25T10:00:00Z"}}}
    status = h.config["status"]
    assert (status["activePods"], status["totalProfiles"], status["totalUploads"]) == (2, 2, 2)
    assert (status["observedGeneration"], status["lastCheckTime"]) == (1, "2026-11-25T10:00:00Z")
    assert (h.condition("Ready")["status"], h.condition("Valid")["status"]) == ("True", "True")
    [(involved, event_type, reason, message)] = h.events.recorded
    assert (involved["kind"], involved["name"], involved["uid"], event_type, reason) == (
        "Pod",
        "hot-1",
        hot["metadata"]["uid"],
        "Normal",
        "ProfileCaptured",
    )
    # The canned bodies are not profiles: the summary says so, and the Event names the capture.
    folder = next(tmp_path.rglob("summary.json")).parent
    assert message == f"cpu-threshold (200% of request) — {folder}/ (config shop/cfg; profiles: heap, goroutine)"
    last = status["lastCapture"]
    assert (last["pod"], last["reason"], last["uri"], last["topFunctions"]) == (
        "shop/hot-1",
        "cpu-threshold",
        f"{folder}/",
        {},
    )
    assert last["time"].startswith("2026-") and last["time"].endswith("Z")
    text = h.instruments.exposition().decode()
    assert metric_value(text, "kprof_captures_total", type="heap", reason="cpu-threshold", result="stored") == 1
    assert metric_value(text, "kprof_threshold_violations_total", config="shop/cfg", resource="cpu") == 1
    assert metric_value(text, "kprof_active_pods", config="shop/cfg") == 2

    # The next check: the cooldown holds, the totals stay, the Ready transition time stays.
    again = h.run(now=T0 + dt.timedelta(seconds=30))
    assert [r.reason for r in again.report.plan.results] == ["below-threshold", "cooldown"]
    assert (h.config["status"]["totalProfiles"], h.config["status"]["totalUploads"]) == (2, 2)
    assert h.condition("Ready")["lastTransitionTime"] == "2026-11-25T10:00:00Z"
    assert h.config["status"]["lastCheckTime"] == "2026-11-25T10:00:30Z"
    assert (
        metric_value(
            h.instruments.exposition().decode(), "kprof_threshold_violations_total", config="shop/cfg", resource="cpu"
        )
        == 2
    )


def test_a_check_decides_about_opted_in_pods_only_with_their_pod_metrics_only(tmp_path):
    hot, hot_metrics = busy_pod("hot-1")
    other = pod("other-1", "shop", app="checkout", labels={"tier": "backend"})
    other_metrics = pod_metrics("other-1", "shop", {"app": {"cpu": "900m", "memory": "10Mi"}})
    h = Harness(tmp_path, THRESHOLD_SPEC, [hot, other], [hot_metrics, other_metrics])
    outcome = h.run()
    # The pod that does not opt in could never be captured: it is not decided about at all.
    assert [(r.pod, r.reason) for r in outcome.report.plan.results] == [("hot-1", "cpu-threshold")]
    assert h.metrics.kept == [hot_metrics]
    assert h.config["status"]["activePods"] == 1


def test_a_status_write_that_fails_loses_no_count_and_an_unwritten_invalid_status_is_written_later(tmp_path):
    hot, hot_metrics = busy_pod("hot-1")
    spec = {**THRESHOLD_SPEC, "onDemand": {"enabled": True, "intervalSeconds": 60}}
    h = Harness(tmp_path, spec, [hot], [hot_metrics])
    h.status.failures = 1
    assert h.run().result == "ok" and h.status.patches == []
    h.run(ON_DEMAND, now=T0 + dt.timedelta(seconds=30))
    assert h.config["status"]["totalProfiles"] == 4, "the unwritten run's two profiles are still counted"

    bad = Harness(tmp_path, {"thresholds": {"cpuThresholdPercent": 0}, "profileTypes": []}, [hot], [hot_metrics])
    bad.status.failures = 1
    assert bad.run().result == "invalid" and bad.status.patches == []
    bad.run(now=T0 + dt.timedelta(seconds=30))
    assert bad.condition("Valid")["status"] == "False", "the Invalid status is written once the API takes it"


def test_an_on_demand_run_reads_no_metrics(tmp_path):
    hot, hot_metrics = busy_pod("hot-1")
    spec = {**THRESHOLD_SPEC, "onDemand": {"enabled": True, "intervalSeconds": 60}}
    h = Harness(tmp_path, spec, [hot], [hot_metrics])
    outcome = h.run(ON_DEMAND)
    assert h.metrics.calls == []
    assert [r.to_dict()["reasons"] for r in outcome.report.plan.captures] == [["on-demand"]]
    assert h.history.entries["shop/cfg"]["shop/hot-1"] == {"lastOnDemandCapture": "2026-11-25T10:00:00Z"}


def test_an_invalid_spec_is_reported_once_per_generation_and_a_fix_clears_it(tmp_path):
    hot, hot_metrics = busy_pod("hot-1")
    h = Harness(tmp_path, {"thresholds": {"cpuThresholdPercent": 0}, "profileTypes": []}, [hot], [hot_metrics])
    outcome = h.run()
    assert outcome.result == "invalid"
    valid = h.condition("Valid")
    assert (valid["status"], valid["reason"]) == ("False", "InvalidSpec")
    assert "spec.thresholds.cpuThresholdPercent" in valid["message"] and "spec.profileTypes" in valid["message"]
    assert h.condition("Ready")["status"] == "False"
    [(involved, event_type, reason, message)] = h.events.recorded
    assert (involved["kind"], involved["name"], event_type, reason) == (
        "ProfilingConfig",
        "cfg",
        "Warning",
        "InvalidConfig",
    )
    assert message == valid["message"]
    assert h.metrics.calls == [] and h.history.entries == {}

    h.run(now=T0 + dt.timedelta(seconds=30))
    assert len(h.status.patches) == 1 and len(h.events.recorded) == 1, "nothing new to say: nothing written"

    h.config["spec"] = THRESHOLD_SPEC
    h.config["metadata"]["generation"] = 2
    assert h.run(now=T0 + dt.timedelta(seconds=60)).result == "ok"
    valid = h.condition("Valid")
    assert (valid["status"], valid["observedGeneration"], valid["lastTransitionTime"]) == (
        "True",
        2,
        "2026-11-25T10:01:00Z",
    )
    assert h.config["status"]["observedGeneration"] == 2


def test_a_selector_the_api_cannot_express_is_an_invalid_spec(tmp_path):
    spec = {"selector": {"labelSelector": {"matchLabels": {"tier": "back end"}}}, "thresholds": {}}
    h = Harness(tmp_path, spec, [], [])
    assert h.run().result == "invalid"
    assert h.condition("Valid")["message"].startswith("invalid ProfilingConfig spec: 1 problem")
    assert "spec.selector.labelSelector" in h.condition("Valid")["message"]


def test_a_check_that_cannot_read_metrics_is_not_ready_and_the_next_one_recovers(tmp_path):
    hot, hot_metrics = busy_pod("hot-1")
    h = Harness(tmp_path, THRESHOLD_SPEC, [hot], [hot_metrics], metrics_error=RuntimeError("GET metrics: 503"))
    assert h.run().result == "error"
    ready = h.condition("Ready")
    assert (ready["status"], ready["reason"], ready["message"]) == ("False", "CheckFailed", "GET metrics: 503")
    assert h.condition("Valid")["status"] == "True"
    assert h.history.entries == {} and h.events.recorded == []
    h.metrics.error = None
    assert h.run(now=T0 + dt.timedelta(seconds=10)).result == "ok"
    assert h.condition("Ready")["status"] == "True"
    text = h.instruments.exposition().decode()
    assert metric_value(text, "kprof_checks_total", config="shop/cfg", result="error") == 1
    assert metric_value(text, "kprof_checks_total", config="shop/cfg", result="ok") == 1


def test_a_failed_capture_is_a_warning_event_and_no_history(tmp_path):
    hot, hot_metrics = busy_pod("hot-1")
    h = Harness(tmp_path, THRESHOLD_SPEC, [hot], [hot_metrics])

    class Refusing(CannedTransport):
        @contextlib.contextmanager
        def open(self, request, timeout):
            yield Response(404, "Not Found", {}, iter([b"404 page not found"]))

    h.runner.transport_for = lambda name: Refusing()
    h.run()
    [(_, event_type, reason, message)] = h.events.recorded
    assert (event_type, reason) == ("Warning", "ProfileCaptureFailed") and "404" in message
    # No capture time (no cooldown starts), but the failure: the pod is retried with backoff.
    [(_config, entries)] = h.history.entries.items()
    [(pod, entry)] = entries.items()
    assert pod == "shop/hot-1" and set(entry) == {"lastFailedCapture", "failingSince"}
    assert entry["lastFailedCapture"] == entry["failingSince"]
    assert (h.config["status"]["totalProfiles"], h.config["status"]["totalUploads"]) == (0, 0)
    text = h.instruments.exposition().decode()
    assert metric_value(text, "kprof_captures_total", type="heap", reason="cpu-threshold", result="failed") == 1


def test_only_the_leader_checks(tmp_path):
    hot, hot_metrics = busy_pod("hot-1")
    h = Harness(tmp_path, THRESHOLD_SPEC, [hot], [hot_metrics])
    h.runner.is_leader = lambda: False
    assert h.run().result == "skipped"
    assert h.metrics.calls == [] and h.status.patches == []


# Logs ------------------------------------------------------------------------------------------


@pytest.fixture
def root_logger() -> Iterator[None]:
    """logs.configure replaces the root logger's handlers and level: put pytest's back after."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)


def log_line(log_format: str, level: str = "info", **extra: Any) -> str:
    stream = io.StringIO()
    logs.configure(level, log_format, stream)
    logging.getLogger("kprof.test").info("captured %s", "heap", extra=extra)
    logging.getLogger("kprof.test").debug("hidden")
    return stream.getvalue()


def test_json_log_lines_carry_the_decision_fields_first(root_logger):
    text = log_line(
        "json", detail="s3://b/k", config="shop/cfg", reason="cpu-threshold", pod="shop/p", action="stored", bytes=12
    )
    [line] = text.splitlines()
    record = json.loads(line)
    assert list(record) == ["ts", "level", "logger", "msg", "config", "pod", "action", "reason", "bytes", "detail"]
    assert (record["level"], record["logger"], record["msg"]) == ("info", "kprof.test", "captured heap")
    assert dt.datetime.strptime(record["ts"], "%Y-%m-%dT%H:%M:%S.%fZ")


def test_text_log_lines_read_as_key_values(root_logger):
    [line] = log_line("text", config="shop/cfg", action="stored", detail="two words").splitlines()
    assert "info" in line and "captured heap" in line
    assert line.endswith('config=shop/cfg action=stored detail="two words"')


def test_exceptions_are_part_of_the_json_line(root_logger):
    stream = io.StringIO()
    logs.configure("info", "json", stream)
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("kprof.test").exception("failed", extra={"config": "a/b"})
    [line] = stream.getvalue().splitlines()
    record = json.loads(line)
    assert record["level"] == "error" and "ValueError: boom" in record["error"] and record["config"] == "a/b"


def test_log_settings_are_checked(root_logger):
    with pytest.raises(ValueError, match="log level"):
        logs.configure("verbose", "json")
    with pytest.raises(ValueError, match="log format"):
        logs.configure("info", "xml")


# HTTP endpoints ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (":8080", endpoints.Address("", 8080)),
        ("127.0.0.1:0", endpoints.Address("127.0.0.1", 0)),
        ("[::1]:9090", endpoints.Address("::1", 9090)),
    ],
)
def test_parse_address(text, expected):
    assert endpoints.parse_address(text) == expected


@pytest.mark.parametrize("text", ["8080", "host:", "host:http", ":70000"])
def test_parse_address_refuses(text):
    with pytest.raises(ValueError):
        endpoints.parse_address(text)


def test_readyz_follows_readiness_and_metrics_use_the_operator_names():
    state = {"ready": (False, "waiting for the pods cache to sync")}
    instruments = monitoring.Instruments()
    instruments.track_watch("pods", lambda: 3)
    instruments.track_leader(lambda: True)
    instruments.track_spool(lambda: 1234)
    servers = monitoring.serve(
        endpoints.Address("127.0.0.1", 0), endpoints.Address("127.0.0.1", 0), lambda: state["ready"], instruments
    )
    assert len(servers) == 1, "one address, one server"
    [server] = servers
    server.start()
    try:
        base = f"http://{server.address}"
        assert http_get(base + "/healthz") == (200, "ok\n")
        assert http_get(base + "/readyz") == (503, "not ready: waiting for the pods cache to sync\n")
        state["ready"] = (True, "caches synced; leader")
        assert http_get(base + "/readyz") == (200, "ok: caches synced; leader\n")
        status, text = http_get(base + "/metrics")
        assert status == 200
        assert metric_value(text, "kprof_watch_restarts_total", resource="pods") == 3
        assert metric_value(text, "kprof_leader") == 1
        assert metric_value(text, "kprof_spool_bytes") == 1234
        for name in (
            "kprof_checks",
            "kprof_captures",
            "kprof_uploads",
            "kprof_capture_duration_seconds",
            "kprof_active_pods",
            "kprof_threshold_violations",
        ):
            assert f"# HELP {name}" in text
        assert http_get(base + "/other")[0] == 404
    finally:
        server.stop()


# Flags -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--concurrency", "0"], "argument --concurrency: must be at least 1, not 0"),
        (["--health-addr", "8081"], "argument --health-addr: '8081' is not HOST:PORT"),
        (["--lease-duration", "soon"], "argument --lease-duration: 'soon' is not a number of seconds"),
        (["--transport", "carrier-pigeon"], "argument --transport: invalid choice"),
        (["--log-format", "xml"], "argument --log-format: invalid choice"),
        (["--grace-period", "-1"], "argument --grace-period: must be 0 or more seconds"),
    ],
)
def test_bad_flags_are_refused_with_a_clear_message(argv, message, capsys):
    with pytest.raises(SystemExit) as stopped:
        cli.main(["run", *argv])
    assert stopped.value.code == 2
    assert message in capsys.readouterr().err


def test_lease_timings_that_cannot_work_are_refused(capsys, root_logger):
    assert cli.main(["run", "--lease-duration", "5", "--renew-deadline", "10"]) == 2
    [line] = capsys.readouterr().err.splitlines()
    record = json.loads(line)
    assert record["level"] == "error" and "--lease-duration (5) must be greater than --renew-deadline" in record["msg"]

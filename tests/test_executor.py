"""The executor carrying out real plans: the real Go pprof app, the misbehaving server, moto's S3 over
HTTP and an OTLP receiver. Check -> apply -> apply again (nothing new), in the manner of Ansible."""

from __future__ import annotations

import gzip
import threading

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from kprof_lib import reconcile
from kprof_lib.adapters.directory import LocalStore
from kprof_lib.adapters.pprof.direct import DirectTransport
from kprof_lib.adapters.s3 import S3Store
from kprof_lib.adapters.spool import SpoolingStore
from kprof_lib.execution import cycle, executor
from kprof_lib.execution.executor import BusyRetry, Executor, PodLocks
from tests.support.net import free_port
from tests.support.pods import ENABLED, pod

NOW = "2026-11-25T10:00:00Z"


def pod_at(name: str, port: int, path: str = "/debug/pprof", namespace: str = "shop", **labels: str) -> dict:
    annotations = {**ENABLED, "profiling.io/port": str(port), "profiling.io/path": path}
    return pod(name, namespace, app="checkout", annotations=annotations, pod_ip="127.0.0.1", labels=labels,
               owner_replicaset="checkout-5d8f7c9b4")


def state(*pods: dict, history: dict | None = None) -> dict:
    return {"now": NOW, "pods": list(pods), "history": history or {}}


def on_demand(*types: str, seconds: int = 1, **extra) -> dict:
    return {"onDemand": {"enabled": True}, "profileTypes": list(types), "cpuProfileSeconds": seconds, **extra}


@pytest.fixture
def tracing(otlp_receiver):
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=otlp_receiver.traces_url)))
    yield provider.get_tracer("kprof-test")
    provider.shutdown()


def test_check_apply_apply_again_into_the_local_store(go_app, tmp_path):
    store, transport = LocalStore(tmp_path), DirectTransport()
    run = Executor()
    spec = on_demand("heap", "goroutine", "cpu")
    target = pod_at("checkout-5d8f7c9b4-kx2lp", go_app.port)

    planned = run.execute(reconcile(spec, state(target)), store=store, transport=transport, check_mode=True)
    assert [p.status for p in planned.results[0].profiles] == ["planned", "planned", "planned"]
    assert planned.history_updates == {}
    assert list(tmp_path.iterdir()) == [], "check mode wrote something"

    applied = run.execute(reconcile(spec, state(target)), store=store, transport=transport)
    [result] = applied.results
    assert (result.status, [p.status for p in result.profiles]) == ("captured", ["stored"] * 3)
    for profile in result.profiles:
        path = store.path_for(profile.key)
        assert profile.key.startswith("shop/checkout-5d8f7c9b4-kx2lp/") and profile.key.endswith(f"/{profile.type}.pprof")
        assert gzip.decompress(path.read_bytes()), profile.type
        assert profile.bytes == path.stat().st_size
    assert applied.history_updates == {"shop/checkout-5d8f7c9b4-kx2lp": {"lastOnDemandCapture": NOW}}
    assert applied.profiles_kept == applied.profiles_stored == 3

    # Again, with the history the first run returned: on-demand is not due, nothing happens.
    again = run.execute(reconcile(spec, state(target, history=applied.history_updates)), store=store, transport=transport)
    assert [(r.status, r.reason) for r in again.results] == [("skipped", "not-due")]
    assert again.history_updates == {}


def test_a_failing_pod_does_not_stop_the_others(go_app, bad_server, tmp_path):
    closed = free_port()
    pods = [
        pod_at("a-refused", closed),
        pod_at("b-good", go_app.port),
        pod_at("c-html", bad_server.port, path="/html/debug/pprof"),
        pod_at("d-missing", bad_server.port, path="/status/404/debug/pprof"),
    ]
    report = Executor(concurrency=4).execute(reconcile(on_demand("heap"), state(*pods)), store=LocalStore(tmp_path),
                                             transport=DirectTransport())
    outcome = {r.pod: (r.status, r.message) for r in report.results}
    assert outcome["b-good"] == ("captured", None)
    assert outcome["a-refused"][0] == "failed" and "refused" in outcome["a-refused"][1]
    assert outcome["c-html"][0] == "failed" and "non-pprof content" in outcome["c-html"][1] and "<html>" not in outcome["c-html"][1]
    assert outcome["d-missing"][0] == "failed" and "404" in outcome["d-missing"][1]
    # A failed capture starts its pod's backoff (planning.cadence.retry_due), not its cooldown.
    updates = report.history_updates
    assert set(updates) == {"shop/a-refused", "shop/b-good", "shop/c-html", "shop/d-missing"}
    now = report.now
    for failed in ("shop/a-refused", "shop/c-html", "shop/d-missing"):
        assert updates[failed] == {"lastFailedCapture": now, "failingSince": now}, failed
    assert "lastFailedCapture" not in updates["shop/b-good"] and updates["shop/b-good"]


class CountingClock:
    """The real clock, but sleeps are recorded and shortened: backoff is asserted, not waited for."""

    def __init__(self, real_sleep: bool = False):
        from kprof_lib.execution.clock import SystemClock

        self.real, self.sleeps, self.real_sleep = SystemClock(), [], real_sleep

    def now(self):
        return self.real.now()

    def monotonic(self):
        return self.real.monotonic()

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.real.sleep(seconds if self.real_sleep else 0.01)


def test_a_busy_cpu_profiler_is_retried_later_with_backoff(go_app, tmp_path):
    # Another profiler holds the real Go app's CPU profiler for 4 s: Go answers 500 "cpu profiling
    # already in use". The capture takes heap first, then retries cpu with backoff until it is free.
    holder = threading.Thread(target=go_app.pprof, args=("profile",), kwargs={"seconds": 4, "timeout": 30})
    holder.start()
    try:
        clock = CountingClock(real_sleep=True)
        run = Executor(busy_retry=BusyRetry(attempts=6, first_delay=1.0, factor=2.0), clock=clock)
        clock.real.sleep(0.5)  # let the holder's request reach the app first
        report = run.execute(reconcile(on_demand("cpu", "heap"), state(pod_at("busy", go_app.port))),
                             store=LocalStore(tmp_path), transport=DirectTransport())
    finally:
        holder.join(timeout=30)
    [result] = report.results
    assert [(p.type, p.status) for p in result.profiles] == [("heap", "stored"), ("cpu", "stored")]
    assert clock.sleeps[:2] == [1.0, 2.0]


def test_busy_retries_follow_the_backoff(bad_server, tmp_path):
    bad_server.configure("busy", busy_count=2)
    clock = CountingClock()
    run = Executor(busy_retry=BusyRetry(attempts=4, first_delay=2.0), clock=clock)
    report = run.execute(reconcile(on_demand("cpu"), state(pod_at("busy", bad_server.port))),
                         store=LocalStore(tmp_path), transport=DirectTransport())
    assert [(p.type, p.status) for p in report.results[0].profiles] == [("cpu", "stored")]
    assert clock.sleeps == [2.0, 4.0]


def test_a_busy_profiler_that_never_frees_up_fails_with_the_reason(bad_server, tmp_path):
    bad_server.configure("busy", busy_count=100)
    run = Executor(busy_retry=BusyRetry(attempts=2, first_delay=1.0), clock=CountingClock())
    report = run.execute(reconcile(on_demand("cpu"), state(pod_at("busy", bad_server.port))),
                         store=LocalStore(tmp_path), transport=DirectTransport())
    [result] = report.results
    assert result.status == "failed"
    assert result.message == "cpu: cpu profiling already in use (gave up after 3 attempts)"


def test_one_capture_per_pod_at_a_time(go_app, tmp_path):
    locks = PodLocks()
    plan = reconcile(on_demand("cpu", seconds=2), state(pod_at("p", go_app.port)))
    reports = []

    def capture():
        reports.append(Executor(pod_locks=locks).execute(plan, store=LocalStore(tmp_path), transport=DirectTransport()))

    threads = [threading.Thread(target=capture) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    # The second waited for the first (no "cpu profiling already in use" from Go), then ran.
    assert sorted(report.results[0].status for report in reports) == ["captured", "captured"]
    [first, second] = sorted((r.results[0].profiles[0] for r in reports), key=lambda p: p.key)
    assert first.key != second.key and first.attempts == second.attempts == 1


def test_cpu_and_byte_bound_captures_have_limits_of_their_own(go_app_factory, tmp_path):
    # Four pods, each a CPU profile then a heap profile; one byte-bound slot, three CPU slots.
    apps = go_app_factory.start_many(4)
    plan = reconcile(on_demand("cpu", "heap", seconds=1), state(*(pod_at(f"p{i}", app.port) for i, app in enumerate(apps))))
    executor = Executor(concurrency=1, cpu_concurrency=3)
    seen: list[tuple[int, int]] = []
    done = threading.Event()

    def watch():
        while not done.is_set():
            kinds = [entry.profile_type for entry in executor.in_flight()]
            seen.append((kinds.count("cpu"), len(kinds) - kinds.count("cpu")))
            done.wait(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        report = executor.execute(plan, store=LocalStore(tmp_path), transport=DirectTransport())
    finally:
        done.set()
        watcher.join()
    assert [r.status for r in report.results] == ["captured"] * 4
    # Three CPU profiles ran at once beside the heap slot's one, never more of either kind.
    assert max(cpu for cpu, _ in seen) == 3
    assert max(other for _, other in seen) == 1


def test_a_drain_cancels_the_captures_waiting_for_a_slot(go_app_factory, tmp_path):
    apps = go_app_factory.start_many(2)
    plan = reconcile(on_demand("cpu", seconds=2), state(*(pod_at(f"p{i}", app.port) for i, app in enumerate(apps))))
    executor = Executor(cpu_concurrency=1)
    threading.Timer(0.5, executor.drain).start()
    report = executor.execute(plan, store=LocalStore(tmp_path), transport=DirectTransport())
    # The one in its slot ends as it would; the one waiting for the slot never starts.
    assert sorted((r.status, r.profiles[0].error) for r in report.results) == [
        ("cancelled", "not started: stopping"),
        ("captured", None),
    ]


def test_a_capture_gives_up_waiting_for_the_pod_after_pod_wait(go_app, tmp_path):
    locks = PodLocks()
    plan = reconcile(on_demand("heap"), state(pod_at("p", go_app.port)))
    with locks.hold("shop/p"):
        report = Executor(pod_locks=locks, pod_wait=0.3).execute(
            plan, store=LocalStore(tmp_path), transport=DirectTransport()
        )
    [result] = report.results
    assert (result.status, result.message) == (
        "skipped", "another capture of this pod was still in progress after 0.3 s"
    )
    assert report.history_updates == {}


def test_a_check_into_s3_is_traced_end_to_end(go_app, s3, s3_bucket, otlp_receiver, tracing):
    spec = on_demand("heap", "cpu", s3Config={"bucket": s3_bucket, "endpoint": s3.endpoint_url, "prefix": "prod",
                                              "keyLayout": "service-date"})
    target = pod_at("checkout-5d8f7c9b4-kx2lp", go_app.port, tier="backend")
    store = S3Store(s3_bucket, endpoint=s3.endpoint_url)
    run = Executor(tracer=tracing)
    report = cycle.run_check(config_name="shop/checkout", spec=spec, gather=lambda: state(target), executor=run,
                             store=store, transport=DirectTransport())
    profiles = report.execution.profiles
    assert [(p.type, p.status) for p in profiles] == [("heap", "stored"), ("cpu", "stored")]

    objects = {o["key"]: o for o in s3.objects(s3_bucket)}
    [summary] = report.summaries.values()
    start = profiles[0].key[: -len("heap.pprof")]
    assert sorted(objects) == sorted([*(p.key for p in profiles), start + "index.html", start + "summary.json"])
    assert summary.uri == f"s3://{s3_bucket}/{start}" and summary.summary_uri == f"s3://{s3_bucket}/{start}summary.json"
    heap = objects[profiles[0].key]
    assert heap["key"].startswith("prod/") and "/checkout/" in heap["key"] and heap["key"].endswith("-heap.pprof")
    assert heap["content_type"] == "application/octet-stream"
    assert heap["tags"]["tier"] == "backend" and heap["tags"]["app.kubernetes.io/name"] == "checkout"

    otlp_receiver.wait_for(lambda s: s.name == "kprof.check", count=1)
    everything = otlp_receiver.spans
    [root] = [s for s in everything if s.name == "kprof.check"]
    children = {s.name for s in otlp_receiver.children_of(root)}
    assert children == {"kprof.metrics", "kprof.capture", "kprof.upload", "kprof.summary"}
    assert root.attributes["kprof.config"] == "shop/checkout"
    assert root.attributes["kprof.pods.seen"] == 1 and root.attributes["kprof.captures.planned"] == 1
    uploads = sorted((s for s in everything if s.name == "kprof.upload"), key=lambda s: s.attributes["profile.type"])
    captures = [s for s in everything if s.name == "kprof.capture"]
    assert {s.attributes["profile.type"] for s in captures} == {"heap", "cpu"}
    assert all(s.attributes["kprof.transport"] == "direct" and s.attributes["kprof.bytes"] > 0 for s in captures)
    assert sorted(u.attributes["url.full"] for u in uploads) == sorted(f"s3://{s3_bucket}/{p.key}" for p in profiles)
    assert all(u.attributes["kprof.bucket"] == s3_bucket and u.attributes["kprof.attempts"] == 1 for u in uploads)
    # From the profile back to the trace: the object's metadata carries the trace id (the
    # summary's and the page's too, with the top function of each type).
    assert {o["metadata"]["trace-id"] for o in objects.values()} == {root.trace_id}
    assert objects[start + "summary.json"]["metadata"]["top-heap"]
    [summarised] = [s for s in everything if s.name == "kprof.summary"]
    assert summarised.attributes["url.full"] == summary.summary_uri and summarised.attributes["kprof.result"] == "stored"


def test_s3_down_spools_and_nothing_is_lost(go_app, s3, s3_bucket, tmp_path):
    inner = S3Store(s3_bucket, endpoint=s3.endpoint_url, max_attempts=1, connect_timeout=1)
    store = SpoolingStore(inner, tmp_path / "spool")
    spec = on_demand("heap", "goroutine", s3Config={"bucket": s3_bucket, "endpoint": s3.endpoint_url})
    s3.down()
    report = Executor().execute(reconcile(spec, state(pod_at("p", go_app.port))), store=store, transport=DirectTransport())
    [result] = report.results
    assert (result.status, [p.status for p in result.profiles]) == ("captured", ["spooled", "spooled"])
    assert report.history_updates == {"shop/p": {"lastOnDemandCapture": NOW}}
    assert store.pending_count == 2
    s3.up()
    flushed = store.flush()
    assert (flushed.uploaded, store.pending_count) == (2, 0)
    assert sorted(o["key"] for o in s3.objects(s3_bucket)) == sorted(p.key for p in result.profiles)


def test_check_mode_lists_keys_and_targets(tmp_path):
    spec = on_demand("heap", "cpu", seconds=7)
    report = Executor().execute(reconcile(spec, state(pod_at("p", 6061))), store=LocalStore(tmp_path),
                                transport=DirectTransport(), check_mode=True)
    targets = [p.target for p in report.results[0].profiles]
    assert targets == ["http://127.0.0.1:6061/debug/pprof/heap", "http://127.0.0.1:6061/debug/pprof/profile?seconds=7"]
    assert all(p.uri.startswith("file://") for p in report.results[0].profiles)


def test_busy_retry_delays_back_off_to_a_cap():
    assert list(executor.BusyRetry(attempts=6, first_delay=2, factor=2, max_delay=10).delays()) == [2, 4, 8, 10, 10, 10]

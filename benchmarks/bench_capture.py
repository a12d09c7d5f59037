"""Benchmark: what kprof's capture path costs over a bare HTTP GET, and how well captures overlap,
both through the product's `Executor` at its default settings (as `kprof capture` and the checks
build it), against the real Go sample app.

(a) A heap profile of at least 1 MB (the app holds allocations from `--sites` call stacks and runs
with GODEBUG=memprofilerate=1, so every one is a sample) captured by `Executor().execute` of a
one-pod plan into an in-memory store, against a bare urllib3 GET of the same URL that keeps the
bytes too. Paired: each repetition runs both, in alternating order; the figure is the median of
the per-pair ratios, for wall-clock time and for this process's CPU time. Target: wall ratio
<= 1.1.
(b) 20 concurrent 5-second CPU captures from 20 separate Go processes, one plan of 20 pods through
one `Executor()`, against a plan of one of them, wall-clock. Median of `--rounds`. Target:
ratio <= 1.3.

It builds and starts its own sample apps and stops them before it ends; about 2 minutes with the
defaults on a 2-core machine:

    python -m benchmarks.bench_capture [--repeat 15] [--sites 300000] [--apps 20] [--seconds 5] [--rounds 3]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from collections.abc import Mapping

import urllib3

from kprof_lib import reconcile
from kprof_lib.adapters.pprof.direct import DirectTransport
from kprof_lib.execution.executor import Executor
from kprof_lib.execution.ports import StoredObject
from tests.support.goapp import GoApp, GoAppFactory, build_sample_app
from tests.support.pods import ENABLED, pod

NOW = "2026-11-25T10:00:00Z"


class MemoryStore:
    """A `ProfileStore` that keeps the bytes in a dict: what is measured is the capture path."""

    description = "memory"
    bucket = None

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def uri_for(self, key: str) -> str:
        return f"memory:///{key}"

    def put(
        self, key: str, data: bytes, *, metadata: Mapping[str, str], tags: Mapping[str, str], content_type: str
    ) -> StoredObject:
        self.objects[key] = data
        return StoredObject(self.uri_for(key), key, len(data))

    def read(self, key: str, max_bytes: int) -> bytes:
        return self.objects[key][:max_bytes]

    def check(self) -> None:
        pass


def plan_for(apps: list[GoApp], profile_type: str, seconds: int = 5, now: str = NOW):
    """The plan reconcile makes for an on-demand capture of `profile_type` from each app's pod."""
    pods = [
        pod(
            f"app-{index:02d}-{app.pid}",
            "bench",
            app="bench",
            annotations={**ENABLED, "profiling.io/port": str(app.port)},
            pod_ip="127.0.0.1",
        )
        for index, app in enumerate(apps)
    ]
    spec = {"onDemand": {"enabled": True}, "profileTypes": [profile_type], "cpuProfileSeconds": seconds}
    plan = reconcile(spec, {"now": now, "pods": pods, "history": {}})
    assert len(plan.captures) == len(apps), plan.recap()
    return plan


def heap_overhead(app: GoApp, repeat: int) -> dict[str, list[float]]:
    """Per pair: kprof and bare wall-clock seconds and process CPU seconds, and the profile size."""
    executor, transport = Executor(), DirectTransport()
    bare_pool = urllib3.PoolManager(retries=False)
    url = f"{app.url}/debug/pprof/heap"
    kept: list[bytes] = []
    plan = plan_for([app], "heap")

    def kprof() -> int:
        store = MemoryStore()
        report = executor.execute(plan, store=store, transport=transport)
        assert report.results[0].status == "captured", report.results[0].message
        return sum(len(data) for data in store.objects.values())

    def bare() -> int:
        response = bare_pool.request("GET", url, timeout=60)
        assert response.status == 200 and response.data[:2] == b"\x1f\x8b"
        kept.append(response.data)
        return len(kept.pop())

    sides = {"kprof": kprof, "bare": bare}
    for warm_up in sides.values():
        warm_up()
    figures: dict[str, list[float]] = {"kprof": [], "bare": [], "kprof_cpu": [], "bare_cpu": [], "size": []}
    gc.collect()
    for index in range(repeat):
        order = ("kprof", "bare") if index % 2 == 0 else ("bare", "kprof")
        for name in order:
            start, start_cpu = time.perf_counter(), time.process_time()
            size = sides[name]()
            figures[name].append(time.perf_counter() - start)
            figures[f"{name}_cpu"].append(time.process_time() - start_cpu)
            figures["size"].append(size)
    transport.close()
    bare_pool.clear()
    return figures


def cpu_concurrency(apps: list[GoApp], seconds: int, rounds: int) -> tuple[list[float], list[float], int]:
    """Wall-clock seconds per round: one CPU capture, len(apps) at once; and the executor's
    concurrency."""
    executor, transport = Executor(), DirectTransport()

    plans = {count: plan_for(apps[:count], "cpu", seconds) for count in (1, len(apps))}

    def run(count: int) -> float:
        store = MemoryStore()
        start = time.perf_counter()
        report = executor.execute(plans[count], store=store, transport=transport)
        elapsed = time.perf_counter() - start
        assert all(r.status == "captured" for r in report.results), [r.message for r in report.results]
        return elapsed

    single, together = [], []
    for _ in range(rounds):
        single.append(run(1))
        together.append(run(len(apps)))
    transport.close()
    return single, together, executor.concurrency


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=15, help="pairs of heap captures for (a)")
    parser.add_argument("--sites", type=int, default=300_000, help="allocation stacks in the heap profile")
    parser.add_argument("--apps", type=int, default=20, help="Go processes captured at once for (b)")
    parser.add_argument("--seconds", type=int, default=5, help="CPU profile duration for (b)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of (b); the median is printed")
    args = parser.parse_args()

    factory = GoAppFactory(build_sample_app())
    try:
        heap_app = factory(env={"GODEBUG": "memprofilerate=1"})
        heap_app.load(0, hold=600, sites=args.sites)
        time.sleep(1.0)
        figures = heap_overhead(heap_app, args.repeat)
        heap_app.stop()
        wall = statistics.median(k / b for k, b in zip(figures["kprof"], figures["bare"], strict=True))
        cpu = statistics.median(k / b for k, b in zip(figures["kprof_cpu"], figures["bare_cpu"], strict=True) if b > 0)
        size = statistics.median(figures["size"])
        print(f"(a) heap capture of {size / 1e6:.2f} MB through Executor(), {args.repeat} pairs (median):")
        print(
            f"    wall: kprof {statistics.median(figures['kprof']) * 1e3:.1f} ms   "
            f"bare urllib3 GET {statistics.median(figures['bare']) * 1e3:.1f} ms   "
            f"ratio {wall:.3f}  (target <= 1.1)"
        )
        print(
            f"    client CPU: kprof {statistics.median(figures['kprof_cpu']) * 1e3:.2f} ms   "
            f"bare {statistics.median(figures['bare_cpu']) * 1e3:.2f} ms   ratio {cpu:.2f}"
        )
        apps = factory.start_many(args.apps)
        single, together, concurrency = cpu_concurrency(apps, args.seconds, args.rounds)
        one, many = statistics.median(single), statistics.median(together)
        print(
            f"(b) {args.seconds} s CPU captures through Executor() (concurrency {concurrency}), "
            f"median of {args.rounds}: one {one:.2f} s   {len(apps)} concurrent from {len(apps)} "
            f"processes {many:.2f} s"
        )
        print(f"    ratio concurrent/one: {many / one:.3f}  (target <= 1.3)")
    finally:
        factory.close()


if __name__ == "__main__":
    main()

"""Benchmark: what kprof's capture path costs over a bare HTTP GET, and how well captures overlap.

(a) A heap profile fetched with `DirectTransport` + `fetch_profile` (status, size cap, gzip check,
deadline watchdog) against a bare urllib3 GET of the same URL from the same kind of pool; median
of many interleaved repetitions. Target: ratio <= 1.1.
(b) 20 concurrent 5-second CPU captures from 20 separate Go processes (a ThreadPoolExecutor of 20)
against one 5-second CPU capture, wall-clock. Target: ratio <= 1.3.

Both baselines are measured in the same run. It builds and starts its own sample apps and stops
them before it ends:

    python -m benchmarks.bench_capture [--repeat 400] [--apps 20] [--seconds 5]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import urllib3

from kprof_lib.adapters.pprof.direct import DirectTransport
from kprof_lib.execution.capture import fetch_profile, timeout_for
from kprof_lib.execution.ports import ProfileRequest
from tests.support.goapp import GoApp, GoAppFactory, build_sample_app


def request_for(app: GoApp, profile_type: str, cpu_seconds: int = 30) -> ProfileRequest:
    return ProfileRequest(
        namespace="bench", pod=f"app-{app.pid}", pod_ip="127.0.0.1", scheme="http", port=app.port,
        base_path="/debug/pprof", profile_type=profile_type, cpu_seconds=cpu_seconds,
    )


def heap_overhead(app: GoApp, repeat: int) -> dict[str, tuple[float, float]]:
    """Median seconds per heap capture, wall-clock and this thread's CPU, for "kprof" and "bare"."""
    transport = DirectTransport()
    request = request_for(app, "heap")
    timeout = timeout_for(request)
    bare_pool = urllib3.PoolManager(retries=False)
    url = f"{app.url}/debug/pprof/heap"

    def kprof() -> None:
        fetch_profile(transport, request, timeout=timeout)

    def bare() -> None:
        response = bare_pool.request("GET", url, timeout=timeout)
        assert response.status == 200 and response.data[:2] == b"\x1f\x8b"

    sides = {"kprof": kprof, "bare": bare}
    for warm_up in sides.values():
        for _ in range(20):
            warm_up()
    wall: dict[str, list[float]] = {name: [] for name in sides}
    cpu: dict[str, list[float]] = {name: [] for name in sides}
    gc.collect()
    # Interleaved, so that drift in the machine's load touches both alike.
    for _ in range(repeat):
        for name, fn in sides.items():
            start, start_cpu = time.perf_counter(), time.thread_time()
            fn()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.thread_time() - start_cpu)
    transport.close()
    bare_pool.clear()
    return {name: (statistics.median(wall[name]), statistics.median(cpu[name])) for name in sides}


def cpu_concurrency(apps: list[GoApp], seconds: int) -> tuple[float, float]:
    """Wall-clock seconds: (one CPU capture, len(apps) at once, one per app)."""
    transport = DirectTransport()

    def capture(app: GoApp) -> int:
        request = request_for(app, "cpu", cpu_seconds=seconds)
        return len(fetch_profile(transport, request, timeout=timeout_for(request)))

    start = time.perf_counter()
    capture(apps[0])
    single = time.perf_counter() - start
    with ThreadPoolExecutor(max_workers=len(apps)) as pool:
        start = time.perf_counter()
        sizes = list(pool.map(capture, apps))
        together = time.perf_counter() - start
    transport.close()
    assert all(sizes), "every capture returned a profile"
    return single, together


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=400, help="heap captures per side for (a)")
    parser.add_argument("--apps", type=int, default=20, help="Go processes captured at once for (b)")
    parser.add_argument("--seconds", type=int, default=5, help="CPU profile duration for (b)")
    args = parser.parse_args()

    factory = GoAppFactory(build_sample_app())
    try:
        apps = factory.start_many(args.apps)
        heap = heap_overhead(apps[0], args.repeat)
        (kprof, kprof_cpu), (bare, bare_cpu) = heap["kprof"], heap["bare"]
        print(f"(a) heap capture, median of {args.repeat}: kprof {kprof * 1e3:.3f} ms   "
              f"bare urllib3 GET {bare * 1e3:.3f} ms")
        print(f"    ratio kprof/bare: {kprof / bare:.3f}  (target <= 1.1)")
        print(f"    client CPU per capture: kprof {kprof_cpu * 1e6:.0f} us   bare {bare_cpu * 1e6:.0f} us")
        single, together = cpu_concurrency(apps, args.seconds)
        print(f"(b) {args.seconds} s CPU capture: one {single:.3f} s   "
              f"{len(apps)} concurrent from {len(apps)} processes {together:.3f} s")
        print(f"    ratio concurrent/one: {together / single:.3f}  (target <= 1.3)")
    finally:
        factory.close()


if __name__ == "__main__":
    main()

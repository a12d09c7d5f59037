"""Benchmark: what reading one pod's goroutine count costs (the goroutine triggers), against a plain
GET of the same text profile, and what a batch of pods costs the operator's check.

(a) Per pod: `goroutines.read_count` through `DirectTransport` (up to the first chunk holding the
first line, the connection then closed) against `urllib.request.urlopen` reading the whole
`/debug/pprof/goroutine?debug=1` body (a new connection each time too), median of interleaved
repetitions, wall-clock and this thread's CPU. Measured with the app idle and with `--leaked`
goroutines parked by /leak; `--stacks` sample apps each leak from one stack, so the text is small
either way: the Go side (the runtime walks every goroutine) is most of the time.
(b) A batch: `--pods` pods spread over `--apps` Go processes read by `GoroutineReader` at
concurrency 16 against the same batch at concurrency 1: wall-clock per pod.

Baselines are measured in the same run. It builds and starts its own sample apps and stops them
before it ends:

    python -m benchmarks.bench_goroutines [--repeat 300] [--leaked 10000] [--apps 8] [--pods 200]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
import urllib.request

from kprof_lib.adapters.pprof import goroutines
from kprof_lib.adapters.pprof.direct import DirectTransport
from kprof_lib.state import optin
from tests.support.goapp import GoApp, GoAppFactory, build_sample_app
from tests.support.transports import CountingTransport


def request_for(app: GoApp, pod: str = "app"):
    return goroutines.request_for("bench", pod, "127.0.0.1", optin.Endpoint("http", app.port, "/debug/pprof"))


def bytes_read(transport: DirectTransport, request) -> int:
    counting = CountingTransport(transport)
    goroutines.read_count(counting, request)
    return counting.bytes_read


def per_pod(app: GoApp, repeat: int) -> dict[str, tuple[float, float, int]]:
    """Median (wall seconds, client CPU seconds) per read, and bytes received, per side."""
    transport = DirectTransport()
    request = request_for(app)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    url = f"{app.url}/debug/pprof/goroutine?debug=1"
    received = {"kprof": bytes_read(transport, request), "urllib": 0}

    def kprof() -> int:
        return goroutines.read_count(transport, request)

    def plain() -> int:
        with opener.open(url, timeout=10) as response:
            body = response.read()
        received["urllib"] = len(body)
        return int(body.split(b"\n", 1)[0].rsplit(b" ", 1)[1])

    sides = {"kprof": kprof, "urllib": plain}
    for warm_up in sides.values():
        for _ in range(20):
            warm_up()
    wall: dict[str, list[float]] = {name: [] for name in sides}
    cpu: dict[str, list[float]] = {name: [] for name in sides}
    counts: dict[str, int] = {}
    gc.collect()
    for _ in range(repeat):  # interleaved: drift in the machine's load touches both alike
        for name, read in sides.items():
            start, start_cpu = time.perf_counter(), time.thread_time()
            counts[name] = read()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.thread_time() - start_cpu)
    transport.close()
    assert abs(counts["kprof"] - counts["urllib"]) <= 2, counts
    return {name: (statistics.median(wall[name]), statistics.median(cpu[name]), received[name]) for name in sides}


def batch(apps: list[GoApp], pods: int, concurrency: int) -> float:
    """Wall-clock seconds to read `pods` counts (round-robin over the apps) at `concurrency`."""
    transport = DirectTransport()
    reader = goroutines.GoroutineReader(concurrency=concurrency)
    requests = [request_for(apps[i % len(apps)], f"pod-{i}") for i in range(pods)]
    reader.read(transport, requests[: min(pods, 2 * concurrency)])  # threads and connections made
    start = time.perf_counter()
    counts = reader.read(transport, requests)
    took = time.perf_counter() - start
    reader.close()
    transport.close()
    assert len(counts) == pods, f"{len(counts)} of {pods} read"
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=300, help="reads per side for (a)")
    parser.add_argument("--leaked", type=int, default=10000, help="goroutines parked for the second part of (a)")
    parser.add_argument("--apps", type=int, default=8, help="Go processes the batch of (b) is spread over")
    parser.add_argument("--pods", type=int, default=200, help="pods in the batch of (b)")
    args = parser.parse_args()

    factory = GoAppFactory(build_sample_app())
    try:
        apps = factory.start_many(args.apps)
        for label, leak in (("idle app", 0), (f"{args.leaked} leaked goroutines", args.leaked)):
            if leak:
                apps[0].leak(goroutines_per_second=min(10000, leak), seconds=max(1.0, leak / 10000) + 0.2)
                while apps[0].stats()["leakedGoroutines"] < leak:
                    time.sleep(0.1)
            result = per_pod(apps[0], args.repeat)
            (kw, kc, kb), (uw, uc, ub) = result["kprof"], result["urllib"]
            print(f"(a) {label}, median of {args.repeat}:")
            print(f"    kprof read_count  {kw * 1e3:7.3f} ms wall  {kc * 1e6:6.0f} us client CPU  ({kb} bytes read)")
            print(f"    urllib whole body {uw * 1e3:7.3f} ms wall  {uc * 1e6:6.0f} us client CPU  ({ub} bytes)")
            print(f"    ratio kprof/urllib: wall {kw / uw:.3f}  client CPU {kc / uc:.3f}")
        parallel = batch(apps, args.pods, goroutines.DEFAULT_CONCURRENCY)
        serial = batch(apps, args.pods, 1)
        print(f"(b) {args.pods} pods over {args.apps} processes (the first with {args.leaked} leaked goroutines):")
        print(f"    concurrency 16: {parallel:.3f} s ({parallel / args.pods * 1e3:.2f} ms per pod)")
        print(f"    concurrency 1:  {serial:.3f} s ({serial / args.pods * 1e3:.2f} ms per pod)")
        print(f"    ratio 16/1: {parallel / serial:.3f}")
    finally:
        factory.close()


if __name__ == "__main__":
    main()

"""Benchmark: reconcile over 10,000 realistic pods (~4 KB of JSON each, with PodMetrics) against
`json.loads` of the same document, measured in the same run. Target: ratio <= 0.2, i.e. deciding
costs at most a fifth of merely reading the input.

Measured fairly: every repetition has PodMetrics of its own (fresh usage figures, as every check
cycle brings, so nothing parsed in one repetition is found cached in the next), both sides run
under the same garbage collector settings with one copy of the state alive (json.loads builds its
copy; reconcile reads the one decoded for it just before, untimed), interleaved, median of
`--repeat`. Printed twice: with the garbage collector on (as in the operator) and off on both
sides. About a minute at 10,000 pods.

    python -m benchmarks.bench_reconcile [--pods 10000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time

from kprof_lib import reconcile
from tests.support.pods import ENABLED, pod, pod_metrics

SPEC = {
    "selector": {
        "labelSelector": {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["backend", "web"]}]}
    },
    "thresholds": {"cpuThresholdPercent": 80, "memoryThresholdPercent": 90},
    "onDemand": {"enabled": True, "intervalSeconds": 600},
}


def build_state(count: int, round_: int = 0) -> dict:
    """Pods in 10 namespaces and 50 Deployments; 80% opt in; varied usage (other figures for each
    `round_`); some with history."""
    pods, metrics, history = [], [], {}
    for i in range(count):
        namespace = f"team-{i % 10}"
        app = f"svc-{i % 50}"
        name = f"{app}-6d8f7c9b4-{i:05d}"
        annotations = dict(ENABLED) if i % 5 else {}
        tier = "backend" if i % 7 else "batch"
        pods.append(
            pod(
                name,
                namespace,
                app=app,
                labels={"tier": tier},
                annotations=annotations,
                owner_replicaset=f"{app}-6d8f7c9b4",
                pod_ip=f"10.{i // 65536}.{i // 256 % 256}.{i % 256}",
                containers=[
                    {
                        "name": "app",
                        "requests": {"cpu": "250m", "memory": "128Mi"},
                        "limits": {"cpu": "1", "memory": "256Mi"},
                    },
                    {"name": "sidecar", "requests": {"cpu": "50m", "memory": "32Mi"}},
                ],
            )
        )
        metrics.append(
            pod_metrics(
                name,
                namespace,
                {
                    "app": {
                        "cpu": f"{(i * 79_190 + round_ * 7_919) % 400_000_000}n",
                        "memory": f"{(i * 104729 + round_ * 613) % 160_000}Ki",
                    },
                    "sidecar": {"cpu": f"{(i + round_) % 30}m", "memory": f"{(i + round_) % 20 + 10}Mi"},
                },
            )
        )
        if i % 3 == 0:
            history[f"{namespace}/{name}"] = {
                "lastThresholdCapture": "2026-11-25T09:58:00Z",
                "lastOnDemandCapture": "2026-11-25T09:55:00Z",
            }
    return {
        "now": "2026-11-25T10:00:00Z",
        "pods": {"kind": "List", "apiVersion": "v1", "items": pods},
        "podMetrics": {"kind": "PodMetricsList", "items": metrics},
        "history": history,
    }


def measure(texts: list[str], gc_on: bool) -> tuple[list[float], list[float]]:
    """Seconds of json.loads and of reconcile for each document, interleaved, under one GC setting."""
    loads, decides = [], []
    enabled = gc.isenabled()
    try:
        for text in texts:
            gc.collect()
            (gc.enable if gc_on else gc.disable)()
            start = time.perf_counter()
            document = json.loads(text)
            loads.append(time.perf_counter() - start)
            del document
            gc.enable()
            state = json.loads(text)  # the input of reconcile, decoded untimed; the only copy alive
            gc.collect()
            (gc.enable if gc_on else gc.disable)()
            start = time.perf_counter()
            plan = reconcile(SPEC, state)
            decides.append(time.perf_counter() - start)
            del plan, state
    finally:
        (gc.enable if enabled else gc.disable)()
    return loads, decides


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pods", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    # One document per repetition (and one to warm up), each with usage figures of its own.
    texts = [json.dumps(build_state(args.pods, round_)) for round_ in range(args.repeat + 1)]
    plan = reconcile(SPEC, json.loads(texts[0]))
    per_pod = len(texts[0]) / args.pods / 1024
    print(f"pods: {args.pods}  document: {len(texts[0]) / 1e6:.1f} MB ({per_pod:.1f} KiB/pod with its metrics)")
    print(f"plan: {plan.recap()}")
    del plan
    measure(texts[:1], True)
    for gc_on in (True, False):
        loads, decides = measure(texts[1:], gc_on)
        load, decide = statistics.median(loads), statistics.median(decides)
        print(
            f"GC {'on ' if gc_on else 'off'} (both sides), median of {args.repeat}: json.loads {load * 1000:.1f} ms   "
            f"reconcile {decide * 1000:.1f} ms   ratio {decide / load:.3f}  (target <= 0.2)"
        )


if __name__ == "__main__":
    main()

"""Benchmark: reconcile over 10,000 realistic pods (~4 KB of JSON each, with PodMetrics) against
`json.loads` of the same document, measured in the same run. Target: ratio <= 0.5, i.e. deciding
costs at most half of merely reading the input.

    python -m benchmarks.bench_reconcile [--pods 10000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import gc
import json
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


def build_state(count: int) -> dict:
    """Pods in 10 namespaces and 50 Deployments; 80% opt in; varied usage; some with history."""
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
                    "app": {"cpu": f"{(i * 79_190) % 400_000_000}n", "memory": f"{(i * 104729) % 160_000}Ki"},
                    "sidecar": {"cpu": f"{i % 30}m", "memory": f"{(i % 20) + 10}Mi"},
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


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pods", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    text = json.dumps(build_state(args.pods))
    state = json.loads(text)
    load_time = best(lambda: json.loads(text), args.repeat)
    plan = reconcile(SPEC, state)
    reconcile_time = best(lambda: reconcile(SPEC, state), args.repeat)
    per_pod = len(text) / args.pods / 1024
    print(f"pods: {args.pods}  document: {len(text) / 1e6:.1f} MB ({per_pod:.1f} KiB/pod with its metrics)")
    print(f"plan: {plan.recap()}")
    print(f"json.loads: {load_time * 1000:.1f} ms   reconcile: {reconcile_time * 1000:.1f} ms")
    print(f"ratio reconcile/json.loads: {reconcile_time / load_time:.3f}  (target <= 0.5)")


if __name__ == "__main__":
    main()

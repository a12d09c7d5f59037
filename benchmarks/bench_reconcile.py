"""Benchmark: reconcile over 10,000 realistic pods (~4 KB of JSON each, with PodMetrics) against
`json.loads` of the same document, measured in the same run. Target: ratio <= 0.2, i.e. deciding
costs at most a fifth of merely reading the input.

Three forms of the same state are decided: the v1 Pods and PodMetrics as decoded (what a script
passes); the digests the operator's pod cache holds (`digest_pod`, made untimed, as the cache makes
them when a watch event arrives) beside the same PodMetrics; and those digests beside the
PodMetrics read into `PodUsage` records, as the operator's metrics reader gives them. That reading
happens at every check, so it is timed too (`usage_of` over the just-decoded items) and printed
beside, with the sum. Each is divided by json.loads of the v1 document (the cluster's state as the
API gives it); the digests also by json.loads of their own JSON form (`PodDigest.to_json`), the
smallest document that carries them.

Measured fairly: every repetition has PodMetrics of its own (fresh usage figures, as every check
cycle brings, so nothing parsed in one repetition is found cached in the next), every side runs
under the same garbage collector settings with one copy of the state alive (json.loads builds its
copy; reconcile reads the one decoded for it just before, untimed), interleaved, median of
`--repeat`. Printed twice: with the garbage collector on (as in the operator) and off on every
side. About two minutes at 10,000 pods.

    python -m benchmarks.bench_reconcile [--pods 10000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import statistics
import time

from kprof_lib import reconcile
from kprof_lib.adapters.kube.informer import digest_pod
from kprof_lib.state.podusage import usage_of
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
    `round_`); some with history; listed as the API server lists them."""
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
    # In the order the API server lists pods (its storage's key order: namespace, then name), which
    # the operator's pod cache keeps from its first LIST.
    pods.sort(key=lambda item: (item["metadata"]["namespace"], item["metadata"]["name"]))
    return {
        "now": "2026-11-25T10:00:00Z",
        "pods": {"kind": "List", "apiVersion": "v1", "items": pods},
        "podMetrics": {"kind": "PodMetricsList", "items": metrics},
        "history": history,
    }


def digest_text(text: str) -> str:
    """The document with its pods as the JSON form of their digests."""
    state = json.loads(text)
    state["pods"] = [digest_pod(p).to_json() for p in state["pods"]["items"]]
    return json.dumps(state)


def read_usage(items: list[dict]) -> list:
    """What the operator's metrics reader does to each PodMetrics as it is decoded."""
    return [usage_of(item) for item in items]


def timed(run, gc_on: bool) -> float:
    """Seconds of `run()`, after a full collection, under one GC setting."""
    gc.collect()
    (gc.enable if gc_on else gc.disable)()
    try:
        start = time.perf_counter()
        result = run()
        elapsed = time.perf_counter() - start
        del result  # freed outside the timing
        return elapsed
    finally:
        gc.enable()


def measure(texts: list[tuple[str, str]], gc_on: bool) -> dict[str, list[float]]:
    """Seconds of each side for each (v1, digest) document, interleaved, under one GC setting."""
    times: dict[str, list[float]] = {
        side: [] for side in ("loads", "loads digests", "pods", "digests", "read usage", "usage")
    }
    for text, digests in texts:
        times["loads"].append(timed(functools.partial(json.loads, text), gc_on))
        times["loads digests"].append(timed(functools.partial(json.loads, digests), gc_on))
        state = json.loads(text)  # the input of reconcile, decoded untimed; the only copy alive
        times["pods"].append(timed(functools.partial(reconcile, SPEC, state), gc_on))
        state["pods"] = [digest_pod(p) for p in state["pods"]["items"]]  # as the pod cache holds them
        times["digests"].append(timed(functools.partial(reconcile, SPEC, state), gc_on))
        state = json.loads(text)  # fresh PodMetrics, as just decoded by the reader
        state["pods"] = [digest_pod(p) for p in state["pods"]["items"]]
        items = state["podMetrics"]["items"]
        times["read usage"].append(timed(functools.partial(read_usage, items), gc_on))
        state["podMetrics"] = read_usage(items)
        del items
        times["usage"].append(timed(functools.partial(reconcile, SPEC, state), gc_on))
        del state
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pods", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    # One document per repetition (and one to warm up), each with usage figures of its own.
    texts = []
    for round_ in range(args.repeat + 1):
        text = json.dumps(build_state(args.pods, round_))
        texts.append((text, digest_text(text)))
    first = json.loads(texts[0][0])
    plan = reconcile(SPEC, first)
    first["pods"] = [digest_pod(p) for p in first["pods"]["items"]]
    assert reconcile(SPEC, first).to_dict() == plan.to_dict(), "digests decide as their pods"
    first["podMetrics"] = read_usage(first["podMetrics"]["items"])
    assert reconcile(SPEC, first).to_dict() == plan.to_dict(), "PodUsage decides as its PodMetrics"
    per_pod = len(texts[0][0]) / args.pods / 1024
    print(f"pods: {args.pods}  document: {len(texts[0][0]) / 1e6:.1f} MB ({per_pod:.1f} KiB/pod with its metrics)")
    print(f"  with digests for pods: {len(texts[0][1]) / 1e6:.1f} MB")
    print(f"plan: {plan.recap()}")
    del plan, first
    measure(texts[:1], True)
    for gc_on in (True, False):
        times = {side: statistics.median(values) for side, values in measure(texts[1:], gc_on).items()}
        ms = {side: f"{value * 1000:.1f} ms" for side, value in times.items()}
        label = f"GC {'on ' if gc_on else 'off'} (every side), median of {args.repeat}:"
        print(f"{label} json.loads {ms['loads']} (digest document {ms['loads digests']})")
        print(
            f"  reconcile over v1 Pods {ms['pods']}: ÷ json.loads {times['pods'] / times['loads']:.3f}\n"
            f"  reconcile over digests {ms['digests']}: ÷ json.loads {times['digests'] / times['loads']:.3f}, "
            f"÷ json.loads of the digest document {times['digests'] / times['loads digests']:.3f}\n"
            f"  reconcile over digests and PodUsage {ms['usage']}: ÷ json.loads "
            f"{times['usage'] / times['loads']:.3f}  (target <= 0.2)\n"
            f"    PodMetrics read into PodUsage by the reader {ms['read usage']}; the two together "
            f"÷ json.loads {(times['usage'] + times['read usage']) / times['loads']:.3f}"
        )


if __name__ == "__main__":
    main()

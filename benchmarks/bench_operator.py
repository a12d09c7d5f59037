"""Benchmark: the operator against a real control plane of its own (tests.support.controlplane),
through the front of tests/kube_emulator, which logs every request and reports the pod metrics
chosen here (idle usage, so a check decides about every pod and captures none).

1. API requests per check cycle, 5,000 pods in 10 namespaces: one config selecting all of them
   (target: one metrics LIST cluster-wide, zero per-pod GETs; it is in `platform`, which the
   installer names with --cluster-wide-namespaces, since a config selects only its own namespace
   otherwise), then one config per namespace
   (target: one metrics LIST per namespace). Counted from the front's request log between the
   start and the end of one cycle, by method and path (names collapsed).
2. Operator RSS with 10,000 pods in its cache (target <= 150 MB): a real `kprof run` subprocess,
   VmRSS from /proc/PID/status once /readyz says the caches are synced, and again after one check
   that decides about every pod from its PodMetrics (one for every pod, each with usage of its
   own), and the peak (VmHWM) by then, next to the VmRSS of an idle Python process that imports
   the same modules.

Pods are written straight into etcd (`ControlPlane.store_pods`): what is counted and measured is
the operator, and creating 10,000 pods through the API server takes minutes here. About 30 s with
the defaults.

    python -m benchmarks.bench_operator [--pods 5000] [--rss-pods 10000]
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.kube_emulator import KubeFront
from tests.operator_support import (
    OperatorProcess,
    OperatorThread,
    bench_control_plane,
    create_config,
    wait_until,
)
from tests.support.controlplane import ControlPlane
from tests.support.pods import ENABLED, pod

NAMESPACES = 10
RSS_TARGET_MB = 150
# Usage below every threshold (seed()): the cycle decides about every pod but captures none, so
# what is counted is the check itself.
# The one namespace whose configs may select every namespace (the installer's choice).
CLUSTER_WIDE = "platform"
SPEC = {
    "thresholds": {"cpuThresholdPercent": 80, "memoryThresholdPercent": 90, "checkIntervalSeconds": 3600},
    "profileTypes": ["heap"],
}


TEAMS = [f"team-{index}" for index in range(NAMESPACES)]


def pods(count: int) -> list[dict[str, Any]]:
    """`count` pods of Deployments spread over the team namespaces, about 4 KB of JSON each."""
    made = []
    for i in range(count):
        app = f"svc-{i % 50}"
        made.append(
            pod(
                f"{app}-6d8f7c9b4-{i:05d}",
                TEAMS[i % NAMESPACES],
                app=app,
                labels={"tier": "backend"},
                annotations=dict(ENABLED),
                owner_replicaset=f"{app}-6d8f7c9b4",
                pod_ip=f"10.{i // 65536}.{i // 256 % 256}.{i % 256}",
            )
        )
    return made


def seed(plane: ControlPlane, front: KubeFront, count: int) -> int:
    """Stores the pods and gives each idle usage of its own; returns the JSON size of one pod."""
    made = pods(count)
    plane.store_pods(made)
    for i, item in enumerate(made):
        usage = {"app": {"cpu": f"{(i * 7919) % 150_000_000}n", "memory": f"{i % 64 + 16}Mi"}}
        front.set_pod_metrics(item["metadata"]["namespace"], item["metadata"]["name"], usage)
    return len(json.dumps(made[0]))


def collapse(path: str) -> str:
    """A request path with object names replaced, so requests group by kind of call."""
    path = re.sub(r"/namespaces/team-\d+/", "/namespaces/{ns}/", path)
    path = re.sub(r"/(profilingconfigs|pods|configmaps|leases|events)/[^/]+", r"/\1/{name}", path)
    return path


def one_cycle(front: KubeFront, operator: OperatorThread, checks: int) -> tuple[list[Any], float]:
    """Start every config's check now and return the requests made until all of them are done."""

    def done() -> float:
        text = operator.metrics()
        return sum(
            float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("kprof_checks_total{")
        )

    before = done()
    front.reset_requests()
    started = time.perf_counter()
    operator.operator.scheduler.reschedule_all()
    wait_until(lambda: done() >= before + checks, 120, "the check cycle")
    elapsed = time.perf_counter() - started
    return front.requests, elapsed


def report_requests(title: str, requests: list[Any], elapsed: float) -> dict[str, int]:
    counts = collections.Counter(f"{r.method} {collapse(r.path)}{' (watch)' if r.is_watch else ''}" for r in requests)
    print(f"\n{title}: {sum(counts.values())} API requests in one cycle ({elapsed:.2f} s)")
    for line, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"  {count:6d}  {line}")
    return counts


def bench_requests(pods: int) -> bool:
    ok = True
    with (
        tempfile.TemporaryDirectory() as tmp,
        bench_control_plane(CLUSTER_WIDE, *TEAMS) as plane,
        KubeFront(plane) as front,
    ):
        started = time.perf_counter()
        seed(plane, front, pods)
        print(
            f"seeded {pods} pods and their PodMetrics in {NAMESPACES} namespaces "
            f"({time.perf_counter() - started:.1f} s)"
        )
        kubeconfig = front.write_kubeconfig(Path(tmp) / "kubeconfig")
        create_config(plane, "everything", CLUSTER_WIDE, SPEC)
        operator = OperatorThread(
            kubeconfig, Path(tmp), leader_elect=False, cluster_wide_namespaces=(CLUSTER_WIDE,)
        ).start()
        try:
            wait_until(lambda: operator.operator.wait_synced(1), 120, "the caches")
            wait_until(lambda: "kprof_checks_total{" in operator.metrics(), 60, "the first check")
            requests, elapsed = one_cycle(front, operator, 1)
            counts = report_requests(f"1 config selecting all {pods} pods", requests, elapsed)
            metric_lists = counts.get("GET /apis/metrics.k8s.io/v1beta1/pods", 0)
            per_pod = sum(n for line, n in counts.items() if line.startswith("GET ") and "/pods/{name}" in line)
            print(f"  -> metrics LISTs: {metric_lists} cluster-wide (target 1), per-pod GETs: {per_pod} (target 0)")
            ok &= metric_lists == 1 and per_pod == 0

            for team in TEAMS:
                create_config(plane, team, team, {**SPEC, "selector": {"namespace": team}})
            wait_until(lambda: len(operator.operator.scheduler.keys()) == NAMESPACES + 1, 30, "the new configs")
            wait_until(lambda: operator.operator.scheduler.in_flight == 0, 60, "their first checks")
            time.sleep(1)
            requests, elapsed = one_cycle(front, operator, NAMESPACES + 1)
            counts = report_requests(
                f"{NAMESPACES + 1} configs: one per namespace and the one above", requests, elapsed
            )
            per_namespace = counts.get("GET /apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods", 0)
            per_pod = sum(n for line, n in counts.items() if line.startswith("GET ") and "/pods/{name}" in line)
            print(
                f"  -> metrics LISTs: {per_namespace} per-namespace (target {NAMESPACES}) + "
                f"{counts.get('GET /apis/metrics.k8s.io/v1beta1/pods', 0)} cluster-wide (target 1), "
                f"per-pod GETs: {per_pod} (target 0)"
            )
            ok &= per_namespace == NAMESPACES and per_pod == 0
        finally:
            operator.stop()
    return ok


def start_operator(kubeconfig: Path, work_dir: Path) -> OperatorProcess:
    """A real `kprof run`, not electing a leader, whose configs in `platform` may select everything."""
    return OperatorProcess(
        kubeconfig, work_dir, args=["--no-leader-elect", "--cluster-wide-namespaces", CLUSTER_WIDE], name="kprof run"
    )


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} for {pid}")


BASELINE = """
import sys, time
import kprof_lib.runtimes.cli, kprof_lib.runtimes.commands.run
import kprof_lib.runtimes.operator.app, kprof_lib.adapters.tracing
print("imported", flush=True)
time.sleep(60)
"""


def baseline_rss() -> float:
    process = subprocess.Popen(
        [sys.executable, "-c", BASELINE], stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parent.parent
    )
    try:
        process.stdout.readline()
        time.sleep(0.5)
        return rss_mb(process.pid)
    finally:
        process.kill()
        process.wait(10)
        process.stdout.close()


def bench_rss(pods: int) -> bool:
    tmp = Path(tempfile.mkdtemp(prefix="kprof-bench-"))
    try:
        with bench_control_plane(CLUSTER_WIDE, *TEAMS) as plane, KubeFront(plane) as front:
            started = time.perf_counter()
            size = seed(plane, front, pods)
            print(f"\nseeded {pods} pods ({time.perf_counter() - started:.1f} s); about {size} bytes of JSON each")
            operator = start_operator(front.write_kubeconfig(tmp / "kubeconfig"), tmp / "op")
            try:
                started = time.perf_counter()
                operator.wait_ready(timeout=300)
                synced = time.perf_counter() - started
                time.sleep(2)  # let the LIST pages' garbage be collected
                operator_rss = rss_mb(operator.process.pid)
                cached = front.count("GET", r"^/api/v1/pods$", watch=False)
                # Then one check deciding about every cached pod (idle usage: nothing captured).
                create_config(plane, "everything", CLUSTER_WIDE, SPEC)
                status_path = r"^/apis/profiling\.io/v1alpha1/namespaces/platform/profilingconfigs/everything/status$"
                wait_until(lambda: front.count("PATCH", status_path), 120, "the check of every pod")
                time.sleep(1)
                checked_rss = rss_mb(operator.process.pid)
                peak_rss = rss_mb(operator.process.pid, "VmHWM")
                metrics_lists = front.count("GET", r"^/apis/metrics\.k8s\.io/v1beta1/pods$")
            finally:
                operator.terminate()
        idle = baseline_rss()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"kprof run with {pods} pods cached (synced in {synced:.1f} s, {cached} LIST pages): "
        f"VmRSS {operator_rss:.1f} MB (target <= {RSS_TARGET_MB} MB)"
    )
    print(
        f"  ... after one check deciding about all {pods} ({metrics_lists} PodMetrics LIST of {pods}): "
        f"VmRSS {checked_rss:.1f} MB, peak (VmHWM) {peak_rss:.1f} MB"
    )
    print(f"idle Python with the same imports:            VmRSS {idle:.1f} MB")
    print(
        f"  -> ratio {operator_rss / idle:.2f}; the cache costs {operator_rss - idle:.1f} MB, "
        f"{(operator_rss - idle) * 1024 * 1024 / pods:.0f} bytes a pod"
    )
    return max(operator_rss, checked_rss, peak_rss) <= RSS_TARGET_MB


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_operator", description=__doc__.split("\n")[0])
    parser.add_argument("--pods", type=int, default=5000, help="pods for the request count (default 5000)")
    parser.add_argument("--rss-pods", type=int, default=10_000, help="pods for the RSS figure (default 10000)")
    args = parser.parse_args(argv)
    requests_ok = bench_requests(args.pods)
    rss_ok = bench_rss(args.rss_pods)
    print(f"\nrequests per cycle: {'met' if requests_ok else 'MISSED'}; RSS: {'met' if rss_ok else 'MISSED'}")
    return 0 if requests_ok and rss_ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: one `kprof run` replica at 10,000, 50,000 and 100,000 pods (10% of them opted in, one
ProfilingConfig selecting all of them), each figure beside a baseline measured in the same run:

- RSS after sync (VmRSS once the caches are loaded) and peak RSS (VmHWM after the check cycles),
  beside an idle Python process with the operator's imports;
- time to first check (start of the process to the end of its first check) ÷ a bare lister (a
  Python process that imports the kubernetes client, pages through the same pod LIST with
  `json.loads` and reads the PodMetrics list once, then exits);
- CPU of one check cycle (the process's CPU between the ends of two consecutive checks, less its
  idle rate, measured over a quiet window between them, times the interval) ÷ a bare GET +
  `json.loads` of the same PodMetrics list (this thread's CPU).

Medians of `--cycles` cycles and of 3 bare runs. Every cycle sees new usage figures, as a real
metrics-server's. Usage is below every threshold, so every cycle decides about every opted-in pod
and captures none.

Two ways to run the cluster. `emulated` (the big sizes): a real control plane of its own whose
pods are written straight into etcd (`ControlPlane.store_pods`; the API server's create path takes
~18 s per 1,000 here) and whose PodMetrics the front of tests/kube_emulator answers, the operator
talking through that front. `real` (a smaller size, to check the emulation does not flatter): pods
created through the API server, usage from the real metrics-server (scraping the fake kubelet,
tests.support.nodeagent), the operator talking to the API server directly.

    python -m benchmarks.bench_scale [--sizes 10000,50000,100000] [--real 2000] [--cycles 3]

With the defaults it takes about 12 minutes on a 2-core machine (most of it the API server
serving 100,000 pods); `--sizes 10000 --real 0` about 2.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.bench_operator import CLUSTER_WIDE, NAMESPACES, TEAMS, baseline_rss, rss_mb, start_operator
from tests.kube_emulator import KubeFront
from tests.operator_support import bench_control_plane, create_config, create_pods, wait_until
from tests.support.controlplane import NODE_NAME, ControlPlane
from tests.support.pods import ENABLED, pod

REPO = Path(__file__).resolve().parent.parent
CHECK_INTERVAL = 20
IDLE_WINDOW = 5.0
SPEC = {
    "thresholds": {"cpuThresholdPercent": 80, "memoryThresholdPercent": 90, "checkIntervalSeconds": CHECK_INTERVAL},
    "profileTypes": ["heap"],
}
METRICS_PATH = "/apis/metrics.k8s.io/v1beta1/pods"
TICKS = os.sysconf("SC_CLK_TCK")

BARE_LISTER = """
import json, sys, time
from kubernetes import config
api = config.new_client_from_config(sys.argv[1])
def get(path, query):
    answer = api.call_api(path, "GET", query_params=query, header_params={"Accept": "application/json"},
                          auth_settings=["BearerToken"], _preload_content=False, _return_http_data_only=True,
                          _request_timeout=120)
    return json.loads(answer.data)
token, count = None, 0
while True:
    page = get("/api/v1/pods", [("limit", "500")] + ([("continue", token)] if token else []))
    count += len(page["items"])
    token = page["metadata"].get("continue")
    del page
    if not token:
        break
count_metrics = len(get("/apis/metrics.k8s.io/v1beta1/pods", [])["items"])
print(count, count_metrics)
"""


def make_pods(count: int, node: str | None = None) -> Iterator[dict[str, Any]]:
    """`count` pods of 50 Deployments over the team namespaces, every tenth opted in."""
    for i in range(count):
        app = f"svc-{i % 50}"
        made = pod(
            f"{app}-6d8f7c9b4-{i:06d}",
            TEAMS[i % NAMESPACES],
            app=app,
            labels={"tier": "backend"},
            annotations=dict(ENABLED) if i % 10 == 0 else {},
            owner_replicaset=f"{app}-6d8f7c9b4",
            pod_ip=f"10.{i // 65536}.{i // 256 % 256}.{i % 256}",
        )
        if node is not None:
            made["spec"]["nodeName"] = node
        yield made


def usage(i: int, round_: int) -> dict[str, dict[str, str]]:
    """Idle usage (below 80% of the 250m / 128Mi requests), other figures in every round."""
    return {"app": {"cpu": f"{(i * 7919 + round_ * 104729) % 150_000_000}n", "memory": f"{(i + round_) % 64 + 16}Mi"}}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def bare_lister(kubeconfig: Path, pods: int) -> float:
    """Seconds from the start of a bare lister process to its exit."""
    started = time.perf_counter()
    answer = subprocess.run(
        [sys.executable, "-c", BARE_LISTER, str(kubeconfig)], cwd=REPO, capture_output=True, text=True
    )
    elapsed = time.perf_counter() - started
    if answer.returncode != 0:
        raise RuntimeError(f"the bare lister failed ({answer.returncode}):\n{answer.stderr[-3000:]}")
    listed = int(answer.stdout.split()[0])
    assert listed >= pods, f"the bare lister saw {listed} pods, not {pods}"
    return elapsed


def bare_metrics_cpu(kubeconfig: Path) -> float:
    """This thread's CPU seconds for GET + json.loads of the cluster-wide PodMetrics list."""
    from kubernetes import config

    api = config.new_client_from_config(str(kubeconfig))
    try:
        started = time.thread_time()
        answer = api.call_api(
            METRICS_PATH,
            "GET",
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
            _preload_content=False,
            _return_http_data_only=True,
            _request_timeout=120,
        )
        items = json.loads(answer.data)["items"]
        spent = time.thread_time() - started
        assert items, "no PodMetrics"
        return spent
    finally:
        api.close()


@dataclass
class Figures:
    mode: str
    pods: int
    rss_synced: float
    peak: float
    idle: float
    first_check: float
    bare_list: float
    cycle_cpu: float
    bare_cpu: float
    cycles: int

    def lines(self) -> list[str]:
        return [
            f"{self.mode} {self.pods} pods ({self.pods // 10} opted in), one config selecting all:",
            f"  RSS after sync {self.rss_synced:.0f} MB, peak (VmHWM) {self.peak:.0f} MB; idle Python with the "
            f"same imports {self.idle:.0f} MB",
            f"  time to first check {self.first_check:.1f} s ÷ bare lister {self.bare_list:.1f} s = "
            f"{self.first_check / self.bare_list:.2f}",
            f"  cycle CPU {self.cycle_cpu:.3f} s ÷ bare GET + parse of the metrics list {self.bare_cpu:.3f} s = "
            f"{self.cycle_cpu / self.bare_cpu:.2f}  (median of {self.cycles})",
        ]

    def row(self) -> str:
        return (
            f"| {self.mode} | {self.pods:,} | {self.rss_synced:.0f} | {self.peak:.0f} | {self.idle:.0f} | "
            f"{self.first_check:.1f} ÷ {self.bare_list:.1f} = {self.first_check / self.bare_list:.2f} | "
            f"{self.cycle_cpu:.3f} ÷ {self.bare_cpu:.3f} = {self.cycle_cpu / self.bare_cpu:.2f} |"
        )


@contextlib.contextmanager
def cluster(mode: str, count: int, tmp: Path) -> Iterator[tuple[Path, Any]]:
    """A seeded cluster; yields (the operator's kubeconfig, a callable giving new usage to every pod)."""
    metrics = mode == "real"
    with bench_control_plane(CLUSTER_WIDE, *TEAMS, metrics=metrics) as plane:
        started = time.perf_counter()
        if mode == "real":
            create_pods(plane, make_pods(count, NODE_NAME))
            assert plane.agent is not None
            # Every pod's container is this process: the node agent reports its real (rising) CPU.
            for made in make_pods(count):
                plane.agent.add(made["metadata"]["namespace"], made["metadata"]["name"], "app", os.getpid())
            print(f"  created {count} pods through the API in {time.perf_counter() - started:.0f} s", flush=True)
            create_config(plane, "everything", CLUSTER_WIDE, SPEC)
            wait_for_metrics(plane, count)
            yield plane.kubeconfig, lambda round_: None
            return
        plane.store_pods(make_pods(count))
        print(f"  stored {count} pods in etcd in {time.perf_counter() - started:.0f} s", flush=True)
        with KubeFront(plane) as front:
            names = [(m["metadata"]["namespace"], m["metadata"]["name"]) for m in make_pods(count)]

            def refresh(round_: int) -> None:
                for i, (namespace, name) in enumerate(names):
                    front.set_pod_metrics(namespace, name, usage(i, round_))

            refresh(0)
            create_config(plane, "everything", CLUSTER_WIDE, SPEC)
            yield front.write_kubeconfig(tmp / "kubeconfig"), refresh


def wait_for_metrics(plane: ControlPlane, count: int) -> None:
    from kprof_lib.adapters.kube.reads import get_json

    def reported() -> bool:
        try:
            return len(get_json(plane.api(), METRICS_PATH, timeout=60)["items"]) >= count
        except Exception:
            return False

    wait_until(reported, 180, f"metrics-server to report {count} pods")


def measure(mode: str, count: int, cycles: int) -> Figures:
    tmp = Path(tempfile.mkdtemp(prefix="kprof-bench-scale-"))
    try:
        with cluster(mode, count, tmp) as (kubeconfig, refresh):
            bare_list = statistics.median(bare_lister(kubeconfig, count) for _ in range(3))
            bare_cpu = statistics.median(bare_metrics_cpu(kubeconfig) for _ in range(3))
            started = time.perf_counter()
            operator = start_operator(kubeconfig, tmp / "op")
            try:
                pid = operator.process.pid

                def checks_done() -> list[dict[str, Any]]:
                    return operator.find_logs(lambda r: r.get("reason") == "done" and r.get("config"))

                operator.wait_for_log(lambda r: r.get("action") == "synced", 600, "the caches to sync")
                time.sleep(1)
                rss_synced = rss_mb(pid)
                wait_until(lambda: checks_done(), 600, "the first check")
                first_check = time.perf_counter() - started
                [first] = checks_done()
                assert first.get("activePods") == count // 10, first
                spent = []
                for round_ in range(1, cycles + 1):
                    refresh(round_)
                    ended, ended_cpu = time.perf_counter(), cpu_seconds(pid)
                    # The idle rate (informers, scheduler, endpoints) over a quiet window between
                    # checks, taken off the interval: the cycle is what the check itself costs.
                    time.sleep(1)
                    quiet, quiet_cpu = time.perf_counter(), cpu_seconds(pid)
                    time.sleep(IDLE_WINDOW)
                    idle_rate = (cpu_seconds(pid) - quiet_cpu) / (time.perf_counter() - quiet)
                    wait_until(lambda n=round_: len(checks_done()) > n, CHECK_INTERVAL * 10, f"check {round_ + 1}")
                    spent.append(cpu_seconds(pid) - ended_cpu - idle_rate * (time.perf_counter() - ended))
                peak = rss_mb(pid, "VmHWM")
            finally:
                operator.terminate()
                operator.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    cycle_cpu = statistics.median(spent)
    return Figures(mode, count, rss_synced, peak, baseline_rss(), first_check, bare_list, cycle_cpu, bare_cpu, cycles)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_scale", description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,50000,100000", help="pod counts, emulated (comma-separated)")
    parser.add_argument("--real", type=int, default=2000, help="pods for the real-control-plane run (0: none)")
    parser.add_argument("--cycles", type=int, default=3, help="check cycles measured at each size")
    args = parser.parse_args(argv)
    runs = [("real", args.real), ("emulated", args.real)] if args.real else []
    runs += [("emulated", int(size)) for size in args.sizes.split(",") if size]
    results = []
    for mode, count in runs:
        print(f"{mode}, {count} pods ...", flush=True)
        figures = measure(mode, count, args.cycles)
        results.append(figures)
        print("\n".join(figures.lines()), flush=True)
    print(
        "\n| cluster | pods | RSS after sync MB | peak RSS MB | idle Python MB | first check ÷ bare lister (s) "
        "| cycle CPU ÷ bare GET + parse (s) |"
    )
    print("|---|---|---|---|---|---|---|")
    for figures in results:
        print(figures.row())
    return 0


if __name__ == "__main__":
    sys.exit(main())

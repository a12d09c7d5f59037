"""Benchmark: a node agent's cost does not depend on the size of the cluster. A real control plane of
its own (tests.support.controlplane, no metrics-server), `NODE_PODS` opted-in pods on the agent's
node and the rest spread over ten other nodes; a real `kprof node` process reading a kubelet
stand-in (tests.support.nodeagent) that reports usage below every threshold, so each check decides
about all of the node's pods and captures none, and one config selecting every pod.

For each cluster size (first `--small` pods, then seeded up to `--large` with the bulk creator of
the operator's benchmarks), `--runs` fresh agent processes in turn, each measured the same way:
VmRSS once /readyz says the caches are synced, then VmRSS and VmHWM after `--checks` checks, and the
process's CPU seconds (utime + stime) from the end of its second check to the end of its
(2 + checks)-th, per check (`CONFIGS` configs select every pod, so that is `CONFIGS` checks a period;
the figure includes whatever else the agent did meanwhile: watches, scrapes, report writes). Printed
as the large cluster's figure over the small one's (medians of the runs): the target is a ratio
within 0.9-1.1 for RSS and cycle CPU.

    python -m benchmarks.bench_node [--small 1000] [--large 10000] [--runs 2] [--checks 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.operator_support import OperatorProcess, bench_control_plane, create_config, create_pods, wait_until
from tests.support.controlplane import ControlPlane
from tests.support.nodeagent import NodeAgent
from tests.support.pods import ENABLED, pod

NODE = "bench-node"
NODE_PODS = 100
OTHER_NODES = [f"other-{index}" for index in range(10)]
NAMESPACES = [f"team-{index}" for index in range(10)]
CLUSTER_WIDE = "platform"
CHECKS = 3  # check periods measured per agent (--checks): more average out the odd report write
# Configs selecting every pod: as many checks per period, so the CPU measured is well above noise.
CONFIGS = 5
CHECK_INTERVAL = 10
# Requests far above what the stand-in process uses: no threshold is crossed.
SPEC = {
    "selector": {},
    "thresholds": {"cpuThresholdPercent": 80, "memoryThresholdPercent": 90, "checkIntervalSeconds": CHECK_INTERVAL},
    "profileTypes": ["heap"],
}
TARGET = (0.9, 1.1)


def make_pods(start: int, count: int, *, on_node: bool) -> list[dict[str, Any]]:
    made = []
    for i in range(start, start + count):
        app = f"svc-{i % 50}"
        item = pod(
            f"{app}-6d8f7c9b4-{i:06d}",
            NAMESPACES[i % len(NAMESPACES)],
            app=app,
            annotations={**ENABLED, "profiling.io/port": "6060"},
            owner_replicaset=f"{app}-6d8f7c9b4",
            pod_ip=f"10.{i // 65536}.{i // 256 % 256}.{i % 256}",
        )
        item["spec"]["nodeName"] = NODE if on_node else OTHER_NODES[i % len(OTHER_NODES)]
        made.append(item)
    return made


def status_figures(pid: int) -> dict[str, float]:
    figures = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            figures[name] = int(value.split()[0]) / 1024
    return figures


def cpu_seconds(pid: int) -> float:
    """CPU time of every thread of the process, in nanoseconds' precision (schedstat's first field:
    utime + stime count in clock ticks of 10 ms, as coarse as one check)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            continue  # a thread that ended meanwhile
    return total / 1e9


def checks_done(agent: OperatorProcess) -> int:
    return len(agent.find_logs(lambda r: r.get("action") == "check" and r.get("reason") == "done"))


def measure(plane: ControlPlane, kubelet: NodeAgent, work: Path, checks: int) -> dict[str, float]:
    """One fresh agent: RSS synced, RSS and peak after the checks, CPU per check period."""
    agent = OperatorProcess(
        plane.kubeconfig,
        work,
        name="kprof node",
        command_name="node",
        args=[
            "--node-name",
            NODE,
            "--kubelet-url",
            f"http://127.0.0.1:{kubelet.port}",
            "--no-leader-elect",
            "--cluster-wide-namespaces",
            CLUSTER_WIDE,
        ],
    )
    try:
        agent.wait_ready(timeout=120)
        synced = status_figures(agent.process.pid)["VmRSS"]
        wait_until(lambda: checks_done(agent) >= 2 * CONFIGS, 60, lambda: f"two checks:\n{agent.output()}", 0.05)
        cpu_start, plane_start, started = cpu_seconds(agent.process.pid), plane_cpu(plane), time.perf_counter()
        last = (2 + checks) * CONFIGS
        wait_until(lambda: checks_done(agent) >= last, 30 * checks, lambda: f"the checks:\n{agent.output()}", 0.05)
        cpu = (cpu_seconds(agent.process.pid) - cpu_start) / (checks * CONFIGS)
        # What the control plane did meanwhile (it shares the machine's cores with the agent).
        plane_rate = (plane_cpu(plane) - plane_start) / (time.perf_counter() - started)
        after = status_figures(agent.process.pid)
        recap = agent.find_logs(lambda r: r.get("action") == "check" and r.get("reason") == "done")[-1]["msg"]
    finally:
        agent.terminate()
    return {
        "synced": synced,
        "rss": after["VmRSS"],
        "peak": after["VmHWM"],
        "cpu": cpu,
        "plane": plane_rate,
        "recap": recap,
    }


def plane_cpu(plane: ControlPlane) -> float:
    """CPU seconds of the control plane's processes (etcd, kube-apiserver) so far."""
    return sum(cpu_seconds(part.process.pid) for part in plane.processes)


def settle(plane: ControlPlane, quiet: float, timeout: float = 180) -> float:
    """Waits until the control plane's CPU rate over 10 s is at most `quiet` (cores; what it was
    before the seeding), so that the large size is not measured beside the seeding's aftermath
    (compaction, garbage collection); returns the seconds waited."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        before = plane_cpu(plane)
        time.sleep(10)
        if (plane_cpu(plane) - before) / 10 <= quiet:
            break
    return time.perf_counter() - started


def run_size(
    plane: ControlPlane, kubelet: NodeAgent, work: Path, total: int, runs: int, checks: int
) -> dict[str, float]:
    results = [measure(plane, kubelet, work / f"{total}-{index}", checks) for index in range(runs)]
    for index, result in enumerate(results):
        print(
            f"  {total:>7} pods, run {index + 1}: VmRSS synced {result['synced']:.1f} MB, after {checks} checks "
            f"{result['rss']:.1f} MB (peak {result['peak']:.1f}), CPU {result['cpu'] * 1000:.1f} ms per check "
            f"(control plane meanwhile {result['plane']:.2f} cores); "
            f"last: {result['recap']}"
        )
    return {key: statistics.median(r[key] for r in results) for key in ("synced", "rss", "peak", "cpu", "plane")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_node", description=__doc__.split("\n")[0])
    parser.add_argument("--small", type=int, default=1000, help="pods in the small cluster (default 1000)")
    parser.add_argument("--large", type=int, default=10_000, help="pods in the large cluster (default 10000)")
    parser.add_argument("--runs", type=int, default=2, help="agent processes measured per size (default 2)")
    parser.add_argument(
        "--checks", type=int, default=CHECKS, help=f"check periods measured per agent (default {CHECKS})"
    )
    options = parser.parse_args(argv)
    # The process all the node's pods stand for: idle, so nothing crosses a threshold.
    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(100000)"])
    kubelet = NodeAgent()
    try:
        with tempfile.TemporaryDirectory() as tmp, bench_control_plane(CLUSTER_WIDE, *NAMESPACES) as plane:
            node_pods = make_pods(0, NODE_PODS, on_node=True)
            for item in node_pods:
                kubelet.add(item["metadata"]["namespace"], item["metadata"]["name"], "app", idle.pid)
            started = time.perf_counter()
            create_pods(plane, node_pods + make_pods(NODE_PODS, options.small - NODE_PODS, on_node=False))
            print(f"seeded {options.small} pods, {NODE_PODS} on {NODE} ({time.perf_counter() - started:.1f} s)")
            for index in range(CONFIGS):
                create_config(plane, f"everything-{index}", CLUSTER_WIDE, SPEC)
            small = run_size(plane, kubelet, Path(tmp), options.small, options.runs, options.checks)
            started = time.perf_counter()
            create_pods(plane, make_pods(options.small, options.large - options.small, on_node=False), threads=16)
            print(f"seeded {options.large - options.small} more pods ({time.perf_counter() - started:.1f} s)")
            waited = settle(plane, max(0.05, small["plane"] * 1.5))
            print(f"control plane settled after {waited:.0f} s")
            large = run_size(plane, kubelet, Path(tmp), options.large, options.runs, options.checks)
    finally:
        kubelet.close()
        idle.kill()
        idle.wait()
    ok = True
    print(f"\nnode agent, {NODE_PODS} pods on its node: {options.large} pods in the cluster vs {options.small}")
    for key, title in (
        ("synced", "VmRSS synced"),
        ("rss", "VmRSS after checks"),
        ("peak", "VmHWM"),
        ("cpu", "CPU per check"),
    ):
        ratio = large[key] / small[key]
        unit = "ms" if key == "cpu" else "MB"
        scale = 1000 if key == "cpu" else 1
        print(
            f"  {title:<22} {large[key] * scale:8.1f} {unit} vs {small[key] * scale:8.1f} {unit}  -> ratio {ratio:.3f}"
        )
        if key in ("rss", "cpu"):
            ok &= TARGET[0] <= ratio <= TARGET[1]
    print(f"  target: RSS and CPU ratios within {TARGET[0]}-{TARGET[1]}: {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: the operator's peak memory while it captures huge profiles, against the chart's limit.

N pods (default 8) each serve a 63 MiB gzip body at /debug/pprof/heap, chunked as Go's pprof
handler sends it, from a threaded HTTP server in this process. A real `kprof run` subprocess, with
the chart's defaults for concurrency, the size cap and the in-flight byte budget, captures all of
them once (one on-demand ProfilingConfig in a real control plane of its own,
tests.support.controlplane) and stores them in S3 (moto, in this process) through its spool. Its
peak RSS (VmHWM from /proc/PID/status, after the last profile is stored) is divided by the memory
limit of helm/kprof-operator/values.yaml; the figure must stay below 1. The operator's RSS once
ready (before any capture) is printed beside it, measured in the same run.

    python -m benchmarks.bench_memory [--pods 8] [--mib 63] [-- extra kprof run flags]
"""

from __future__ import annotations

import argparse
import gzip
import http.server
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

from tests.operator_support import (
    OperatorProcess,
    allow_s3,
    aws_environment,
    bench_control_plane,
    create_config,
    run_profiled_pod,
    s3_config,
    wait_until,
)
from tests.support.s3server import S3Server

REPO = Path(__file__).resolve().parent.parent
CHUNK = 1 << 20


def memory_limit_bytes() -> int:
    values = yaml.safe_load((REPO / "helm/kprof-operator/values.yaml").read_text())
    text = str(values["resources"]["limits"]["memory"])
    for suffix, scale in (("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)):
        if text.endswith(suffix):
            return int(text[: -len(suffix)]) * scale
    return int(text)


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for {pid}")


def profile_body(mib: int) -> bytes:
    # Incompressible content, stored (level 0) in a real gzip stream: a valid body of that size.
    return gzip.compress(os.urandom(mib << 20), compresslevel=0)[: mib << 20]


def serve(body: bytes) -> http.server.ThreadingHTTPServer:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            view = memoryview(body)
            for start in range(0, len(view), CHUNK):
                piece = view[start : start + CHUNK]
                self.wfile.write(b"%x\r\n" % len(piece) + piece + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="bench-pprof", daemon=True).start()
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_memory", description=__doc__.split("\n")[0])
    parser.add_argument("--pods", type=int, default=8, help="pods serving a huge profile (default 8)")
    parser.add_argument("--mib", type=int, default=63, help="size of each profile in MiB (default 63)")
    parser.add_argument("extra", nargs="*", help="more `kprof run` flags (after --)")
    args = parser.parse_args(argv)

    limit = memory_limit_bytes()
    body = profile_body(args.mib)
    pprof = serve(body)
    s3 = S3Server()
    s3.start()
    bucket = "kprof-bench-memory"
    s3.client().create_bucket(Bucket=bucket)
    tmp = Path(tempfile.mkdtemp(prefix="kprof-bench-memory-"))
    try:
        with bench_control_plane("bench") as plane:
            spec = {
                "onDemand": {"enabled": True, "intervalSeconds": 3600},
                "profileTypes": ["heap"],
                "s3Config": s3_config(s3, bucket, "huge"),
            }
            create_config(plane, "huge", "bench", spec)
            for index in range(args.pods):
                run_profiled_pod(plane, "bench", f"big-{index}", pprof.server_address[1])
            operator = OperatorProcess(
                plane.kubeconfig,
                tmp / "op",
                env=aws_environment(tmp),
                args=["--no-leader-elect", *allow_s3(s3, bucket), *args.extra],
                name="kprof run",
            )
            try:
                operator.wait_ready(timeout=120)
                pid = operator.process.pid
                ready_kib = status_kib(pid, "VmRSS")
                started = time.perf_counter()
                client = s3.client()

                def failures() -> list[dict]:
                    return [r for r in operator.logs if r.get("action") in ("capture-failed", "store-failed")]

                def stored() -> int:
                    return len(client.list_objects_v2(Bucket=bucket, Prefix="huge/").get("Contents", []))

                wait_until(lambda: stored() + len(failures()) >= args.pods, 600, "every capture to end")
                elapsed = time.perf_counter() - started
                peak_kib = status_kib(pid, "VmHWM")
                count, failed = stored(), failures()
            finally:
                operator.terminate()
    finally:
        pprof.shutdown()
        s3.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    peak = peak_kib * 1024
    print(f"{args.pods} pods x {args.mib} MiB gzip profiles, kprof run {' '.join(args.extra) or '(chart defaults)'}")
    print(f"  stored: {count}, in {elapsed:.1f} s; failures logged: {len(failed)}")
    for failure in failed[:5]:
        print(f"    {failure.get('pod')}: {failure.get('detail')}")
    print(f"  operator RSS once ready: {ready_kib / 1024:.0f} MiB")
    print(f"  operator peak RSS (VmHWM): {peak / (1 << 20):.0f} MiB")
    print(f"  memory limit (chart): {limit / (1 << 20):.0f} MiB")
    ratio = peak / limit
    print(f"  peak RSS / memory limit = {ratio:.2f} ({'below 1: met' if ratio < 1 else 'NOT below 1'})")
    return 0 if ratio < 1 and not failed else 1


if __name__ == "__main__":
    sys.exit(main())

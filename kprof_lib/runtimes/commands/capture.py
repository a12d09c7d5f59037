"""Capture profiles once, now, without a ProfilingConfig: from a pprof address (`--url`) or from a
pod (NAMESPACE/POD, through the chosen transport), into a directory (`--out`) or S3 (`--to
s3://bucket/prefix`), with the capture's summary.json and index.html beside them. Before the first
capture it checks that the destination takes a file (or the bucket answers) and that the address
serves pprof. Prints each profile as it lands (on a terminal, a countdown while the CPU profile
runs), what was hot, one line per profile that failed, and a recap. Exit codes: 0 when every
profile was stored, 1 when one failed or the start-up check did, 2 for bad usage, 130 after Ctrl-C
(the first lets the profile in flight finish and starts no other, the second cuts it).

Traced like every other command (OTEL_* variables; `--console-spans` prints one line per span): a
`kprof.oneshot` span over the capture, with the executor's `kprof.capture` and `kprof.upload` spans
and the `kprof.summary` span under it, and the trace id in each profile's metadata."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from pathlib import Path
from typing import Any

from kprof_lib.adapters import pprof
from kprof_lib.execution import capture, results, summaries, telemetry
from kprof_lib.execution.executor import Executor
from kprof_lib.planning import oneshot
from kprof_lib.runtimes import captures, interrupts, logs, preflight, progress, wiring
from kprof_lib.spec.errors import SpecError
from kprof_lib.spec.schemas import PROFILE_TYPES, TRANSPORTS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("pod", nargs="?", metavar="NAMESPACE/POD", help="capture this pod through the API server")
    source.add_argument(
        "--url", help="capture this pprof address, e.g. http://127.0.0.1:6060 (path defaults to /debug/pprof)"
    )
    parser.add_argument(
        "--types",
        default="heap,cpu,goroutine",
        help=f"comma-separated, from {','.join(PROFILE_TYPES)} (default: %(default)s)",
    )
    parser.add_argument("--seconds", type=int, default=30, help="CPU profile duration, 1-300 (default: %(default)s)")
    captures.add_destination_flags(parser)
    parser.add_argument(
        "--key-layout", choices=("pod", "service-date"), default="pod", help="S3 key layout (with --to)"
    )
    parser.add_argument(
        "--transport",
        choices=TRANSPORTS,
        default=None,
        help="how to reach a pod (default: portforward for NAMESPACE/POD, since the pod IP is rarely "
        "reachable from outside the cluster; --url is always direct)",
    )
    parser.add_argument(
        "--kubeconfig", help="kubeconfig for NAMESPACE/POD (default: $KUBECONFIG, ~/.kube/config, in-cluster)"
    )
    parser.add_argument(
        "--max-bytes", type=int, default=capture.DEFAULT_MAX_BYTES, help="size cap per profile (default: %(default)s)"
    )
    parser.add_argument(
        "--console-spans",
        action="store_true",
        help="print each span on one line after the profile it belongs to (OTEL_* variables add other exporters)",
    )
    wiring.add_tls_flag(parser)


# The fields of the one-shot spec (and the plan's url) each flag sets, for error messages.
FLAGS = {"spec.profileTypes": "--types", "spec.cpuProfileSeconds": "--seconds", "url": "--url", "spec.": "--"}


def as_flags(error: SpecError) -> str:
    """The error with each problem's path given as the flag that sets it."""

    def flag(path: str) -> str:
        for field, name in FLAGS.items():
            if path.startswith(field):
                return name + path[len(field) :]
        return path

    problems = [f"{flag(p['path'])}: {p['message']}" for p in error.errors]
    return "kprof capture: " + "\n  ".join(problems if len(problems) == 1 else ["bad flags:", *problems])


def run(args: argparse.Namespace) -> int:
    spec: dict = {
        "profileTypes": [t.strip() for t in args.types.split(",") if t.strip()],
        "cpuProfileSeconds": args.seconds,
    }
    if args.to:
        try:
            bucket = captures.s3_destination(args.to)
        except ValueError as error:
            print(error, file=sys.stderr)
            return 2
        spec["s3Config"] = {
            **bucket,
            "keyLayout": args.key_layout,
            **({"endpoint": args.s3_endpoint} if args.s3_endpoint else {}),
            **({"region": args.region} if args.region else {}),
        }
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    api = None
    try:
        if args.url:
            plan = oneshot.plan_for_url(args.url, spec, now)
            transport_name = "direct"
        else:
            from kprof_lib.adapters.kube import connection, reads

            namespace, _, name = args.pod.partition("/")
            if not namespace or not name:
                print(f"{args.pod!r}: expected NAMESPACE/POD", file=sys.stderr)
                return 2
            api = connection.api_client(args.kubeconfig)
            pod = reads.read_pod(api, namespace, name)
            plan = oneshot.plan_for_pod(pod, spec, now)
            transport_name = args.transport or "portforward"
    except SpecError as error:
        print(as_flags(error), file=sys.stderr)
        return 2
    except Exception as error:  # connection, not found, not running: say it plainly
        print(f"kprof capture: {error}", file=sys.stderr)
        return 1

    local_dir = Path(args.out or "profiles")
    stores = wiring.Stores(local_dir=local_dir)
    destination = stores.for_spec(plan.spec)
    tls_verify = not args.insecure_skip_tls_verify
    problem = startup_problem(plan, destination, local_dir, args, tls_verify=tls_verify)
    if problem is not None and problem.permanent:
        print(f"kprof capture: {problem}", file=sys.stderr)
        return 1
    if problem is not None:
        print(f"kprof capture: warning: {problem}", file=sys.stderr)
    console = progress.Console(sys.stdout)
    try:
        provider = progress.tracer_provider(console if args.console_spans else None, os.environ, "kprof-capture")
    except ValueError as error:  # a tracing setting that cannot be honoured
        print(f"kprof capture: {error}", file=sys.stderr)
        return 2
    # The console reports each failure once; the executor's log line of it would say it again.
    logs.configure("warning", "text").addFilter(progress.not_reported)
    store = progress.Landing(destination, console)
    transport = progress.Watching(pprof.make_transport(transport_name, api_client=api, tls_verify=tls_verify), console)
    tracer = provider.get_tracer(telemetry.TRACER_NAME) if provider else None
    executor = Executor(concurrency=1, max_bytes=args.max_bytes, tracer=tracer)

    def first(_signum: int) -> None:
        executor.drain()
        interrupts.later(console.line, f"stopping: {interrupts.finishing(executor)}")

    def second(_signum: int) -> None:
        executor.abort()
        interrupts.later(console.line, "aborting: in-flight captures cut, nothing more stored")

    stages = interrupts.TwoStages(first, second)
    keeping = summaries.Keeping(store)  # the summary line is printed as the store takes it
    try:
        with stages.installed(), executor.tracer.start_as_current_span(telemetry.SPAN_ONESHOT) as span:
            span.set_attribute(telemetry.ATTR_CONFIG, CONFIG_NAME)
            report = executor.execute(plan, store=keeping, transport=transport, config_name=CONFIG_NAME)
            written = (
                {}
                if executor.aborted
                else summaries.write(
                    plan,
                    report,
                    keeping,
                    tracer=executor.tracer,
                    config_name=CONFIG_NAME,
                    jaeger_url=captures.jaeger_url(),
                )
            )
        console.failures(report.profiles)
        for profile in report.profiles:
            if profile.status == results.CANCELLED:
                console.line(f"  - {profile.type:<12} cancelled  ({profile.error})", about=profile.type)
        for done in written.values():
            if done.error:
                console.line(f"  ! {'summary':<12} FAILED  {done.error}")
        console.line(report.recap(), about=progress.ALL)
    finally:
        keeping.release()
        if provider is not None:
            provider.shutdown()
        console.close()
    if stages.received:
        return interrupts.EXIT_INTERRUPTED
    return 0 if all(profile.status == results.STORED for profile in report.profiles) else 1


CONFIG_NAME = "kprof-capture"


def startup_problem(
    plan: Any, store: Any, local_dir: Path, args: argparse.Namespace, *, tls_verify: bool
) -> preflight.Problem | None:
    """What can be checked before capturing: the destination, and a --url's pprof index. A
    warning (not `permanent`) is returned only when nothing worse was found."""
    problem = preflight.bucket(store, "--to") if args.to else preflight.directory(local_dir, "--out")
    if (problem is None or not problem.permanent) and args.url:
        decision = plan.captures[0]
        endpoint = decision.endpoint
        found = preflight.target(
            endpoint.scheme, decision.pod_ip, endpoint.port, endpoint.path, "--url", tls_verify=tls_verify
        )
        problem = found or problem
    return problem

"""Merge one workload's stored CPU profiles into a `default.pgo` for `go build -pgo`: the
captures are chosen by their `summary.json` under DEST (a directory or s3://bucket/prefix) by
namespace, workload (the service kprof names in summaries: the `app.kubernetes.io/name` or `app`
label, else the Deployment), reason (on-demand only by default: threshold captures show a pod on
fire, not its usual work) and age, then merged one at a time as `go tool pprof -proto` merges them.
Prints how many profiles went in, their time range, the CPU seconds and the top functions. Exit 1
when no capture matches or one could not be read (the others are still merged), 2 for bad usage."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kprof_lib.adapters.captures import CaptureError
from kprof_lib.adapters.files import write_atomically
from kprof_lib.runtimes import captures
from kprof_lib.runtimes.pgo import DEFAULT_REASONS, PROFILE_NAME, Built, PgoError, Selection, build
from kprof_lib.spec.schemas import spec_field

REASONS: tuple[str, ...] = tuple(spec_field("pgo", "reasons")["items"]["enum"])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("destination", metavar="DEST", help="a directory or s3://bucket/prefix")
    parser.add_argument("--namespace", required=True, help="the workload's namespace")
    parser.add_argument("--workload", required=True, help="the workload (service) whose captures are merged")
    parser.add_argument("--since", metavar="AGE", help="only captures newer than this, e.g. 7d, 12h (default: all)")
    parser.add_argument(
        "--reason",
        default=",".join(DEFAULT_REASONS),
        help=f"captures of these reasons, comma-separated (default {','.join(DEFAULT_REASONS)}; "
        "or baseline, cpu-threshold, memory-threshold)",
    )
    parser.add_argument(
        "--key-layout", choices=("pod", "service-date"), default="pod", help="how DEST is laid out (default pod)"
    )
    parser.add_argument("-n", type=int, default=10, help="top functions to print (default 10)")
    parser.add_argument(
        "-o", "--output", default=PROFILE_NAME, metavar="FILE", help=f"where to write (default {PROFILE_NAME})"
    )
    captures.add_s3_flags(parser)


def run(args: argparse.Namespace) -> int:
    try:
        since = captures.cutoff(args.since, "7d")
    except ValueError as error:
        print(error, file=sys.stderr)
        return 2
    reasons = tuple(r.strip() for r in args.reason.split(",") if r.strip())
    unknown = [r for r in reasons if r not in REASONS]
    if not reasons or unknown:
        print(f"--reason {args.reason!r}: expected some of {', '.join(REASONS)}, comma-separated", file=sys.stderr)
        return 2
    if args.n < 1:
        print("-n: must be at least 1", file=sys.stderr)
        return 2
    selection = Selection(args.namespace, args.workload, reasons, since, args.key_layout)
    try:
        built = build(args.destination, selection, endpoint=args.s3_endpoint, region=args.region, top_count=args.n)
    except (PgoError, CaptureError) as error:
        print(f"kprof pgo: {error}", file=sys.stderr)
        return 1
    try:
        # Whole or not at all: a build never picks up half a profile.
        write_atomically([(Path(args.output), built.data)])
    except OSError as error:
        print(f"kprof pgo: -o {args.output}: {error.strerror or error}", file=sys.stderr)
        return 1
    print(report(built, args.output))
    for location, why in built.left_out.items():
        print(f"left out {location}: {why}", file=sys.stderr)
    return 1 if built.left_out else 0


def report(built: Built, output: str) -> str:
    lines = [
        f"wrote {output}: {len(built.used)} CPU profiles from {built.first} to {built.last}, "
        f"{built.cpu_seconds:.2f} CPU seconds over {built.duration_seconds:.1f} s profiled"
    ]
    if built.left_out:
        lines.append(f"left out: {len(built.left_out)} captures that could not be read (below)")
    lines.append(f"{'flat':>12} {'flat%':>6}  function")
    for entry in built.hottest:
        share = entry.flat / built.total * 100 if built.total else 0.0
        lines.append(f"{entry.flat / 1e9:>11.2f}s {share:>5.1f}%  {entry.name}")
    return "\n".join(lines)

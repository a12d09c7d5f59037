"""List the captures stored under a destination (a directory or `s3://bucket/prefix`), newest
first, from their `summary.json` files: time, namespace/pod, reason, profile types, the top
function, the trace id (and link, with --jaeger-url or $KPROF_JAEGER_URL) and the capture's folder,
which `kprof show` and `kprof diff` take. In the pod layout, --namespace (and --pod) narrow the
listing to that sub-folder rather than reading the whole destination."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from typing import Any

from kprof_lib.adapters import captures as stored
from kprof_lib.adapters.captures import CaptureError
from kprof_lib.profiles import summary as summaries
from kprof_lib.runtimes import captures


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("destination", metavar="DEST", help="a directory or s3://bucket/prefix")
    parser.add_argument("--namespace", help="only this namespace")
    parser.add_argument("--pod", help="only this pod")
    parser.add_argument("--reason", help="only this reason (cpu-threshold, memory-threshold, on-demand, ...)")
    parser.add_argument("--since", metavar="AGE", help="only captures newer than this, e.g. 90s, 30m, 2h, 7d")
    parser.add_argument(
        "--key-layout", choices=("pod", "service-date"), default="pod", help="how DEST is laid out (default pod)"
    )
    parser.add_argument("--limit", type=int, default=50, help="at most this many rows (default 50)")
    captures.add_location_flags(parser)


def run(args: argparse.Namespace) -> int:
    try:
        since = captures.cutoff(args.since, "2h")
    except ValueError as error:
        print(error, file=sys.stderr)
        return 2
    under = ""
    if args.key_layout == "pod" and args.namespace:
        under = args.namespace + (f"/{args.pod}" if args.pod else "")
    rows = []
    try:
        for location, found in stored.summaries(
            args.destination, under=under, endpoint=args.s3_endpoint, region=args.region
        ):
            row = _row(location, found, args)
            if _wanted(row, args, since):
                rows.append(row)
    except CaptureError as error:
        print(f"kprof ls: {error}", file=sys.stderr)
        return 1
    rows.sort(key=lambda r: r["capturedAt"], reverse=True)
    rows = rows[: args.limit]
    if args.output == "json":
        captures.print_json(rows)
        return 0
    if not rows:
        print("no captures with a summary.json there", file=sys.stderr)
        return 0
    print(f"{'TIME':<24} {'POD':<36} {'REASON':<16} {'TYPES':<22} {'TOP':<40} {'TRACE':<32} CAPTURE")
    for r in rows:
        top = f"{r['top'][0]} {r['top'][1] * 100:.0f}%" if r["top"] else "-"
        trace = r.get("traceUrl") or r.get("traceId") or "-"
        print(
            f"{r['capturedAt']:<24} {r['namespace'] + '/' + r['pod']:<36} {r['reason']:<16} "
            f"{','.join(r['types']):<22} {top:<40} {trace:<32} {r['capture']}"
        )
    return 0


def _row(location: str, found: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    capture = found.get("capture", {})
    tops = summaries.top_functions(found, count=1)
    # The hottest function of the CPU profile says most; else that of the first type there is.
    kind = "cpu" if tops.get("cpu") else next((k for k in sorted(tops) if tops[k]), None)
    row: dict[str, Any] = {
        "capturedAt": str(capture.get("capturedAt", "")),
        "namespace": str(capture.get("namespace", "")),
        "pod": str(capture.get("pod", "")),
        "reason": str(capture.get("reason", "")),
        "types": sorted(found.get("profiles", {})),
        "top": [tops[kind][0][0], tops[kind][0][1], kind] if kind else None,
        "traceId": str(capture.get("traceId", "")),
        "capture": location,
    }
    if row["traceId"] and args.jaeger_url:
        row["traceUrl"] = captures.trace_url(args.jaeger_url, str(row["traceId"]))
    return row


def _wanted(row: dict[str, Any], args: argparse.Namespace, since: dt.datetime | None) -> bool:
    if args.namespace and row["namespace"] != args.namespace:
        return False
    if args.pod and row["pod"] != args.pod:
        return False
    if args.reason and row["reason"] != args.reason:
        return False
    return captures.taken_since(row["capturedAt"], since)

"""Compare two stored captures of one workload, a baseline and an incident: per profile type the
functions whose share of CPU grew most, the in-use heap that grew most by function, the goroutine
count growth by stack. Each CAPTURE is a directory or an `s3://bucket/prefix/…/` prefix;
`--html FILE` writes the incident's flame-graph page with the diff."""

from __future__ import annotations

import argparse
import sys

from kprof_lib.adapters.captures import CaptureError
from kprof_lib.profiles import diff, page, text
from kprof_lib.runtimes import captures


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("base", metavar="BASE", help="the healthy capture's folder")
    parser.add_argument("incident", metavar="INCIDENT", help="the incident capture's folder")
    parser.add_argument("-n", type=int, default=10, help="rows per profile type (default 10)")
    parser.add_argument("--html", metavar="FILE", help="write the incident's page with the diff to FILE")
    captures.add_location_flags(parser)


def run(args: argparse.Namespace) -> int:
    try:
        base = captures.load(args.base, args)
        incident = captures.load(args.incident, args)
    except CaptureError as error:
        print(f"kprof diff: {error}", file=sys.stderr)
        return 1
    result = diff.compare(base.decoded, incident.decoded, n=args.n)
    if not result["types"]:
        print("kprof diff: the two captures have no profile type in common", file=sys.stderr)
        return 1
    if args.html:
        body = page.render(incident.summary, captures.flames(incident.decoded), diff=result)
        captures.write_page(args.html, body)
    if args.output == "json":
        captures.print_json({"base": args.base, "incident": args.incident, **result})
    else:
        print(f"{args.base} -> {args.incident}\n")
        print(text.diff(result, n=args.n))
    return 0

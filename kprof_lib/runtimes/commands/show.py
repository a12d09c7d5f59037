"""Show what was hot in one stored capture: the top functions of each profile type (flat and cum,
as `go tool pprof -top` counts them), read from a capture folder in a local directory or an
`s3://bucket/prefix/…/` prefix. `--html FILE` writes the capture's flame-graph page. Exit 1 when
the capture or a profile asked for cannot be read (the others are still shown), 2 for bad usage."""

from __future__ import annotations

import argparse
import sys

from kprof_lib.adapters.captures import CaptureError
from kprof_lib.profiles import page, text
from kprof_lib.runtimes import captures


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("capture", metavar="CAPTURE", help="a capture's folder: a directory or s3://bucket/prefix/…/")
    parser.add_argument("--type", dest="kind", metavar="T", help="only this profile type (cpu, heap, …)")
    parser.add_argument("--sample-type", help="sample type to rank by (default: the profile's own, as pprof)")
    parser.add_argument("-n", type=int, default=20, help="rows per profile type (default 20)")
    parser.add_argument("--html", metavar="FILE", help="also write the flame-graph page to FILE")
    captures.add_location_flags(parser)


def run(args: argparse.Namespace) -> int:
    if args.n < 1:
        print("-n: must be at least 1", file=sys.stderr)
        return 2
    try:
        loaded = captures.load(args.capture, args, n=args.n)
    except CaptureError as error:
        print(f"kprof show: {error}", file=sys.stderr)
        return 1
    result = loaded.summary
    if args.kind and args.kind not in result["profiles"] and args.kind not in result["errors"]:
        known = ", ".join(sorted({*result["profiles"], *result["errors"]}))
        print(f"--type {args.kind}: not in this capture (it has: {known})", file=sys.stderr)
        return 1
    if args.html:
        captures.write_page(args.html, page.render(result, captures.flames(loaded.decoded)))
    if args.output == "json":
        if args.kind:
            result = {**result, "profiles": {k: v for k, v in result["profiles"].items() if k == args.kind}}
        captures.print_json(result)
    else:
        print(text.show(result, kind=args.kind, sample_type=args.sample_type, n=args.n))
    # 1 when a profile asked for could not be read, as every command says "something failed".
    unread = args.kind in result["errors"] if args.kind else bool(result["errors"])
    return 1 if unread else 0

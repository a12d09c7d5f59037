"""What `kprof show`, `kprof diff` and `kprof ls` share: the flags that say where captures are
(S3 endpoint, region, Jaeger link; `kprof capture` and `kprof local` take the first two with their
destination flags), reading a capture and decoding its profiles into a summary, and writing a page
or JSON out."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import sys
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from kprof_lib import profiles
from kprof_lib.adapters import captures
from kprof_lib.profiles import flame, summary
from kprof_lib.profiles.page import trace_url
from kprof_lib.state import cluster

JAEGER_URL_VARIABLE = "KPROF_JAEGER_URL"
_AGE = re.compile(r"^(\d+)([smhd])$")
_AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def jaeger_url() -> str | None:
    """The Jaeger UI that trace links point to ($KPROF_JAEGER_URL), for the runtimes' pages."""
    return os.environ.get(JAEGER_URL_VARIABLE) or None


def cutoff(since: str | None, example: str) -> dt.datetime | None:
    """The time `--since` (an age such as `90s`, `30m`, `2h`, `7d`) reaches back to from now, or
    None without one; ValueError naming the flag, with `example`, when it is not an age."""
    if not since:
        return None
    match = _AGE.match(since.strip())
    if not match:
        raise ValueError(f"--since {since!r}: expected a number and s, m, h or d, e.g. {example}")
    return dt.datetime.now(dt.UTC) - dt.timedelta(seconds=int(match[1]) * _AGE_UNITS[match[2]])


def taken_since(captured_at: object, since: dt.datetime | None) -> bool:
    """Whether a capture's `capturedAt` is at `since` or later (always, without `since`); a time
    that cannot be read is not."""
    if since is None:
        return True
    try:
        return cluster.parse_time(captured_at) >= since
    except ValueError:
        return False


def add_s3_flags(parser: argparse._ActionsContainer) -> None:
    """--s3-endpoint and --region: how to reach captures stored in S3."""
    parser.add_argument("--s3-endpoint", metavar="URL", help="S3-compatible endpoint (MinIO and the like)")
    parser.add_argument("--region", help="S3 region (default: from the environment)")


def add_destination_flags(parser: argparse._ActionsContainer) -> None:
    """`--out DIR` or `--to s3://BUCKET/PREFIX`, and the S3 flags: where new captures go."""
    destination = parser.add_mutually_exclusive_group()
    destination.add_argument("--out", metavar="DIR", help="store under this directory (default ./profiles)")
    destination.add_argument("--to", metavar="s3://BUCKET/PREFIX", help="store in S3")
    add_s3_flags(parser)


def s3_destination(to: str) -> dict[str, str]:
    """The bucket and prefix of `--to`; ValueError naming the flag unless it is s3://BUCKET[/PREFIX]."""
    target = urlsplit(to)
    if target.scheme != "s3" or not target.netloc:
        raise ValueError(f"--to {to!r}: expected s3://BUCKET or s3://BUCKET/PREFIX")
    return {"bucket": target.netloc, "prefix": target.path.strip("/")}


def add_location_flags(parser: argparse.ArgumentParser) -> None:
    add_s3_flags(parser)
    parser.add_argument(
        "--jaeger-url",
        default=os.environ.get(JAEGER_URL_VARIABLE),
        help=f"Jaeger to link trace ids to, e.g. http://127.0.0.1:16686 (default: ${JAEGER_URL_VARIABLE})",
    )
    parser.add_argument("-o", "--output", choices=("text", "json"), default="text", help="output format")


@dataclass
class Loaded:
    """A capture read and decoded: its summary, and the decoded profiles by type."""

    summary: dict[str, Any]
    decoded: dict[str, profiles.Profile]


def load(location: str, args: argparse.Namespace, *, n: int = summary.TOP) -> Loaded:
    """Read the capture at `location` and summarise it; a profile that does not decode is listed
    under the summary's `errors` and the others are still shown. Raises CaptureError."""
    return summarized(captures.read(location, endpoint=args.s3_endpoint, region=args.region), args, n=n)


def summarized(capture: captures.Capture, args: argparse.Namespace, *, n: int = summary.TOP) -> Loaded:
    """A capture already read, decoded and summarised (its facts from `capture_facts`)."""
    decoded, parts, errors = {}, {}, {}
    for kind, (name, data) in capture.profiles.items():
        try:
            decoded[kind] = profiles.decode(data)
        except profiles.ProfileError as error:
            errors[kind] = f"{name}: {error}"
            continue
        parts[kind] = (name, len(data), decoded[kind])
    return Loaded(summary.summarize(parts, capture=capture_facts(capture, args), errors=errors, n=n), decoded)


def capture_facts(capture: captures.Capture, args: argparse.Namespace) -> dict[str, Any]:
    meta = capture.metadata
    facts = {
        "namespace": meta.get("namespace", ""),
        "pod": meta.get("pod", ""),
        "service": meta.get("service", ""),
        "reason": meta.get("reason", ""),
        "capturedAt": meta.get("captured-at", ""),
        "uri": capture.location,
        "traceId": meta.get("trace-id", ""),
    }
    stored = (capture.summary or {}).get("capture", {})
    for key in ("thresholds", "usage"):
        if stored.get(key):
            facts[key] = stored[key]
    if facts["traceId"] and args.jaeger_url:
        facts["traceUrl"] = trace_url(args.jaeger_url, facts["traceId"])
    return {k: v for k, v in facts.items() if v}


def flames(decoded: dict[str, profiles.Profile]) -> dict[str, dict[str, Any]]:
    return {kind: flame.tree(profile) for kind, profile in decoded.items() if profile.sample_types}


def write_page(path: str, page: str) -> None:
    with open(path, "w", encoding="utf-8") as out:
        out.write(page)
    print(f"wrote {path}", file=sys.stderr)


def print_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2, sort_keys=False)
    sys.stdout.write("\n")

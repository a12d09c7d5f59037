"""Open a stored capture: copy it (profiles, summary.json, index.html) into a local cache and open
its flame-graph page in the browser (Python's `webbrowser`: $BROWSER, else the desktop's), at the
tab of `--type` when given; or, with `--pprof`, run `go tool pprof -http` on one of its profiles
(Go must be installed). CAPTURE is a capture's folder as `kprof ls` prints it: a directory or an
`s3://bucket/prefix/…/` prefix. A capture without a page (one stored before kprof wrote pages) gets
one made from its profiles. Prints what it did; `-o json` prints it as JSON."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import webbrowser
from pathlib import Path
from typing import Any

from kprof_lib.adapters import captures as stored
from kprof_lib.adapters.captures import CaptureError
from kprof_lib.execution import keys
from kprof_lib.profiles import page
from kprof_lib.runtimes import captures

CACHE_VARIABLE = "KPROF_CACHE_DIR"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("capture", metavar="CAPTURE", help="a capture's folder: a directory or s3://bucket/prefix/…/")
    parser.add_argument("--type", dest="kind", metavar="T", help="the profile type to show (cpu, heap, …)")
    parser.add_argument(
        "--pprof", action="store_true", help="run `go tool pprof -http` on the profile instead (needs Go)"
    )
    parser.add_argument(
        "--cache-dir",
        default=os.environ.get(CACHE_VARIABLE),
        help=f"where captures are copied (default: ${CACHE_VARIABLE}, else $XDG_CACHE_HOME/kprof/captures)",
    )
    captures.add_location_flags(parser)


def run(args: argparse.Namespace) -> int:
    try:
        capture = stored.read(args.capture, endpoint=args.s3_endpoint, region=args.region)
    except CaptureError as error:
        print(f"kprof open: {error}", file=sys.stderr)
        return 1
    if args.kind and args.kind not in capture.profiles:
        known = ", ".join(sorted(capture.profiles))
        print(f"--type {args.kind}: not in this capture (it has: {known})", file=sys.stderr)
        return 1
    folder = _cached(capture, Path(args.cache_dir) if args.cache_dir else _default_cache())
    done: dict[str, Any] = {"capture": args.capture, "cached": str(folder)}
    if args.pprof:
        return _pprof(args, folder, capture, done)
    index = folder / stored.PAGE_NAME
    url = index.as_uri() + (f"#{args.kind}" if args.kind else "")
    done.update({"opened": url, "how": "browser", "madePage": capture.page is None})
    opened = webbrowser.open(url)
    _say(args, done, f"copied {args.capture} to {folder}")
    if not opened:
        print(f"kprof open: no browser found (set $BROWSER); the page is {index}", file=sys.stderr)
        return 1
    return 0


def _cached(capture: stored.Capture, root: Path) -> Path:
    """The capture's copy under `root`: one folder per capture location, its profiles named by
    type, the stored summary and page beside them (a page is made when the capture has none)."""
    location = capture.location
    digest = hashlib.sha256(location.encode()).hexdigest()[:10]
    tail = [part for part in location.replace("s3://", "").split("/") if part][-3:]
    folder = root / ("-".join(keys.sanitize_component(part, 60) for part in tail) + f"-{digest}")
    folder.mkdir(parents=True, exist_ok=True)
    for kind, (_, data) in capture.profiles.items():
        (folder / f"{keys.sanitize_component(kind)}.pprof").write_bytes(data)
    if capture.summary is not None:
        (folder / stored.SUMMARY_NAME).write_text(json.dumps(capture.summary, indent=1))
    page_bytes = capture.page if capture.page is not None else _make_page(capture)
    (folder / stored.PAGE_NAME).write_bytes(page_bytes)
    return folder


def _make_page(capture: stored.Capture) -> bytes:
    loaded = captures.summarized(capture, argparse.Namespace(jaeger_url=captures.jaeger_url()))
    return page.render(loaded.summary, captures.flames(loaded.decoded)).encode()


def _pprof(args: argparse.Namespace, folder: Path, capture: stored.Capture, done: dict[str, Any]) -> int:
    go = shutil.which("go")
    if go is None:
        print("kprof open --pprof: Go is not installed (no go on PATH); open the page without --pprof", file=sys.stderr)
        return 1
    kind = args.kind or ("cpu" if "cpu" in capture.profiles else sorted(capture.profiles)[0])
    profile = folder / f"{keys.sanitize_component(kind)}.pprof"
    address = f"127.0.0.1:{_free_port()}"
    command = [go, "tool", "pprof", f"-http={address}", str(profile)]
    done.update({"opened": f"http://{address}/", "how": "pprof", "command": command})
    _say(args, done, f"copied {args.capture} to {folder}; running {' '.join(command)} (Ctrl-C stops it)")
    try:
        return subprocess.run(command, check=False).returncode
    except KeyboardInterrupt:
        return 0


def _free_port() -> int:
    # A port free now on loopback; pprof binds it a moment later.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _say(args: argparse.Namespace, done: dict[str, Any], text: str) -> None:
    if args.output == "json":
        captures.print_json(done)
    else:
        print(text)
        print(f"opened {done['opened']}" + (" (a page made from the profiles)" if done.get("madePage") else ""))
    sys.stdout.flush()


def _default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kprof" / "captures"

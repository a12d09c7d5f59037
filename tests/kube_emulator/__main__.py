"""Run the Kubernetes API emulator on its own, so a person can point kprof (or kubectl-free scripts)
at a fake cluster: `python -m tests.kube_emulator --port 0 --kubeconfig PATH [--seed FILE.yaml ...]`
prints the URL on the first line of stdout, writes a kubeconfig for it, applies the seed manifests
and serves until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from .emulator import DEFAULT_TOKEN, KubeEmulator
from .status import ApiError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tests.kube_emulator", description="Serve an emulated Kubernetes API over HTTP."
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to listen on; 0 picks a free one (default)")
    parser.add_argument("--kubeconfig", help="write a kubeconfig for the emulator to this path")
    parser.add_argument("--namespace", default="default", help="namespace of the kubeconfig's context")
    parser.add_argument(
        "--seed",
        action="append",
        default=[],
        metavar="FILE.yaml",
        help="apply the objects of a YAML manifest at start (repeatable; CRDs register their kinds)",
    )
    parser.add_argument("--token", default=DEFAULT_TOKEN, help="bearer token clients must send")
    parser.add_argument("--no-auth", action="store_true", help="accept requests without the token")
    parser.add_argument("--bookmark-interval", type=float, default=1.0, help="seconds between watch bookmarks")
    parser.add_argument("--history-size", type=int, default=1000, help="watch events kept before 410 Expired")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    emulator = KubeEmulator(
        args.host,
        args.port,
        token=args.token,
        require_auth=not args.no_auth,
        history_size=args.history_size,
        bookmark_interval=args.bookmark_interval,
    )
    try:
        for path in args.seed:
            applied = emulator.load_manifests(path)
            print(f"seeded {len(applied)} objects from {path}", file=sys.stderr)
    except (OSError, KeyError, ApiError) as exc:
        print(f"cannot seed: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    emulator.start()
    try:
        # The kubeconfig exists before the URL is printed: a script may use it as soon as it reads the URL.
        if args.kubeconfig:
            path = emulator.write_kubeconfig(args.kubeconfig, namespace=args.namespace)
            print(f"kubeconfig written to {path}", file=sys.stderr, flush=True)
        print(emulator.url, flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

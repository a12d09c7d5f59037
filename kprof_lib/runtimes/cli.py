"""The `kprof` command: one sub-command per module in `kprof_lib.runtimes.commands`.

Each command module has `NAME`, `HELP`, `add_arguments(parser)` and `run(args) -> int` (the exit
code). Exit codes: 0 success, 1 invalid input or a failed action, 2 bad usage.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from kprof_lib import __version__

COMMANDS = ("validate", "plan", "capture", "ls", "show", "diff", "crd", "sidecar", "local", "run")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kprof", description="Capture pprof profiles from Go pods in Kubernetes.")
    parser.add_argument("--version", action="version", version=f"kprof {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module = importlib.import_module(f"kprof_lib.runtimes.commands.{name}")
        command = sub.add_parser(module.NAME, help=module.HELP, description=module.__doc__)
        module.add_arguments(command)
        command.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `kprof plan ... | head`: the reader left; nothing to report.
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())

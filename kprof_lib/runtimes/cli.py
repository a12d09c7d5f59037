"""The `kprof` command: one sub-command per module in `kprof_lib.runtimes.commands`.

Each command module has `add_arguments(parser)` and `run(args) -> int` (the exit code); its
docstring is its description and `COMMANDS` below its one-line help. Only the module of the command
being run is imported, so `kprof --version`, `kprof validate` and `kprof plan` start without loading
the kubernetes client, boto3 or OpenTelemetry (tests/test_layers.py checks it). Exit codes, the
same for every command: 0 when everything asked for was done (every profile stored), 1 for
invalid input or anything that failed, 2 for bad usage, 130 when Ctrl-C ended it.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Iterable, Sequence

from kprof_lib import __version__

COMMANDS = {
    "validate": "validate ProfilingConfig files",
    "plan": "show each pod's action and reason (check mode)",
    "capture": "capture profiles once from an address or a pod",
    "ls": "list stored captures, newest first",
    "show": "print the top functions of a stored capture",
    "diff": "what grew between a baseline capture and an incident capture",
    "open": "open a stored capture's flame-graph page in the browser (or go tool pprof -http)",
    "pgo": "merge a workload's stored CPU profiles into a default.pgo for go build -pgo",
    "crd": "print the ProfilingConfig CRD",
    "sidecar": "profile the app container of this pod from a sidecar",
    "local": "profile a process on this machine by thresholds or on a schedule",
    "run": "run the operator (in a cluster, or against a kubeconfig)",
    "node": "run a node agent: the operator's checks over the pods of one node",
}


def build_parser(load: Iterable[str] = COMMANDS) -> argparse.ArgumentParser:
    """The parser, with the full arguments of the commands in `load`; the others are listed (for
    --help and the choice of command) but not imported."""
    load = set(load)
    parser = argparse.ArgumentParser(prog="kprof", description="Capture pprof profiles from Go pods in Kubernetes.")
    parser.add_argument("--version", action="version", version=f"kprof {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, help in COMMANDS.items():
        if name not in load:
            sub.add_parser(name, help=help)
            continue
        module = importlib.import_module(f"kprof_lib.runtimes.commands.{name}")
        command = sub.add_parser(name, help=help, description=module.__doc__)
        module.add_arguments(command)
        command.set_defaults(run=module.run)
    return parser


def command_in(argv: Sequence[str]) -> str | None:
    """The command `argv` names: its first word that is not an option (kprof's own options take no
    value), if that is a command."""
    first = next((word for word in argv if not word.startswith("-")), None)
    return first if first in COMMANDS else None


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    command = command_in(argv)
    try:
        # Inside: a Ctrl-C while the command's libraries load ends it quietly too.
        args = build_parser([command] if command else []).parse_args(argv)
        return args.run(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `kprof plan ... | head`: the reader left; nothing to report.
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())

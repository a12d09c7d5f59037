"""Show what kprof would do (check mode): each pod's action and reason under a ProfilingConfig, over a
cluster state file (now, pods, podMetrics, history; usageWindow, goroutines and alerts for the
triggers), with the numbers behind each trigger's decision, and a recap line. Nothing is captured. The
text output names the config and the `now` each plan is for and fits in `WIDTH` columns."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from typing import Any

from kprof_lib.planning.plan import Plan
from kprof_lib.planning.reconcile import reconcile
from kprof_lib.runtimes import documents
from kprof_lib.spec.errors import InputError
from kprof_lib.state.errors import StateError

WIDTH = 100  # a terminal's usual width; longer details and the recap wrap below their row


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", required=True, metavar="FILE", help="ProfilingConfig YAML/JSON (one or more documents)"
    )
    parser.add_argument(
        "--state", required=True, metavar="FILE", help="cluster state JSON/YAML: now, pods, podMetrics, history"
    )
    parser.add_argument("-o", "--output", choices=("text", "json"), default="text", help="output format")


def run(args: argparse.Namespace) -> int:
    try:
        configs = documents.load_all(args.config)
        state = documents.load_one(args.state)
    except documents.DocumentError as error:
        print(error, file=sys.stderr)
        return 1
    plans: list[tuple[str, Plan]] = []
    for index, config in enumerate(configs):
        name = _name(config, index)
        spec = config.get("spec") if isinstance(config, dict) and "spec" in config else config
        try:
            plans.append((name, reconcile(spec, state)))
        except StateError as error:
            # The state is the same for every config: its problems are the state file's.
            print(f"{args.state}: {error}", file=sys.stderr)
            return 1
        except InputError as error:
            print(f"{args.config} ({name}): {error}", file=sys.stderr)
            return 1
    if args.output == "json":
        out: Any = plans[0][1].to_dict() if len(plans) == 1 else {name: plan.to_dict() for name, plan in plans}
        json.dump(out, sys.stdout, indent=2)
        print()
        return 0
    for index, (name, plan) in enumerate(plans):
        if index:
            print()
        print(f"plan for {name} ({args.config})")
        print(f"now {plan.now} (the state's, {args.state})")
        print(render(plan))
    return 0


def render(plan: Plan) -> str:
    """A table of pod, action, reason and observed usage, then the recap line."""
    rows = [("POD", "ACTION", "REASON", "CPU%", "MEM%", "DETAIL")]
    for decision in plan.results:
        observed = decision.observed
        detail = decision.message or ""
        if decision.captures and decision.endpoint is not None:
            # Why (the triggers' numbers, when they gave any), then what is taken from where.
            endpoint = decision.endpoint
            detail = (
                (f"{detail}; " if detail else "") + f"{','.join(decision.profile_types)} from "
                f"{endpoint.scheme}://{decision.pod_ip}:{endpoint.port}{endpoint.path}"
            )
        rows.append(
            (
                decision.key,
                decision.action,
                decision.reason,
                _percent(observed.cpu_percent if observed else None),
                _percent(observed.memory_percent if observed else None),
                detail,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = []
    for row in rows:
        line = "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:5])).rstrip()
        detail = row[5]
        if detail and len(line) + 2 + len(detail) <= WIDTH:
            line = f"{line.ljust(sum(widths) + 8)}  {detail}"
            detail = ""
        lines.append(line)
        if detail:  # too long beside the row: on its own lines below it
            lines += textwrap.wrap(
                detail, WIDTH, initial_indent="    ", subsequent_indent="    ", break_on_hyphens=False
            )
    recap = f"active pods: {plan.active_pods}  {plan.recap()}"
    return "\n".join([*lines, "", *textwrap.wrap(recap, WIDTH, subsequent_indent="    ", break_on_hyphens=False)])


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _name(config: Any, index: int) -> str:
    metadata = config.get("metadata") if isinstance(config, dict) else None
    if isinstance(metadata, dict) and metadata.get("name"):
        return str(metadata["name"])
    return f"document {index + 1}"

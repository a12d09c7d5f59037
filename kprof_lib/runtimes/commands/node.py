"""Run a kprof node agent: the operator's checks over the pods of one node (watched with the
field selector spec.nodeName=NODE), their usage read from that node's kubelet (/metrics/resource,
authorised as get on nodes/metrics; no metrics-server), profiles fetched directly from the pod IPs
and stored as the operator stores them. Capture history and this node's share of each
ProfilingConfig's status are kept in ConfigMaps of this node's own; the agent holding the Lease
folds every node's share into the configs' statuses. Shipped as a DaemonSet (the operator chart
with mode=node). Flags, signals and exit codes as `kprof run`'s; the Lease flags are those of the
folding election."""

from __future__ import annotations

import argparse
import os
import sys

from kprof_lib.runtimes.commands import run as operator_command
from kprof_lib.runtimes.node.settings import NODE_DEFAULTS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    operator_command.add_arguments(parser)
    # The folding election's Lease is not the operator's: both may run in one namespace.
    for action in parser._actions:
        if action.dest == "lease_name":
            action.default = NODE_DEFAULTS.lease_name
            action.help = f"name of the Lease that elects the agent folding the statuses (default: {action.default})"
        elif action.dest == "leader_elect":
            action.help = "elect one agent to fold the node reports into the statuses; off: this agent folds"
    parser.add_argument(
        "--node-name",
        default=os.environ.get("NODE_NAME", ""),
        metavar="NODE",
        help="the node whose pods this agent checks (default: $NODE_NAME)",
    )
    parser.add_argument(
        "--kubelet-url",
        default=NODE_DEFAULTS.kubelet_url,
        metavar="URL",
        help="the node's kubelet, whose /metrics/resource gives the pods' usage (default: https://$NODE_IP:10250)",
    )
    parser.add_argument(
        "--kubelet-ca-file",
        default=NODE_DEFAULTS.kubelet_ca_file,
        metavar="PATH",
        help="CA bundle that signed the kubelet's serving certificate (default: the system's)",
    )
    parser.add_argument(
        "--kubelet-insecure-tls",
        dest="kubelet_tls_verify",
        action="store_false",
        help="accept any certificate from the kubelet (kubelets often serve a self-signed one)",
    )
    parser.add_argument(
        "--fold-interval",
        type=operator_command._seconds,
        default=NODE_DEFAULTS.fold_interval,
        metavar="SECONDS",
        help="how often the elected agent folds the node reports into the statuses "
        f"(default: {NODE_DEFAULTS.fold_interval:g})",
    )
    parser.add_argument(
        "--report-refresh",
        type=operator_command._seconds,
        default=NODE_DEFAULTS.report_refresh,
        metavar="SECONDS",
        help="an unchanged node report is rewritten this often, so the fold tells live nodes from gone "
        f"ones (default: {NODE_DEFAULTS.report_refresh:g})",
    )


def run(args: argparse.Namespace) -> int:
    if not args.node_name:
        print("kprof node: --node-name (or $NODE_NAME) is required", file=sys.stderr)
        return 2
    return operator_command.run(args, node=True)

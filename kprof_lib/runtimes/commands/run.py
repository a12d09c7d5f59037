"""Run the kprof operator: watch ProfilingConfigs and pods, check them on schedule, capture profiles,
report through status, Events, metrics and logs, until SIGTERM or SIGINT. Writes nothing but log
lines (JSON by default) to stderr. On SIGTERM or SIGINT no new capture starts, checks in progress
get --grace-period seconds, then what is still in flight is cut; the Lease is released on the way
out. A second signal cuts at once. Exit codes: 0 after SIGTERM or SIGINT, 1 when it cannot start
(no kubeconfig and not in a cluster, an address already in use, a --namespace that does not
exist), 2 for bad flags. An API server
that does not answer is not fatal: the watches retry and /readyz says what they wait for."""

from __future__ import annotations

import argparse
import functools
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from types import FrameType
from typing import Any

from kprof_lib.runtimes import logs, wiring
from kprof_lib.runtimes.operator.settings import DEFAULTS
from kprof_lib.spec.schemas import TRANSPORTS

log = logging.getLogger("kprof.operator")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _seconds(text: str, *, zero: bool = False) -> float:
    """A flag's number of seconds: more than 0, or with `zero` 0 or more."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if value < 0 if zero else not value > 0:
        raise argparse.ArgumentTypeError(f"must be {'0 or more' if zero else 'more than 0'} seconds, not {text}")
    return value


_grace = functools.partial(_seconds, zero=True)


def _address(text: str) -> str:
    from kprof_lib.runtimes.endpoints import parse_address

    try:
        parse_address(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


# Flags that set the Settings field of their name: (flag, argparse options, help with "{}" for the
# default); None stands for --insecure-skip-tls-verify, which every command that fetches profiles has.
_FLAGS: tuple[tuple[str, dict[str, Any], str] | None, ...] = (
    ("--lease-name", {"metavar": "NAME"}, "name of the coordination.k8s.io Lease (default: {})"),
    (
        "--lease-duration",
        {"type": _seconds, "metavar": "SECONDS"},
        "how long a standby waits before taking over an unrenewed Lease (default: {})",
    ),
    (
        "--renew-deadline",
        {"type": _seconds, "metavar": "SECONDS"},
        "how long the leader keeps trying to renew before it steps down (default: {})",
    ),
    ("--retry-period", {"type": _seconds, "metavar": "SECONDS"}, "time between Lease attempts (default: {})"),
    (
        "--health-addr",
        {"type": _address, "metavar": "HOST:PORT"},
        "where /healthz and /readyz are served (default: {}; port 0 picks a free one)",
    ),
    (
        "--metrics-addr",
        {"type": _address, "metavar": "HOST:PORT"},
        "where /metrics is served (default: {}; port 0 picks a free one)",
    ),
    ("--transport", {"choices": TRANSPORTS}, "how profiles are fetched unless a ProfilingConfig says (default: {})"),
    (
        "--concurrency",
        {"type": _positive_int, "metavar": "N"},
        "profiles other than CPU (heap, goroutine, ...) captured at once, across every config (default: {})",
    ),
    (
        "--cpu-concurrency",
        {"type": _positive_int, "metavar": "N"},
        "CPU profiles captured at once, across every config: they mostly wait out their seconds (default: {})",
    ),
    (
        "--goroutine-concurrency",
        {"type": _positive_int, "metavar": "N"},
        "goroutine counts read at once for the configs with triggers.goroutines (default: {})",
    ),
    ("--max-profile-bytes", {"type": _positive_int, "metavar": "N"}, "size cap of one profile (default: {})"),
    (
        "--max-inflight-bytes",
        {"type": _positive_int, "metavar": "N"},
        "bytes of profiles held in memory at once, streaming or waiting for the store; must hold "
        "--concurrency profiles at --max-profile-bytes (default: {})",
    ),
    None,
    ("--local-dir", {"metavar": "PATH"}, "where profiles go for configs without s3Config (default: {})"),
    ("--spool-dir", {"metavar": "PATH"}, "where profiles wait while S3 is unreachable (default: {})"),
    ("--spool-max-bytes", {"type": _positive_int, "metavar": "N"}, "size cap of the spool (default: {})"),
    (
        "--grace-period",
        {"type": _grace, "metavar": "SECONDS"},
        "on SIGTERM, how long checks in progress may take to finish (default: {})",
    ),
    (
        "--alerts-addr",
        {"type": _address, "metavar": "HOST:PORT"},
        "where the Alertmanager webhook receiver (POST /alertmanager/webhook) is served; needs "
        "--alerts-token-file (default: off; port 0 picks a free one)",
    ),
    (
        "--alerts-token-file",
        {"metavar": "PATH"},
        "file holding the bearer token Alertmanager must send (http_config.authorization); read again when it changes",
    ),
    ("--alerts-tls-cert-file", {"metavar": "PATH"}, "serve the receiver over HTTPS with this certificate (PEM)"),
    ("--alerts-tls-key-file", {"metavar": "PATH"}, "the private key of --alerts-tls-cert-file (PEM)"),
    ("--alerts-namespace-label", {"metavar": "LABEL"}, "the alert label naming the pod's namespace (default: {})"),
    ("--alerts-pod-label", {"metavar": "LABEL"}, "the alert label naming the pod (default: {})"),
    ("--alerts-max", {"type": _positive_int, "metavar": "N"}, "firing alerts held at once (default: {})"),
    (
        "--alerts-expiry",
        {"type": _seconds, "metavar": "SECONDS"},
        "an alert not delivered again for this long is forgotten (default: {})",
    ),
    (
        "--alerts-max-body-bytes",
        {"type": _positive_int, "metavar": "N"},
        "size cap of one Alertmanager notification (default: {})",
    ),
)


def _destination(text: str) -> str:
    from kprof_lib.planning import tenancy

    try:
        return tenancy.normalise(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _match_label(text: str) -> tuple[str, str]:
    from kprof_lib.adapters.alertmanager import parse_match_label

    try:
        return parse_match_label(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--kubeconfig",
        metavar="PATH",
        help="kubeconfig to use (default: in-cluster config, else $KUBECONFIG or ~/.kube/config)",
    )
    parser.add_argument(
        "--namespace",
        metavar="NS",
        help="the operator's own namespace, where its Lease and capture-history ConfigMaps live "
        f"(default: $POD_NAMESPACE, else the in-cluster namespace, else {DEFAULTS.namespace})",
    )
    parser.add_argument(
        "--leader-elect",
        action=argparse.BooleanOptionalAction,
        default=DEFAULTS.leader_elect,
        help="campaign for the Lease so that one replica works at a time (default: on)",
    )
    for entry in _FLAGS:
        if entry is None:
            wiring.add_tls_flag(parser)
            continue
        flag, options, text = entry
        default = getattr(DEFAULTS, flag[2:].replace("-", "_"))
        shown = f"{default:g}" if isinstance(default, float) else default
        parser.add_argument(flag, default=default, help=text.format(shown), **options)
    parser.add_argument(
        "--cluster-wide-namespaces",
        type=_names,
        default=list(DEFAULTS.cluster_wide_namespaces),
        metavar="NS[,NS...]",
        help="namespaces whose ProfilingConfigs may select pods in other namespaces (default: none; "
        "every other config selects pods of its own namespace only)",
    )
    parser.add_argument(
        "--allowed-destination",
        dest="allowed_destinations",
        type=_destination,
        action="append",
        metavar="DEST",
        help="where profiles may go, repeatable: local, s3://BUCKET, http(s)://ENDPOINT/BUCKET or * "
        f"(default: {', '.join(DEFAULTS.allowed_destinations)}); a config asking for another destination is invalid",
    )
    parser.add_argument(
        "--alerts-match-label",
        dest="alerts_match_labels",
        type=_match_label,
        action="append",
        metavar="ALERT_LABEL=POD_LABEL",
        help="repeatable: an alert without the pod label matches the pods of its namespace whose POD_LABEL "
        "equals its ALERT_LABEL (e.g. service=app.kubernetes.io/name; default: none)",
    )
    parser.add_argument("--log-level", choices=logs.LEVELS, default="info", help="(default: info)")
    parser.add_argument("--log-format", choices=logs.FORMATS, default="json", help="(default: json)")


def _memory_problem(args: argparse.Namespace) -> str | None:
    # Checked at start: a budget that cannot hold `concurrency` profiles at the cap would make
    # captures wait on each other, or, set too high for the pod's memory limit, get it OOM-killed.
    need = args.concurrency * args.max_profile_bytes
    if need > args.max_inflight_bytes:
        return (
            f"--concurrency ({args.concurrency}) x --max-profile-bytes ({args.max_profile_bytes}) = {need} "
            f"does not fit --max-inflight-bytes ({args.max_inflight_bytes})"
        )
    return None


# Where the container's memory limit is: cgroup v2, then v1.
CGROUP_MEMORY_LIMITS = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")


def memory_limit(paths: tuple[str, ...] = CGROUP_MEMORY_LIMITS) -> int | None:
    """The process's cgroup memory limit in bytes; None when there is none ("max", absent, or the
    v1 "unlimited" of nearly 2**63)."""
    for path in paths:
        try:
            text = Path(path).read_text(encoding="ascii").strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 2**60:
            return int(text)
        return None
    return None


def _memory_warning(args: argparse.Namespace, limit: int | None) -> str | None:
    # The budget is what profiles may take on top of the process itself (about 100 MiB): more than
    # half the limit leaves too little headroom, and the kernel OOM-kills the operator mid-capture.
    if limit is not None and args.max_inflight_bytes > limit // 2:
        return (
            f"--max-inflight-bytes ({args.max_inflight_bytes}) is more than half of this container's memory "
            f"limit ({limit}): large profiles may get the operator OOM-killed"
        )
    return None


def _lease_problem(args: argparse.Namespace) -> str | None:
    # client-go's rule: the leader gives up (renew deadline) before a standby may take over (lease
    # duration), and tries several times (retry period, with 1.2 for jitter) within the deadline.
    if args.leader_elect and not args.lease_duration > args.renew_deadline > 1.2 * args.retry_period:
        return (
            f"--lease-duration ({args.lease_duration:g}) must be greater than --renew-deadline "
            f"({args.renew_deadline:g}), which must be greater than 1.2 x --retry-period ({args.retry_period:g})"
        )
    return None


def _alerts_problem(args: argparse.Namespace, node: bool) -> str | None:
    # A receiver without a token would take alerts from anyone; receiver flags without the
    # receiver would silently do nothing. A node agent checks its node's pods only, and a Service
    # would hand each delivery to one agent: the receiver is the operator's.
    if node and args.alerts_addr:
        return "--alerts-addr: the Alertmanager receiver is served by the operator (kprof run), not by node agents"
    if args.alerts_addr and not args.alerts_token_file:
        return "--alerts-addr needs --alerts-token-file (the bearer token Alertmanager sends)"
    if bool(args.alerts_tls_cert_file) != bool(args.alerts_tls_key_file):
        return "--alerts-tls-cert-file and --alerts-tls-key-file go together"
    if not args.alerts_addr:
        given = [
            f"--{name}"
            for name in ("alerts-token-file", "alerts-tls-cert-file")
            if getattr(args, name.replace("-", "_"))
        ]
        given += ["--alerts-match-label"] if args.alerts_match_labels else []
        if given:
            return f"{', '.join(given)} given without --alerts-addr: the receiver is off"
    return None


def run(args: argparse.Namespace, *, node: bool = False) -> int:
    """`kprof run`; with `node`, `kprof node` (commands.node): a node agent from the same flags."""
    logs.configure(args.log_level, args.log_format)
    problem = _lease_problem(args) or _memory_problem(args) or _alerts_problem(args, node)
    if problem:
        log.error("bad flags: %s", problem, extra={"action": "exit", "reason": "bad-flags"})
        return 2
    warning = _memory_warning(args, memory_limit())
    if warning:
        log.warning("%s", warning, extra={"action": "start", "reason": "memory-headroom"})

    from kprof_lib.adapters import tracing
    from kprof_lib.adapters.kube import connection
    from kprof_lib.runtimes.operator.app import Operator
    from kprof_lib.runtimes.operator.settings import Settings

    operator_type: Callable[..., Operator] = Operator
    settings_type: type[Settings] = Settings
    if node:
        from kprof_lib.runtimes.node.agent import NodeAgent
        from kprof_lib.runtimes.node.settings import NodeSettings

        operator_type, settings_type = NodeAgent, NodeSettings

    # Every flag but these five sets the Settings field of its name.
    same = {field.name: getattr(args, field.name) for field in fields(settings_type) if hasattr(args, field.name)}
    settings = settings_type(
        **{
            **same,
            "namespace": args.namespace or connection.own_namespace(DEFAULTS.namespace),
            "tls_verify": not args.insecure_skip_tls_verify,
            "cluster_wide_namespaces": tuple(args.cluster_wide_namespaces),
            "allowed_destinations": tuple(args.allowed_destinations or DEFAULTS.allowed_destinations),
            "alerts_match_labels": tuple(args.alerts_match_labels or ()),
        }
    )
    try:
        provider = tracing.configure(service_name="kprof-node" if node else "kprof-operator", set_global=True)
    except ValueError as error:
        log.error("tracing: %s", error, extra={"action": "exit", "reason": "bad-tracing-settings"})
        return 2

    stop = threading.Event()
    received: list[str] = []
    started: list[Any] = []

    def request_stop(signum: int, frame: FrameType | None) -> None:
        received.append(signal.Signals(signum).name)
        if stop.is_set() and started:
            # A second signal: the grace period is not waited out.
            started[0].abort()
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        operator = operator_type(settings, tracer_provider=provider)
        started.append(operator)
        operator.start()
    except Exception as error:  # no kubeconfig, an address in use: say which, do not trace back
        log.error("cannot start: %s", error, extra={"action": "exit", "reason": "start-failed"})
        tracing.shutdown()
        return 1
    while not stop.wait(1.0):
        pass
    log.info(
        "received %s",
        received[0] if received else "a stop request",
        extra={"action": "shutdown", "reason": (received[0] if received else "stop").lower()},
    )
    clean = operator.stop()
    tracing.shutdown(timeout_millis=5_000)
    logging.shutdown()
    if not clean:
        # A check still running past the grace period would keep the interpreter from exiting;
        # the Lease is released and the spool flushed, so leave now.
        sys.stderr.flush()
        os._exit(0)
    return 0

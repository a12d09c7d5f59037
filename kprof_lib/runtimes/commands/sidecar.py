"""Run beside the app in its pod (shareProcessNamespace: true): measure the app's process from /proc,
read the pod's identity from the downward API, and capture profiles by the ProfilingConfig spec
from KPROF_CONFIG_FILE / KPROF_CONFIG, with no Kubernetes API access and no metrics-server. Flags
override the KPROF_* environment the kprof-sidecar Helm library chart sets (docs/SIDECAR.md)."""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path

from kprof_lib.adapters import podinfo
from kprof_lib.runtimes import endpoints, logs, sidecar, wiring
from kprof_lib.runtimes.single import SettingsError, parse_target


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="ProfilingConfig (or bare spec) YAML/JSON; default $KPROF_CONFIG_FILE, else "
        f"$KPROF_CONFIG (inline), else {sidecar.DEFAULT_CONFIG_FILE}",
    )
    parser.add_argument(
        "--app-process",
        metavar="REGEX",
        help="regular expression matched against the app's command line (default: the first "
        "process that is neither the pause process nor this sidecar)",
    )
    parser.add_argument(
        "--app-container", metavar="NAME", help="name of the app container (default $KPROF_APP_CONTAINER, else app)"
    )
    parser.add_argument(
        "--target",
        metavar="URL",
        help="the app's pprof address (default http://127.0.0.1:<profiling.io/port annotation "
        "or 6060><profiling.io/path or /debug/pprof>)",
    )
    parser.add_argument(
        "--podinfo-dir",
        metavar="DIR",
        help=f"downwardAPI volume with labels and annotations (default $KPROF_PODINFO_DIR, else "
        f"{sidecar.DEFAULT_PODINFO_DIR})",
    )
    parser.add_argument(
        "--local-dir",
        metavar="DIR",
        help=f"profiles without s3Config (default $KPROF_LOCAL_DIR, else {sidecar.DEFAULT_LOCAL_DIR})",
    )
    parser.add_argument(
        "--spool-dir",
        metavar="DIR",
        help="uploads waiting for S3, and the capture history (default $KPROF_SPOOL_DIR, else "
        f"{sidecar.DEFAULT_SPOOL_DIR})",
    )
    parser.add_argument(
        "--health-addr",
        metavar="HOST:PORT",
        default=sidecar.DEFAULT_HEALTH_ADDR,
        help="serves /healthz and /readyz (default %(default)s)",
    )
    parser.add_argument(
        "--grace-period",
        type=float,
        metavar="SECONDS",
        default=sidecar.DEFAULT_GRACE_SECONDS,
        help="on SIGTERM, how long a capture in flight may take before it is cut; keep it below the "
        "pod's terminationGracePeriodSeconds (default %(default)g)",
    )
    wiring.add_max_bytes_flag(parser)
    wiring.add_tls_flag(parser)
    parser.add_argument("--log-level", choices=logs.LEVELS, default="info")
    parser.add_argument("--log-format", choices=logs.FORMATS, default="json")


def settings_from(args: argparse.Namespace, env: Mapping[str, str]) -> sidecar.SidecarSettings:
    """Flags win over the environment, which wins over the defaults."""
    identity = podinfo.identity_from_env(env, app_container=args.app_container)
    config_text = None
    config_file = args.config or env.get("KPROF_CONFIG_FILE", "").strip() or None
    if config_file is None:
        config_text = env.get("KPROF_CONFIG", "").strip() or None
        if config_text is None:
            if not Path(sidecar.DEFAULT_CONFIG_FILE).exists():
                raise SettingsError(
                    "no ProfilingConfig: give --config FILE, or set KPROF_CONFIG_FILE or KPROF_CONFIG "
                    f"(default file {sidecar.DEFAULT_CONFIG_FILE} does not exist)"
                )
            config_file = sidecar.DEFAULT_CONFIG_FILE
    pattern = args.app_process or None
    if pattern is not None:
        try:
            re.compile(pattern)
        except re.error as error:
            raise SettingsError(f"--app-process {pattern!r}: not a regular expression: {error}") from None
    info_dir = args.podinfo_dir or env.get("KPROF_PODINFO_DIR", "").strip() or sidecar.DEFAULT_PODINFO_DIR
    if not args.grace_period >= 0:
        raise SettingsError(f"--grace-period: must be 0 or more seconds, not {args.grace_period:g}")
    address = args.health_addr or sidecar.DEFAULT_HEALTH_ADDR
    try:
        endpoints.parse_address(address)
    except ValueError as error:
        raise SettingsError(f"--health-addr {error}") from None
    return sidecar.SidecarSettings(
        identity=identity,
        config_file=Path(config_file) if config_file else None,
        config_text=config_text,
        podinfo_dir=Path(info_dir),
        app_process=pattern,
        target=parse_target(args.target) if args.target else None,
        local_dir=Path(args.local_dir or env.get("KPROF_LOCAL_DIR", "").strip() or sidecar.DEFAULT_LOCAL_DIR),
        spool_dir=Path(args.spool_dir or env.get("KPROF_SPOOL_DIR", "").strip() or sidecar.DEFAULT_SPOOL_DIR),
        health_addr=address,
        max_profile_bytes=args.max_profile_bytes,
        tls_verify=not args.insecure_skip_tls_verify,
        grace_period=args.grace_period,
    )


def run(args: argparse.Namespace) -> int:
    logs.configure(args.log_level, args.log_format)
    try:
        settings = settings_from(args, os.environ)
    except (SettingsError, podinfo.PodInfoError) as error:
        print(f"kprof sidecar: {error}", file=sys.stderr)
        return 2
    try:
        runner = sidecar.Sidecar(settings)
    except ValueError as error:  # a tracing setting that cannot be honoured
        print(f"kprof sidecar: {error}", file=sys.stderr)
        return 2
    return runner.run()

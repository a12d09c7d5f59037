"""Run beside the app in its pod (shareProcessNamespace: true): measure the app's process from /proc,
read the pod's identity from the downward API, and capture profiles by the ProfilingConfig spec
from KPROF_CONFIG_FILE / KPROF_CONFIG, with no Kubernetes API access and no metrics-server. Flags
override the KPROF_* environment the kprof-sidecar Helm library chart sets (docs/SIDECAR.md)."""

from __future__ import annotations

import argparse
import os
import sys

from kprof_lib.adapters.podinfo import PodInfoError
from kprof_lib.execution.capture import DEFAULT_MAX_BYTES
from kprof_lib.runtimes import logs, sidecar, wiring
from kprof_lib.runtimes.single import SettingsError


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
        "--max-profile-bytes",
        type=int,
        default=DEFAULT_MAX_BYTES,
        metavar="N",
        help="size cap per profile (default %(default)s)",
    )
    wiring.add_tls_flag(parser)
    parser.add_argument("--log-level", choices=logs.LEVELS, default="info")
    parser.add_argument("--log-format", choices=logs.FORMATS, default="json")


def run(args: argparse.Namespace) -> int:
    logs.configure(args.log_level, args.log_format)
    try:
        settings = sidecar.settings_from(
            env=os.environ,
            config=args.config,
            app_process=args.app_process,
            app_container=args.app_container,
            target=args.target,
            local_dir=args.local_dir,
            spool_dir=args.spool_dir,
            podinfo_dir=args.podinfo_dir,
            health_addr=args.health_addr,
            max_profile_bytes=args.max_profile_bytes,
            tls_verify=not args.insecure_skip_tls_verify,
        )
    except (SettingsError, PodInfoError) as error:
        print(f"kprof sidecar: {error}", file=sys.stderr)
        return 2
    try:
        runner = sidecar.Sidecar(settings)
    except ValueError as error:  # a tracing setting that cannot be honoured
        print(f"kprof sidecar: {error}", file=sys.stderr)
        return 2
    return runner.run()

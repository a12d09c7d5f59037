"""Profile a process on this machine by a ProfilingConfig's rules: capture from its pprof address
(--target) when its CPU or memory, read from /proc by its pid (--pid), crosses a threshold, and/or
every --on-demand-interval seconds. Prints one line per check and one per stored profile; runs
until Ctrl-C or --duration. Percentages are of one core and of the machine's memory (what `top`
shows) unless --cpu-request/--cpu-limit and --memory-request/--memory-limit give other baselines.
--check-interval may go down to 1 second here (the schema's minimum of 10 applies to clusters).
Exit codes: 0 when every profile asked for was stored, 1 when one failed, the start-up check of the
destination or target failed, or the --config file is invalid (as `kprof validate` says it), 2 for
bad flags, 130 after a second Ctrl-C."""

from __future__ import annotations

import argparse
import copy
import os
import sys
from pathlib import Path
from typing import Any

from kprof_lib.adapters import procfs
from kprof_lib.execution import redact
from kprof_lib.runtimes import captures, documents, localmode, logs, progress, wiring
from kprof_lib.runtimes.single import SettingsError, parse_target
from kprof_lib.spec import schemas
from kprof_lib.spec.errors import SpecError
from kprof_lib.spec.model import Spec
from kprof_lib.spec.validation import validate_document, validate_spec
from kprof_lib.state import quantities

# Outside the profiles folder, so a spooled profile is never mistaken for a stored one.
DEFAULT_SPOOL_DIR = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kprof" / "spool"

# Spec fields a flag sets, for error messages that name the flag.
FLAG_OF_FIELD = {
    "spec.thresholds.cpuThresholdPercent": "--cpu-threshold",
    "spec.thresholds.memoryThresholdPercent": "--memory-threshold",
    "spec.thresholds.cooldownSeconds": "--cooldown",
    "spec.onDemand.intervalSeconds": "--on-demand-interval",
    "spec.profileTypes": "--types",
    "spec.cpuProfileSeconds": "--cpu-seconds",
    "spec.s3Config.bucket": "--to",
    "spec.s3Config.endpoint": "--s3-endpoint",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--target",
        required=True,
        metavar="URL",
        help="the process's pprof address, e.g. http://127.0.0.1:6060 (path defaults to /debug/pprof)",
    )
    parser.add_argument("--pid", type=int, help="the process to measure (needed for thresholds)")
    parser.add_argument("--name", help="its name in keys and spans (default <command>-<pid>); namespace is 'local'")
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="ProfilingConfig or bare spec (YAML/JSON); its selector is ignored, flags override it",
    )
    when = parser.add_argument_group("when to capture (override the config)")
    when.add_argument(
        "--cpu-threshold",
        type=float,
        metavar="PERCENT",
        help="CPU %% of the baseline, 1-1000 "
        f"(default with thresholds on: {_default('thresholds', 'cpuThresholdPercent')})",
    )
    when.add_argument(
        "--memory-threshold",
        type=float,
        metavar="PERCENT",
        help="memory %% of the baseline, 1-1000 "
        f"(default with thresholds on: {_default('thresholds', 'memoryThresholdPercent')})",
    )
    when.add_argument(
        "--cooldown",
        type=int,
        metavar="SECONDS",
        help=f"between threshold captures, 60-604800 (default: {_default('thresholds', 'cooldownSeconds')})",
    )
    when.add_argument(
        "--on-demand-interval", type=int, metavar="SECONDS", help="also capture on this schedule (30-86400)"
    )
    when.add_argument(
        "--check-interval",
        type=float,
        metavar="SECONDS",
        help=f"how often usage is checked, {localmode.MIN_CHECK_INTERVAL:g}-{localmode.MAX_CHECK_INTERVAL:g} "
        "(default: the config's checkIntervalSeconds, else 30)",
    )
    baseline = parser.add_argument_group("baselines for the percentages (default: 1 core, the machine's memory)")
    baseline.add_argument("--cpu-request", metavar="CORES", help="e.g. 0.5 or 500m")
    baseline.add_argument("--cpu-limit", metavar="CORES", help="used when no --cpu-request is given")
    baseline.add_argument("--memory-request", metavar="QUANTITY", help="bytes or e.g. 512Mi")
    baseline.add_argument("--memory-limit", metavar="QUANTITY", help="used when no --memory-request is given")
    what = parser.add_argument_group("what to capture and where")
    what.add_argument(
        "--types",
        help=f"comma-separated, from {','.join(schemas.PROFILE_TYPES)} "
        f"(default: the config's, else {','.join(_default('profileTypes'))})",
    )
    what.add_argument(
        "--cpu-seconds",
        type=int,
        metavar="SECONDS",
        help=f"CPU profile duration, 1-300 (default: the config's, else {_default('cpuProfileSeconds')})",
    )
    captures.add_destination_flags(what)
    what.add_argument(
        "--spool-dir",
        metavar="DIR",
        help="with --to: where profiles wait while S3 is unreachable (default: %(default)s)",
        default=str(DEFAULT_SPOOL_DIR),
    )
    wiring.add_max_bytes_flag(what)
    wiring.add_tls_flag(parser)
    parser.add_argument("--duration", type=float, metavar="SECONDS", help="stop after this long (default: Ctrl-C)")
    parser.add_argument(
        "--console-spans",
        action="store_true",
        help="print each span on one line (OTEL_* variables add other exporters)",
    )
    parser.add_argument("--log-level", choices=logs.LEVELS, default="warning", help="(default: %(default)s)")
    parser.add_argument("--log-format", choices=logs.FORMATS, default="text", help="(default: %(default)s)")


def _default(*field: str) -> Any:
    """The schema's default of a spec field: what applies when neither the config nor a flag says."""
    return schemas.spec_field(*field)["default"]


def threshold_notes(args: argparse.Namespace, given: dict[str, Any]) -> list[str]:
    """What a threshold flag turned on without being asked: `--cpu-threshold 25` alone also
    captures at the default memory threshold (and the other way round; `--cooldown` alone turns on
    both), so say so at start. Called only when a threshold flag was given."""
    notes = []
    for field, flag, name in (
        ("cpuThresholdPercent", "--cpu-threshold", "CPU"),
        ("memoryThresholdPercent", "--memory-threshold", "memory"),
    ):
        if field not in given:
            notes.append(
                f"{name} threshold {_default('thresholds', field)}% is the default "
                f"(not given by {flag} or the config); set {flag} to change it"
            )
    return notes


class UsageError(ValueError):
    """Flags that cannot be used together or values out of range; exit code 2."""


class ConfigInvalid(ValueError):
    """The --config file does not validate on its own; exit code 1, as `kprof validate` gives."""

    def __init__(self, path: str, name: str | None, error: SpecError):
        where = f"{path} document 1" + (f" ({name})" if name else "")
        super().__init__("\n".join(f"{where}: {p['path']}: {p['message']}" for p in error.errors))


def check_config(path: str, config: Any) -> None:
    """The config as `kprof validate` judges it: a whole ProfilingConfig, or a bare spec."""
    name = None
    try:
        if isinstance(config, dict) and ("kind" in config or "apiVersion" in config):
            metadata = config.get("metadata")
            name = metadata.get("name") if isinstance(metadata, dict) else None
            validate_document(config)
        elif isinstance(config, dict):
            validate_spec(config.get("spec") if "spec" in config else config)
    except SpecError as error:
        raise ConfigInvalid(path, name if isinstance(name, str) else None, error) from None


def build_spec(args: argparse.Namespace, config: Any = None) -> tuple[Spec, list[str]]:
    """The spec: the config's (selector and transport dropped: the process is given), then the
    flags on top; validated, defaults applied; and notes for the start (`threshold_notes`).
    `SpecError` paths are those of the spec."""
    spec: dict[str, Any] = {}
    if config is not None:
        if not isinstance(config, dict):
            raise UsageError(f"{args.config}: expected a ProfilingConfig or its spec")
        given = copy.deepcopy(config.get("spec") if "spec" in config else config)
        if not isinstance(given, dict):
            raise UsageError(f"{args.config}: spec must be an object")
        spec = given
        spec.pop("selector", None)
        spec.pop("transport", None)
    threshold_flags = {
        "cpuThresholdPercent": args.cpu_threshold,
        "memoryThresholdPercent": args.memory_threshold,
        "cooldownSeconds": args.cooldown,
    }
    notes: list[str] = []
    if any(value is not None for value in threshold_flags.values()):
        thresholds = spec.setdefault("thresholds", {})
        if isinstance(thresholds, dict):
            thresholds.update({key: value for key, value in threshold_flags.items() if value is not None})
            notes = threshold_notes(args, thresholds)
    if args.on_demand_interval is not None:
        spec["onDemand"] = {"enabled": True, "intervalSeconds": args.on_demand_interval}
    if args.types is not None:
        spec["profileTypes"] = [name.strip() for name in args.types.split(",") if name.strip()]
    if args.cpu_seconds is not None:
        spec["cpuProfileSeconds"] = args.cpu_seconds
    if args.out is not None:
        spec.pop("s3Config", None)
    elif args.to is not None:
        try:
            spec["s3Config"] = captures.s3_destination(args.to)
        except ValueError as error:
            raise UsageError(str(error)) from None
    if isinstance(spec.get("s3Config"), dict):
        if args.s3_endpoint:
            spec["s3Config"]["endpoint"] = args.s3_endpoint
        if args.region:
            spec["s3Config"]["region"] = args.region
    elif args.s3_endpoint or args.region:
        raise UsageError("--s3-endpoint and --region go with --to s3://... (or a config with s3Config)")
    validated = validate_spec(spec)
    # A local process has no annotations (capture-now) and no alerts: the other triggers count.
    measured = validated.reads_metrics or validated.reads_goroutines
    if not measured and not (validated.get("onDemand") or {}).get("enabled"):
        raise UsageError(
            "nothing to capture: give --cpu-threshold/--memory-threshold, --on-demand-interval, "
            "or a config with thresholds, onDemand or triggers (spike, oom, goroutines)"
        )
    return validated, notes


def _check_quantity(flag: str, value: str | None) -> None:
    if value is None:
        return
    try:
        parsed = quantities.parse(value)
    except ValueError as error:
        raise UsageError(f"{flag}: {error}") from None
    if parsed <= 0:
        raise UsageError(f"{flag}: must be more than 0, not {value!r}")


def settings_from(args: argparse.Namespace) -> localmode.LocalSettings:
    try:
        target = parse_target(args.target)
    except SettingsError as error:
        raise UsageError(str(error)) from None
    if args.check_interval is not None and not (
        localmode.MIN_CHECK_INTERVAL <= args.check_interval <= localmode.MAX_CHECK_INTERVAL
    ):
        raise UsageError(
            f"--check-interval: {args.check_interval:g} is outside "
            f"{localmode.MIN_CHECK_INTERVAL:g}-{localmode.MAX_CHECK_INTERVAL:g} seconds"
        )
    if args.duration is not None and args.duration <= 0:
        raise UsageError(f"--duration: must be more than 0, not {args.duration:g}")
    for flag, value in (
        ("--cpu-request", args.cpu_request),
        ("--cpu-limit", args.cpu_limit),
        ("--memory-request", args.memory_request),
        ("--memory-limit", args.memory_limit),
    ):
        _check_quantity(flag, value)
    config = documents.load_one(args.config) if args.config else None
    if config is not None:
        check_config(args.config, config)
    spec, notes = build_spec(args, config)
    if args.pid is not None:
        try:
            procfs.read_stat(args.pid)
        except procfs.ProcessGone:
            raise UsageError(f"--pid {args.pid}: no such process") from None
    elif spec.reads_metrics:
        raise UsageError(
            "thresholds need --pid (the process to measure), e.g. --pid $(pgrep -n my-service); "
            "so do the spike and oom triggers"
        )
    return localmode.LocalSettings(
        target=target,
        pid=args.pid,
        name=args.name or localmode.default_name(args.pid, target),
        service=args.name or (localmode.command_name(args.pid) if args.pid is not None else f"pprof-{target.port}"),
        spec=spec,
        resources=localmode.baselines(
            cpu_request=args.cpu_request,
            cpu_limit=args.cpu_limit,
            memory_request=args.memory_request,
            memory_limit=args.memory_limit,
        ),
        out_dir=Path(args.out or "profiles"),
        check_interval=args.check_interval,
        duration=args.duration,
        console_spans=args.console_spans,
        max_profile_bytes=args.max_profile_bytes,
        tls_verify=not args.insecure_skip_tls_verify,
        notes=tuple(notes),
        spool_dir=Path(args.spool_dir),
    )


def _explain(error: SpecError) -> str:
    lines = []
    for problem in error.errors:
        path = problem["path"]
        flag = next(
            (
                flag
                for field, flag in FLAG_OF_FIELD.items()
                if path == field or path.startswith((f"{field}[", f"{field}."))
            ),
            None,
        )
        lines.append(f"{path}{f' ({flag})' if flag else ''}: {problem['message']}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    handler = logs.configure(args.log_level, args.log_format)
    if args.log_format == "text":
        # Each failure is on stdout once (the check's `!` line); a JSON log keeps every record.
        handler.addFilter(progress.not_reported)
    try:
        settings = settings_from(args)
    except UsageError as error:
        print(redact.text(f"kprof local: {error}"), file=sys.stderr)
        return 2
    except SpecError as error:
        print(redact.text(f"kprof local: invalid settings:\n{_explain(error)}"), file=sys.stderr)
        return 2
    except (documents.DocumentError, ConfigInvalid) as error:
        print(redact.text(f"kprof local: {error}"), file=sys.stderr)
        return 1
    try:
        session = localmode.LocalRun(settings)
    except ValueError as error:  # a tracing setting that cannot be honoured
        print(redact.text(f"kprof local: {error}"), file=sys.stderr)
        return 2
    return session.run()

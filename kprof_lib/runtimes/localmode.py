"""Local mode (`kprof local`): the single-target runtime (`runtimes.single`) over one process on this
machine, reported on the terminal. The
process is reached at its pprof address (`--target`) and measured from /proc by its pid (`--pid`);
it stands in the cluster state as a pod "local/<name>" whose requests are the baselines given on
the command line. Used by developers, by `make demo`, and by tests that drive the Go sample app.

Baselines: a local process has no requests, so unless --cpu-request/--cpu-limit and
--memory-request/--memory-limit say otherwise, CPU is measured against one core and memory against
the machine's memory: the percentages are those `top` shows for the process.

Output, on stdout: one line per check (time, usage, the plan's and the execution's recap), one line
per profile as it lands (type, size, where), and with --console-spans one compact line per span.
Before the first check, the destination is checked (the directory takes a file; the bucket answers
a HeadBucket) and so is the target (its pprof index answers): a problem that waiting cannot fix
stops the session with one line naming the flag. With `--to s3://...`, profiles wait in a spool
folder while S3 is unreachable and are uploaded when it is back, as in the operator.

Ctrl-C (or SIGTERM) starts no new capture, says what is being finished and how long that may take,
and exits when it is done; a second one cuts the captures in flight at once (nothing half-written is
left) and exits 130. Otherwise the exit code is 0 when every profile asked for was stored (or
spooled), 1 when one failed.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from opentelemetry import trace

from kprof_lib.adapters import podinfo, pprof, procfs, tracing, windows
from kprof_lib.adapters.pprof import goroutines
from kprof_lib.execution import redact, results
from kprof_lib.execution.capture import DEFAULT_MAX_BYTES
from kprof_lib.execution.cycle import CheckReport
from kprof_lib.execution.executor import Executor
from kprof_lib.execution.telemetry import TRACER_NAME
from kprof_lib.runtimes import interrupts, preflight, progress, wiring
from kprof_lib.runtimes.checkloop import CheckLoop, HistoryBook
from kprof_lib.runtimes.single import SingleTarget, Target, one_pod_state
from kprof_lib.spec.model import Spec
from kprof_lib.state import optin, quantities

NAMESPACE = "local"
MIN_CHECK_INTERVAL = 1.0  # local mode may check faster than the schema's 10 s, for demos and tests
MAX_CHECK_INTERVAL = 86400.0


@dataclass(frozen=True)
class LocalSettings:
    target: Target
    pid: int | None
    name: str
    service: str  # the stand-in pod's app.kubernetes.io/name label
    spec: Spec  # validated, defaults applied
    resources: dict[str, dict[str, str]]  # the stand-in pod's container resources (the baselines)
    out_dir: Path
    check_interval: float | None = None  # None: the spec's thresholds.checkIntervalSeconds
    duration: float | None = None
    console_spans: bool = False
    max_profile_bytes: int = DEFAULT_MAX_BYTES
    tls_verify: bool = True
    notes: tuple[str, ...] = ()  # said at start: what the flags turned on without being asked
    spool_dir: Path | None = None  # where profiles for S3 wait while it is unreachable


def baselines(
    *,
    cpu_request: str | None = None,
    cpu_limit: str | None = None,
    memory_request: str | None = None,
    memory_limit: str | None = None,
    proc: Path = procfs.PROC,
) -> dict[str, dict[str, str]]:
    """The stand-in container's resources: what was given, and for a resource given neither a
    request nor a limit, a request of one core (CPU) or of the machine's memory."""
    requests = {name: value for name, value in (("cpu", cpu_request), ("memory", memory_request)) if value is not None}
    limits = {name: value for name, value in (("cpu", cpu_limit), ("memory", memory_limit)) if value is not None}
    if "cpu" not in requests and "cpu" not in limits:
        requests["cpu"] = "1"
    if "memory" not in requests and "memory" not in limits:
        requests["memory"] = str(procfs.read_mem_total(proc))
    return {key: value for key, value in (("requests", requests), ("limits", limits)) if value}


def command_name(pid: int, proc: Path = procfs.PROC) -> str:
    """The program's file name (comm is cut at 15 characters, the command line is not)."""
    cmdline = procfs.read_cmdline(pid, proc)
    if cmdline:
        return os.path.basename(cmdline[0]) or cmdline[0]
    try:
        return procfs.read_stat(pid, proc).comm
    except procfs.ProcessGone:
        return "process"


def default_name(pid: int | None, target: Target, proc: Path = procfs.PROC) -> str:
    """`<command>-<pid>` for a measured process, `pprof-<port>` otherwise."""
    return f"{command_name(pid, proc)}-{pid}" if pid is not None else f"pprof-{target.port}"


class LocalRun:
    """One `kprof local` session: `run()` returns the exit code."""

    def __init__(
        self,
        settings: LocalSettings,
        *,
        out: IO[str] | None = None,
        env: Mapping[str, str] = os.environ,
        proc: Path = procfs.PROC,
    ):
        self.settings = settings
        self.printer = progress.Console(out or sys.stdout)
        self.proc = proc
        self.identity = podinfo.PodIdentity(name=settings.name, namespace=NAMESPACE, app_container="app")
        self.pod_key = f"{NAMESPACE}/{settings.name}"
        self.meter = (
            procfs.UsageMeter(self._locate, proc=proc, min_window=min(1.0, (settings.check_interval or 2.0) / 2))
            if settings.pid is not None
            else None
        )
        self.provider = progress.tracer_provider(self.printer if settings.console_spans else None, env, "kprof-local")
        tracer = self.provider.get_tracer(TRACER_NAME) if self.provider else trace.NoOpTracer()
        self.executor = Executor(concurrency=1, max_bytes=settings.max_profile_bytes, tracer=tracer)
        self.stores = wiring.Stores(local_dir=settings.out_dir, spool_dir=settings.spool_dir)
        transport = pprof.make_transport("direct", tls_verify=settings.tls_verify)
        self.goroutines = goroutines.GoroutineReader(concurrency=1)
        self.loop = loop = CheckLoop(
            config_name=f"{NAMESPACE}/{settings.name}",
            load_spec=lambda: settings.spec,
            observe=self.observe,
            pod_key=lambda: self.pod_key,
            executor=self.executor,
            stores=self.stores,
            transport=progress.Watching(transport, self.printer),
            history=HistoryBook(),
            windows=windows.UsageWindows(),
            # Straight through the transport: the console shows the profiles fetched, not these reads.
            count_goroutines=lambda spec, pods: self.goroutines.read(
                transport, goroutines.requests_for(spec, pods), within=self.loop.check_interval(spec) / 2
            ),
            interval=settings.check_interval,
            wrap_store=lambda store: progress.Landing(store, self.printer),
            on_report=self._print_report,
            on_error=self._print_error,
        )
        say = self.printer.line
        self.runtime = SingleTarget(
            loop,
            meter=self.meter,
            provider=self.provider,
            on_drain=lambda _: interrupts.later(say, f"stopping: {interrupts.finishing(self.executor)}"),
            on_abort=lambda _: interrupts.later(say, "aborting: captures in flight cut, nothing more stored"),
            thread_name="kprof-local-loop",
        )
        self.exit_code = 0
        self.failed_profiles = 0

    def _locate(self) -> int | None:
        pid = self.settings.pid
        try:
            procfs.read_stat(pid, self.proc)  # type: ignore[arg-type]
        except procfs.ProcessGone:
            return None
        return pid

    def observe(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        target = self.settings.target
        pod_annotations = {optin.ENABLED: "true", **target.annotations()}
        pod = podinfo.pod_document(
            self.identity,
            labels={"app.kubernetes.io/name": self.settings.service},
            annotations=pod_annotations,
            address=target.host,
            resources=self.settings.resources,
        )
        if self.meter is None:
            return [pod], []
        usage = self.meter.measure()
        if usage is None:  # the process the session is about is gone: the session ends
            raise procfs.ProcessGone(f"process {self.settings.pid} has exited")
        return one_pod_state(self.identity, pod, usage, self.loop.clock.now())

    # Output -------------------------------------------------------------------------------------

    def _print_report(self, report: CheckReport) -> None:
        decision = report.plan.results[0] if report.plan.results else None
        observed = decision.observed if decision is not None else None
        cpu, memory = (observed.cpu_percent, observed.memory_percent) if observed else (None, None)
        usage = f"cpu {_percent(cpu)}  mem {_percent(memory)}"
        clock = dt.datetime.now().strftime("%H:%M:%S")
        self.printer.line(f"[{clock}] check {self.loop.checks:<3} {usage}  {report.recap()}")
        self.failed_profiles += sum(1 for profile in report.execution.profiles if profile.status == results.FAILED)
        self.printer.failures(report.execution.profiles)
        for pod_result in report.execution.results:
            if pod_result.status == results.SKIPPED and pod_result.message:
                self.printer.line(f"  - {pod_result.message}")
        self.printer.release()  # the check's own spans, after its lines

    def _print_error(self, error: Exception) -> None:
        if isinstance(error, procfs.ProcessGone):
            self.printer.line(f"{error}; stopping")
            self.exit_code = 1
            self.loop.stop()
            return
        self.printer.line(f"check failed: {error}")

    def _print_start(self) -> None:
        settings, spec = self.settings, self.settings.spec
        whens = []
        if spec.get("thresholds"):
            t = spec["thresholds"]
            whens.append(
                f"cpu >= {t['cpuThresholdPercent']:g}% or memory >= {t['memoryThresholdPercent']:g}% "
                f"(cooldown {t['cooldownSeconds']}s)"
            )
        if (spec.get("onDemand") or {}).get("enabled"):
            whens.append(f"every {spec['onDemand']['intervalSeconds']}s (on-demand)")
        whens.extend(_trigger_whens(spec))
        baseline = ", ".join(
            f"{name} {kind.rstrip('s')} {_human(name, value)}"
            for kind, values in settings.resources.items()
            for name, value in values.items()
        )
        self.printer.line(
            f"kprof local: {settings.target} as pod {self.pod_key}"
            + (f" (pid {settings.pid})" if settings.pid is not None else "")
        )
        self.printer.line(
            f"  capture {','.join(spec['profileTypes'])} when {' or '.join(whens) or 'never'}; "
            f"check every {self.loop.check_interval(spec):g}s; baselines: {baseline}"
        )
        for note in settings.notes:
            self.printer.line(f"  note: {note}")
        store = self.stores.for_spec(spec)
        self.printer.line(
            f"  profiles go to {store.description}"
            + (f"; stopping after {settings.duration:g}s" if settings.duration else "")
            + "; Ctrl-C to stop"
        )

    # Lifecycle ----------------------------------------------------------------------------------

    def startup_problem(self) -> preflight.Problem | None:
        """What can be checked before the first check: the destination, then the target. A
        temporary S3 problem is printed and the session goes on (the spool keeps the profiles)."""
        spec, settings = self.settings.spec, self.settings
        store = self.stores.for_spec(spec)
        if spec.get("s3Config"):
            problem = preflight.bucket(store, "--to")
            if problem is not None and not problem.permanent:
                where = f" in {settings.spool_dir}" if settings.spool_dir else ""
                self.printer.line(f"warning: {problem}; profiles wait{where} until it answers")
                problem = None
        else:
            problem = preflight.directory(settings.out_dir, "--out")
        if problem is None:
            app = settings.target
            tls_verify = settings.tls_verify
            problem = preflight.target(app.scheme, app.host, app.port, app.path, "--target", tls_verify=tls_verify)
        return problem

    def run(self) -> int:
        problem = self.startup_problem()
        if problem is not None:
            print(redact.text(f"kprof local: {problem}"), file=sys.stderr)
            if self.provider is not None:
                tracing.shutdown(self.provider)
            return 1
        self._print_start()
        try:
            completed = self.runtime.run(duration=self.settings.duration)
        finally:
            self.goroutines.close()
        if self.loop.aborted:
            self.printer.line(f"aborted after {self.loop.checks} check(s)")
            return interrupts.EXIT_INTERRUPTED
        self.printer.line(
            f"stopped after {self.loop.checks} check(s)"
            + (f"; {self.failed_profiles} profile(s) failed" if self.failed_profiles else "")
        )
        if not completed:
            return 1  # the loop died of an error, already reported on stderr
        return 1 if self.failed_profiles else self.exit_code


def _trigger_whens(spec: Spec) -> list[str]:
    """What spec.triggers adds to "capture ... when", as the start line says it."""
    triggers, whens = spec.triggers, []
    if triggers.spike is not None:
        whens.append(f"usage spikes over its rolling mean of {triggers.window_samples} checks (spike)")
    if triggers.oom is not None:
        whens.append(f"memory would reach its limit within {triggers.oom.horizon}s (oom-risk)")
    if triggers.goroutines is not None and triggers.goroutines.threshold is not None:
        whens.append(f"goroutines >= {triggers.goroutines.threshold}")
    if triggers.goroutines is not None and triggers.goroutines.spike_diff_percent is not None:
        whens.append(f"goroutines spike by {triggers.goroutines.spike_diff_percent:g}%")
    return whens


def _human(resource: str, quantity: str) -> str:
    value = quantities.parse(quantity)
    if resource == "cpu":
        return f"{value:g} core{'s' if value != 1 else ''}"
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if value >= size:
            return f"{value / size:.1f} {unit}"
    return f"{value:g} bytes"


def _percent(value: float | None) -> str:
    return "   -  " if value is None else f"{value:5.1f}%"

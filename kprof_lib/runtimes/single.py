"""The single-target runtime: one ProfilingConfig over one target, checked in the foreground of its
own process until a signal. The sidecar (`runtimes.sidecar`: the app container of its own pod,
reported in log lines) and local mode (`runtimes.localmode`: a process on this machine, reported on
the terminal) are this runtime with their own spec source, target and reporter.

Each check is the operator's own cycle (`runtimes.checkloop` runs `run_check`) over a one-pod
cluster state: the target as a stand-in pod and, while its process is measured, the PodMetrics of
that process from /proc. The main thread only waits for the loop, so a signal handler never
interrupts a thread that holds the loop's locks; the check in progress is finished first. After
`CheckLoop.abort()` (a second Ctrl-C) the main thread waits only a moment for the loop's thread.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from typing import Any
from urllib.parse import urlsplit

from kprof_lib.adapters import podinfo, procfs, tracing
from kprof_lib.runtimes import interrupts
from kprof_lib.runtimes.checkloop import CheckLoop
from kprof_lib.state import cluster, optin


class SettingsError(ValueError):
    """A setting (flag or environment variable) that cannot be used; the message names it."""


@dataclass(frozen=True)
class Target:
    """Where the target serves pprof, as this process reaches it."""

    scheme: str
    host: str
    port: int
    path: str

    def __str__(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}{self.path}"

    def annotations(self) -> dict[str, str]:
        """The stand-in pod's endpoint annotations."""
        return {optin.PORT: str(self.port), optin.PATH: self.path, optin.SCHEME: self.scheme}


def parse_target(url: str) -> Target:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError(f"--target {url!r}: expected http(s)://HOST:PORT[/PATH], e.g. http://127.0.0.1:6060")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise SettingsError(f"--target {url!r}: the port must be a number from 1 to 65535") from None
    path = parts.path.rstrip("/") or optin.DEFAULT_PATH
    return Target(parts.scheme, parts.hostname, port, path)


def one_pod_state(
    identity: podinfo.PodIdentity, pod: dict[str, Any], usage: procfs.Usage | None, now: dt.datetime
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The pods and PodMetrics of a one-pod cluster state: no PodMetrics while nothing is measured."""
    if usage is None:
        return [pod], []
    metrics = podinfo.pod_metrics(
        identity,
        cpu_cores=usage.cpu_cores,
        memory_bytes=usage.memory_bytes,
        timestamp=cluster.format_time(now),
        window_seconds=usage.window_seconds,
    )
    return [pod], [metrics]


@dataclass(eq=False)
class SingleTarget:
    """The loop, the process meter and the tracer provider of one session; `run()` checks in the
    foreground until the loop is stopped, a signal or `duration` seconds. The first SIGTERM or
    SIGINT drains the loop (no new profile; the check in progress ends) and calls `on_drain`, to
    say so; a second aborts it (`CheckLoop.abort`) and calls `on_abort`."""

    loop: CheckLoop
    _: KW_ONLY
    meter: procfs.UsageMeter | None
    provider: Any
    on_drain: Callable[[int], None]
    on_abort: Callable[[int], None]
    thread_name: str
    _wake: threading.Event = field(default_factory=threading.Event, init=False)

    def __post_init__(self) -> None:
        self.signals = interrupts.TwoStages(self._drain, self._abort)

    def run(self, *, duration: float | None = None) -> bool:
        """True when the loop ended as asked; False when it died of an error (reported already)."""
        with self.signals.installed():
            return self._run(duration)

    def _run(self, duration: float | None) -> bool:
        if self.meter is not None:
            self.meter.measure()  # opens the first CPU window

        def checks() -> None:
            try:
                self.loop.run(duration=duration)
            finally:
                self._wake.set()

        worker = threading.Thread(target=checks, name=self.thread_name, daemon=True)
        try:
            worker.start()
            while worker.is_alive():
                # A wait resumes after a signal handler for the rest of its timeout: the handler
                # sets the event when it aborted, so the abort is not held up by it.
                self._wake.wait(0.5)
                if self.loop.aborted:
                    # Cut captures end their threads in milliseconds; a store write in progress
                    # gets a moment, then the process goes.
                    worker.join(interrupts.ABORT_WAIT_SECONDS)
                    break
                if self._wake.is_set():  # the loop is ending: its thread is about done
                    worker.join(0.5)
        finally:
            if self.provider is not None:
                tracing.shutdown(self.provider)
        return self.loop.completed

    def _drain(self, signum: int) -> None:
        self.loop.executor.drain()
        self.loop.stop()
        self.on_drain(signum)

    def _abort(self, signum: int) -> None:
        self.loop.abort()
        self._wake.set()
        self.on_abort(signum)

"""The sidecar runtime (`kprof sidecar`): profiles the app container of its own pod, from inside the
pod, with no Kubernetes API access and no metrics-server.

Through the pod's shared process namespace (`shareProcessNamespace: true`) it finds the app's
process and measures its CPU rate and memory from /proc (`adapters.procfs`); from the downward API
it knows the pod's name, namespace, labels, annotations and the app container's requests and limits
(`adapters.podinfo`). Each check builds the one-pod cluster state from those and runs the
operator's own cycle (the single-target runtime, `runtimes.single`) on it, reaching the app's pprof
endpoint over the pod's loopback. Profiles go to S3 (spec.s3Config, spooled on the pod's emptyDir
while S3 is unreachable) or to the local directory. The capture history lives in memory and in a
JSON file beside the spool, so a restarted sidecar keeps its cooldowns; so do the usage windows
(`kprof-usage-window.json`: the last checks' CPU, memory and goroutine count, for the trend
triggers). Every check reads the app's goroutine count (the first line of goroutine?debug=1).
`kubectl annotate pod P profiling.io/capture-now=<new value> --overwrite` reaches the sidecar
through the downward API annotations file (Kubernetes rewrites it within about a minute); a value
the history has not served yet starts a check at once, whose plan captures it (reason
`requested`), once per distinct value.

The spec comes from a file (a ConfigMap volume; re-read when it changes, a broken edit is logged
and the last good spec kept) or from inline YAML/JSON. SIGTERM or SIGINT: no new capture
starts, the one in flight gets up to the grace period (`--grace-period`, inside the pod's
terminationGracePeriodSeconds) and is cut after it, the spool is flushed, and the process exits 0;
a second signal cuts at once and exits 130.

At start the destination is checked: the local and spool folders take a file, the bucket answers a
HeadBucket with the pod's credentials. A bucket that does not exist or refuses the credentials, or
a folder that cannot be written, stops the sidecar with one log line naming the field or flag; S3
not answering is logged and the spool keeps the profiles. A target that does not answer yet is
logged only: the app container may start after the sidecar. docs/SIDECAR.md lists the pod settings.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml

from kprof_lib.adapters import podinfo, pprof, procfs, tracing, windows
from kprof_lib.adapters.pprof import goroutines
from kprof_lib.execution.capture import DEFAULT_MAX_BYTES
from kprof_lib.execution.cycle import CheckReport
from kprof_lib.execution.executor import Executor
from kprof_lib.runtimes import endpoints, interrupts, preflight, wiring
from kprof_lib.runtimes.checkloop import CheckLoop, HistoryBook
from kprof_lib.runtimes.single import SettingsError, SingleTarget, Target, one_pod_state
from kprof_lib.spec.errors import SpecError
from kprof_lib.spec.model import Spec
from kprof_lib.spec.validation import validate_spec
from kprof_lib.state import optin

log = logging.getLogger("kprof.sidecar")

HISTORY_FILE = "kprof-history.json"
WINDOW_FILE = "kprof-usage-window.json"
LOOPBACK = "127.0.0.1"
DEFAULT_HEALTH_ADDR = ":8082"
DEFAULT_LOCAL_DIR = "/var/lib/kprof/profiles"
DEFAULT_SPOOL_DIR = "/var/lib/kprof/spool"
DEFAULT_CONFIG_FILE = "/etc/kprof/config.yaml"
DEFAULT_PODINFO_DIR = "/etc/kprof/podinfo"
# Inside a pod's default terminationGracePeriodSeconds (30), with room to flush and exit.
DEFAULT_GRACE_SECONDS = 25.0


@dataclass(frozen=True)
class SidecarSettings:
    identity: podinfo.PodIdentity
    config_file: Path | None
    config_text: str | None
    podinfo_dir: Path | None
    app_process: str | None
    target: Target | None
    local_dir: Path
    spool_dir: Path
    health_addr: str
    max_profile_bytes: int = DEFAULT_MAX_BYTES
    tls_verify: bool = True
    grace_period: float = DEFAULT_GRACE_SECONDS


class SpecSource:
    """The spec from a file or inline text: a whole ProfilingConfig document or a bare spec. A file
    is read again at every check; a change that does not validate is logged (reason InvalidConfig)
    and the last good spec stays in force."""

    def __init__(self, *, path: Path | None = None, text: str | None = None):
        if (path is None) == (text is None):
            raise ValueError("give a path or a text")
        self.path = path
        self._text = text
        self._seen: str | None = None
        self._spec: Spec | None = None
        self.name = "kprof-sidecar"

    def load(self) -> Spec:
        """The spec in force; raises `SpecError` or `SettingsError` only while there has never been
        a valid one."""
        try:
            text = self.path.read_text(encoding="utf-8") if self.path is not None else self._text
        except OSError as error:
            return self._keep(SettingsError(f"{self.path}: cannot read: {error.strerror or error}"))
        assert text is not None
        if text == self._seen and self._spec is not None:
            return self._spec
        self._seen = text
        try:
            spec, name = self._parse(text)
        except (SpecError, SettingsError) as error:
            return self._keep(error)
        if self._spec is not None:
            log.info(
                "ProfilingConfig changed; the new spec applies from this check on",
                extra={"config": name, "action": "reload", "reason": "ConfigChanged"},
            )
        self._spec, self.name = spec, name
        return spec

    def _parse(self, text: str) -> tuple[Spec, str]:
        where = str(self.path) if self.path is not None else "KPROF_CONFIG"
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise SettingsError(f"{where}: not valid YAML or JSON: {error}") from None
        if not isinstance(document, dict):
            raise SettingsError(f"{where}: expected a ProfilingConfig or its spec (an object)")
        name = self.name
        if "spec" in document and ("kind" in document or "apiVersion" in document):
            metadata = document.get("metadata") or {}
            if isinstance(metadata, dict) and metadata.get("name"):
                name = "/".join(str(part) for part in (metadata.get("namespace"), metadata["name"]) if part)
            document = document["spec"]
        return validate_spec(document), name

    def _keep(self, error: Exception) -> Spec:
        if self._spec is None:
            raise error
        log.error(
            "invalid ProfilingConfig, keeping the previous spec: %s",
            error,
            extra={"config": self.name, "action": "reload", "reason": "InvalidConfig"},
        )
        return self._spec


class Sidecar:
    """One sidecar process: `run()` checks until SIGTERM/SIGINT (or `stop()`), then returns 0."""

    def __init__(self, settings: SidecarSettings, *, env: Mapping[str, str] = os.environ, proc: Path = procfs.PROC):
        self.settings = settings
        identity = settings.identity
        self.pod_key = f"{identity.namespace}/{identity.name}"
        self.spec_source = SpecSource(path=settings.config_file, text=settings.config_text)
        self.proc = proc
        self.meter = procfs.UsageMeter(self._locate_app, proc=proc)
        self._app_seen: bool | None = None
        self.provider = tracing.configure(service_name="kprof-sidecar", env=_with_pod_resource(env, identity))
        self.executor = Executor(
            concurrency=1, max_bytes=settings.max_profile_bytes, tracer=tracing.get_tracer(self.provider)
        )
        self.stores = wiring.Stores(local_dir=settings.local_dir, spool_dir=settings.spool_dir)
        transport = pprof.make_transport("direct", tls_verify=settings.tls_verify)
        self.goroutines = goroutines.GoroutineReader(concurrency=1)
        self._woken_for: str | None = None  # the capture-now value the last early check was for
        self._spec: Spec | None = None  # the spec of the latest check
        self.loop = loop = CheckLoop(
            config_name=self.spec_source.name,
            load_spec=self._load_spec,
            observe=self.observe,
            pod_key=lambda: self.pod_key,
            executor=self.executor,
            stores=self.stores,
            transport=transport,
            history=HistoryBook(settings.spool_dir / HISTORY_FILE),
            windows=windows.WindowFile(settings.spool_dir / WINDOW_FILE),
            count_goroutines=lambda spec, pods: self.goroutines.read(
                transport, goroutines.requests_for(spec, pods), within=self.loop.check_interval(spec) / 2
            ),
            wake_early=self._capture_requested,
            on_report=self._log_report,
        )
        self.runtime = SingleTarget(
            loop,
            meter=self.meter,
            provider=self.provider,
            on_drain=self._on_drain,
            on_abort=self._on_abort,
            thread_name="kprof-sidecar-loop",
        )
        self._running = threading.Event()
        self._grace_timer: threading.Timer | None = None

    # What a check sees --------------------------------------------------------------------------

    def _load_spec(self) -> Spec:
        spec = self.spec_source.load()
        self.loop.config_name = self.spec_source.name
        self._spec = spec
        return spec

    def _locate_app(self) -> int | None:
        return procfs.find_app_process(self.settings.app_process, proc=self.proc)

    def observe(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        identity = self.settings.identity
        labels, pod_annotations = self._downward_api()
        target = self.settings.target
        if target is not None:
            pod_annotations = {**pod_annotations, **target.annotations()}
        pod = podinfo.pod_document(
            identity, labels=labels, annotations=pod_annotations, address=target.host if target else LOOPBACK
        )
        usage = self.meter.measure()
        self._note_app(usage)  # the app not found: a check without metrics, not an error
        return one_pod_state(identity, pod, usage, self.loop.clock.now())

    def _downward_api(self) -> tuple[dict[str, str], dict[str, str]]:
        folder = self.settings.podinfo_dir
        labels = podinfo.read_downward_file(folder / "labels") if folder else None
        found = podinfo.read_downward_file(folder / "annotations") if folder else None
        # Without the annotations file, the sidecar's presence is the pod's opt-in; with it, the
        # pod's own profiling.io/enabled decides (and can pause the sidecar without a restart).
        return labels or {}, found if found is not None else {optin.ENABLED: "true"}

    def _capture_requested(self) -> bool:
        """Whether the pod's capture-now annotation holds a value the history has not served (and
        no early check was started for it yet: one that captures nothing is not repeated)."""
        if self._spec is None or not self._spec.triggers.capture_now:
            return False
        try:
            _, annotations = self._downward_api()
        except podinfo.PodInfoError:
            return False  # the file is being rewritten, or broken: the next check says so
        value = annotations.get(optin.CAPTURE_NOW)
        if not value or value == self._woken_for:
            return False
        if value == self.loop.history.get(self.pod_key).get("captureNowValue"):
            return False
        self._woken_for = value
        log.info(
            "%s=%s: checking now",
            optin.CAPTURE_NOW,
            value,
            extra={"pod": self.pod_key, "action": "wake", "reason": "requested"},
        )
        return True

    def _note_app(self, usage: procfs.Usage | None) -> None:
        seen = usage is not None
        if seen == self._app_seen:
            return
        self._app_seen = seen
        if seen:
            assert usage is not None
            cmdline = " ".join(procfs.read_cmdline(usage.pid, self.proc))[:200]
            log.info(
                "measuring the app process %d: %s",
                usage.pid,
                cmdline,
                extra={"pod": self.pod_key, "action": "measure", "pid": usage.pid},
            )
        else:
            log.warning(
                "app process not found (pattern %r); checks see no metrics until it is",
                self.settings.app_process or "(first process that is not pause or the sidecar)",
                extra={"pod": self.pod_key, "action": "measure", "reason": "no-metrics"},
            )

    def _log_report(self, report: CheckReport) -> None:
        decision = report.plan.results[0] if report.plan.results else None
        observed = decision.observed if decision is not None else None
        log.info(
            "check: %s",
            report.recap(),
            extra={
                "config": self.spec_source.name,
                "pod": self.pod_key,
                "action": decision.action if decision else None,
                "reason": decision.reason if decision else None,
                "detail": decision.message or None if decision else None,  # the numbers behind it
                "cpuPercent": observed.cpu_percent if observed else None,
                "memoryPercent": observed.memory_percent if observed else None,
                "profiles": [
                    {"type": p.type, "status": p.status, "bytes": p.bytes, "uri": p.uri, "error": p.error}
                    for p in report.execution.profiles
                ]
                or None,
            },
        )

    # Lifecycle ----------------------------------------------------------------------------------

    def ready(self) -> tuple[bool, str]:
        return (True, "checking") if self._running.is_set() and not self.loop.stopping else (False, "not running")

    def run(self) -> int:
        """Runs until stopped; 0 after a clean stop, 1 when the spec was never valid."""
        try:
            spec = self._load_spec()
        except (SpecError, SettingsError) as error:
            log.error("cannot start: %s", error, extra={"action": "start", "reason": "InvalidConfig"})
            return 1
        self._log_start(spec)
        if not self._startup_checks(spec):
            return 1
        try:
            server = endpoints.Endpoints(
                endpoints.parse_address(self.settings.health_addr), endpoints.health_routes(self.ready), "health"
            )
        except OSError as error:
            log.error(
                "cannot serve health checks on %s: %s",
                self.settings.health_addr,
                error,
                extra={"action": "start", "reason": "listen-failed"},
            )
            return 1
        server.start()
        self._running.set()
        try:
            completed = self.runtime.run()
        finally:
            self._running.clear()
            server.stop()
            self.goroutines.close()
            if self._grace_timer is not None:
                self._grace_timer.cancel()
        if self.runtime.signals.aborted:
            log.info("aborted", extra={"pod": self.pod_key, "action": "stop", "reason": "second-signal"})
            return interrupts.EXIT_INTERRUPTED
        if not completed:  # the loop died of an error: worth a restart of the container
            log.error("the check loop ended unexpectedly", extra={"pod": self.pod_key, "action": "stop"})
            return 1
        log.info("stopped", extra={"pod": self.pod_key, "action": "stop"})
        return 0

    def _on_abort(self, signum: int) -> None:
        interrupts.later(
            log.info,
            "%s received again: cutting the captures in flight",
            signal.Signals(signum).name,
            extra={"pod": self.pod_key, "action": "stop"},
        )

    def _on_drain(self, signum: int) -> None:
        """The first signal: say what is being finished, and cut it once the grace period is over."""
        grace = self.settings.grace_period
        interrupts.later(
            log.info,
            "%s received: no new capture; %s (cut after the grace period of %g s)",
            signal.Signals(signum).name,
            interrupts.finishing(self.executor, again=""),
            grace,
            extra={"pod": self.pod_key, "action": "stop"},
        )
        self._grace_timer = threading.Timer(grace, self._grace_over)
        self._grace_timer.daemon = True
        self._grace_timer.start()

    def _grace_over(self) -> None:
        log.warning(
            "grace period over: cutting the captures in flight",
            extra={"pod": self.pod_key, "action": "stop", "reason": "grace-period-over"},
        )
        self.loop.abort()

    def _startup_checks(self, spec: Spec) -> bool:
        """The destination (and, as a warning only, the target) before the first check."""
        settings = self.settings
        problems = [preflight.directory(settings.spool_dir, "--spool-dir")]
        if spec.get("s3Config"):
            problems.append(preflight.bucket(self.stores.for_spec(spec), "spec.s3Config.bucket"))
        else:
            problems.append(preflight.directory(settings.local_dir, "--local-dir"))
        for problem in problems:
            if problem is None:
                continue
            if problem.permanent:
                log.error("cannot start: %s", problem, extra={"action": "start", "reason": "destination"})
                return False
            log.warning(
                "%s; profiles wait in the spool until it answers",
                problem,
                extra={"action": "start", "reason": "store-unreachable"},
            )
        app = settings.target
        if app is not None:
            tls_verify = settings.tls_verify
            problem = preflight.target(app.scheme, app.host, app.port, app.path, "--target", tls_verify=tls_verify)
            if problem is not None:
                log.warning(
                    "%s; checked again at every capture (the app may still be starting)",
                    problem,
                    extra={"action": "start", "reason": "target-not-answering"},
                )
        return True

    def _log_start(self, spec: Spec) -> None:
        store = self.stores.for_spec(spec)
        log.info(
            "kprof sidecar starting",
            extra={
                "config": self.spec_source.name,
                "pod": self.pod_key,
                "action": "start",
                "target": str(self.settings.target) if self.settings.target else f"{LOOPBACK} (port from annotations)",
                "appProcess": self.settings.app_process,
                "appContainer": self.settings.identity.app_container,
                "store": store.description,
                "history": str(self.loop.history.path),
                "usageWindow": str(self.settings.spool_dir / WINDOW_FILE),
                "health": self.settings.health_addr,
                "tracing": self.provider is not None,
            },
        )


def _with_pod_resource(env: Mapping[str, str], identity: podinfo.PodIdentity) -> dict[str, str]:
    """The environment with the pod's identity added to OTEL_RESOURCE_ATTRIBUTES (the user's own
    attributes win), so the sidecar's spans say which pod they come from."""
    ours = {"k8s.pod.name": identity.name, "k8s.namespace.name": identity.namespace}
    if identity.uid:
        ours["k8s.pod.uid"] = identity.uid
    given = env.get("OTEL_RESOURCE_ATTRIBUTES", "").strip()
    pairs = ",".join(f"{key}={quote(value, safe='')}" for key, value in ours.items())
    return {**env, "OTEL_RESOURCE_ATTRIBUTES": f"{pairs},{given}" if given else pairs}

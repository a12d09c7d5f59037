"""The operator, wired: watch caches for pods and ProfilingConfigs, leader election on a Lease, one
scheduler with a check (and on-demand, and pgo) job per config, the check runner, the pgo writer,
the stores and transports, the HTTP endpoints. `kprof run` builds one from its flags; the
end-to-end tests build one in the test process when the scenario is not about processes.

Start order: endpoints (so probes answer at once), watches, the scheduler, then the campaign for
the Lease. `stop()` is the SIGTERM path: no new runs and no new profile within the runs in progress
(`Executor.drain`), which get the grace period; then what is still in flight is cut
(`Executor.abort`: nothing half-written, nothing more stored), the spools are flushed once, the
Lease is released (a standby takes over at once), then everything else stops. `abort()` (a second
signal) cuts at once. Only the leader checks; a standby keeps its caches warm and its jobs scheduled, and
when it gains the Lease it reads the capture history afresh and checks every config at once.
"""

from __future__ import annotations

import datetime as dt
import gc
import logging
import os
import socket
import threading
import uuid
from typing import Any

from opentelemetry import trace

from kprof_lib.adapters import alertmanager, pprof, tracing
from kprof_lib.adapters.kube import connection
from kprof_lib.adapters.kube.events import EventRecorder
from kprof_lib.adapters.kube.history import ConfigMapHistory
from kprof_lib.adapters.kube.informer import DELETED, ConfigWatch, PodCache
from kprof_lib.adapters.kube.leader import LeaderElector
from kprof_lib.adapters.kube.metrics import MetricsServer
from kprof_lib.adapters.kube.selectors import to_selector_string
from kprof_lib.adapters.kube.status import StatusWriter
from kprof_lib.adapters.kube.windows import ConfigMapWindows
from kprof_lib.adapters.pprof.goroutines import GoroutineReader
from kprof_lib.adapters.spool import SpoolingStore
from kprof_lib.execution.budget import ByteBudget
from kprof_lib.execution.executor import Executor, PodLocks
from kprof_lib.execution.ports import EventRecorder as EventRecorderPort
from kprof_lib.execution.ports import (
    MetricsSource,
    ProfileStore,
    StatusPort,
    Transport,
)
from kprof_lib.planning import cadence, tenancy
from kprof_lib.runtimes import captures, endpoints, wiring
from kprof_lib.runtimes.operator import alertreceiver, monitoring
from kprof_lib.runtimes.operator.alertstore import AlertStore
from kprof_lib.runtimes.operator.pgojobs import PgoWriter
from kprof_lib.runtimes.operator.requests import CaptureNowWakeups
from kprof_lib.runtimes.operator.runner import CheckRunner
from kprof_lib.runtimes.operator.scheduling import CHECK, PGO, ConfigScheduler, Run, config_key
from kprof_lib.runtimes.operator.settings import Settings

log = logging.getLogger("kprof.operator")


def default_identity() -> str:
    # Two processes on one host (or a restarted pod) must not share an identity: client-go adds
    # a UUID for the same reason.
    base = os.environ.get("POD_NAME") or socket.gethostname() or "kprof"
    return f"{base}_{uuid.uuid4().hex[:8]}"


# After the captures in flight were cut, how long their checks get to record what happened.
ABORT_WAIT_SECONDS = 2.0


def takes_alerts(spec: Any) -> bool:
    """Whether a ProfilingConfig's (raw) spec asks for captures on alerts (`triggers.alerts.enabled`)."""
    triggers = spec.get("triggers") if isinstance(spec, dict) else None
    alerts = triggers.get("alerts") if isinstance(triggers, dict) else None
    return isinstance(alerts, dict) and alerts.get("enabled") is True


class StartError(RuntimeError):
    """The operator cannot start as set; the message names the flag."""


class Operator:
    def __init__(
        self, settings: Settings, *, api_client: Any = None, tracer_provider: trace.TracerProvider | None = None
    ):
        self.settings = settings
        self.api = api_client or connection.api_client(settings.kubeconfig)
        self.identity = settings.identity or default_identity()
        self.instruments = monitoring.Instruments()
        self._stopped = threading.Event()
        self._synced = threading.Event()
        self._activation = threading.Lock()  # sync and leadership may arrive together

        self.pods = self._pod_cache()
        self.configs = ConfigWatch(self.api)
        self.history = self._history_store()
        self.events = self._event_recorder()
        self.stores = wiring.Stores(
            local_dir=settings.local_dir, spool_dir=settings.spool_dir, spool_max_bytes=settings.spool_max_bytes
        )
        # One executor for every check: its limits (--concurrency, --cpu-concurrency) and its byte
        # budget bound the whole operator, not each config.
        self.executor = Executor(
            concurrency=settings.concurrency,
            cpu_concurrency=settings.cpu_concurrency,
            max_bytes=settings.max_profile_bytes,
            pod_locks=PodLocks(),
            tracer=tracing.get_tracer(tracer_provider),
            byte_budget=ByteBudget(settings.max_inflight_bytes),
        )
        self._transports: dict[str, Transport] = {}
        self._transports_lock = threading.Lock()
        # What the trend triggers read: the usage windows, and goroutine counts, read apart from the
        # executor's capture slots (30 s CPU profiles holding them all must not hold these up).
        self.windows = self._usage_windows()
        self.goroutines = GoroutineReader(concurrency=settings.goroutine_concurrency)
        # The Alertmanager receiver's alerts, given to every check; None when it is off.
        self.alerts = AlertStore(settings.alerts_max, settings.alerts_expiry) if settings.alerts_addr else None

        self.elector: LeaderElector | None = None
        if settings.leader_elect:
            self.elector = LeaderElector(
                self.api,
                settings.namespace,
                settings.lease_name,
                self.identity,
                lease_duration=settings.lease_duration,
                renew_deadline=settings.renew_deadline,
                retry_period=settings.retry_period,
                on_started_leading=self._started_leading,
                on_stopped_leading=self._stopped_leading,
            )

        self.runner = CheckRunner(
            configs=self._config,
            pods=self.pods,
            metrics=self._metrics_source(),
            history=self.history,
            events=self.events,
            status=self._status_port(),
            executor=self.executor,
            store_for=self.stores.for_spec,
            transport_for=self._transport,
            default_transport=settings.transport,
            instruments=self.instruments,
            is_leader=self.may_check,
            selector_string=to_selector_string,
            flush=self._flush_spool,
            policy=tenancy.Policy.of(settings.cluster_wide_namespaces, settings.allowed_destinations),
            jaeger_url=captures.jaeger_url(),
            usage_windows=self.windows,
            goroutine_reader=self.goroutines,
            alerts=self.alerts.firing if self.alerts is not None else None,
        )
        self.pgo = PgoWriter(
            configs=self._config, stores=self.stores, is_leader=self.may_check, policy=self.runner.policy
        )
        self.scheduler = ConfigScheduler(
            self._run,
            on_removed=self._forget,
            next_on_demand=self._next_on_demand,
            workers=max(8, settings.concurrency * 2),
        )
        self.configs.on_change(self._config_changed)
        # A new capture-now value on a pod: the checks of the configs selecting it run at once.
        self.pods.on_change(
            CaptureNowWakeups(
                self.configs.items,
                lambda key: self.scheduler.run_now(key, CHECK),
                self.may_check,
                cluster_wide_namespaces=settings.cluster_wide_namespaces,
            )
        )

        self.instruments.track_watch("pods", lambda: self.pods.restarts + self.pods.relists)
        self.instruments.track_watch("profilingconfigs", lambda: self.configs.restarts + self.configs.relists)
        self.instruments.track_leader(self.is_leader)
        self.instruments.track_spool(
            lambda: sum(store.pending_bytes for store in self.stores.spooling()),
            lambda: sum(store.refused for store in self.stores.spooling()),
        )
        receiver = self._alert_receiver()  # first: a token or certificate it cannot read stops the start
        self.endpoints = monitoring.serve(
            endpoints.parse_address(settings.health_addr),
            endpoints.parse_address(settings.metrics_addr),
            self.ready,
            self.instruments,
        )
        if receiver is not None:
            self.endpoints.append(receiver)

    # Where pods, usage, history, Events and status go: a node agent (runtimes.node.agent) has its own.

    def _pod_cache(self) -> PodCache:
        return PodCache(self.api)

    def _metrics_source(self) -> MetricsSource:
        return MetricsServer(self.api)

    def _history_store(self) -> ConfigMapHistory:
        return ConfigMapHistory(self.api, self.settings.namespace)

    def _usage_windows(self) -> ConfigMapWindows:
        return ConfigMapWindows(self.api, self.settings.namespace)

    def _event_recorder(self) -> EventRecorderPort:
        return EventRecorder(self.api, host=os.environ.get("POD_NAME") or self.identity)

    def _status_port(self) -> StatusPort:
        return StatusWriter(self.api)

    # Lifecycle ---------------------------------------------------------------------------------

    def start(self) -> Operator:
        """Starts everything; raises `StartError` when the Lease's namespace does not exist."""
        if self.elector is not None and self.elector.missing_namespace():
            namespace = self.settings.namespace
            raise StartError(
                f"namespace {namespace!r} does not exist: the Lease and the capture history live there; "
                "create it, or set --namespace (default: $POD_NAMESPACE, else the in-cluster namespace)"
            )
        for endpoint in self.endpoints:
            endpoint.start()
        self.pods.start()
        self.configs.start()
        # Jobs stay paused until both caches are synced and this process leads: a check over a
        # half-loaded cache would see pods missing.
        self.scheduler.start(active=False)
        threading.Thread(target=self._activate_when_synced, name="kprof-sync-wait", daemon=True).start()
        if self.elector is not None:
            self.elector.start()
        started = "operator started as %s (namespace %s, leader election %s)"
        extra = {"action": "start", "identity": self.identity, "namespace": self.settings.namespace}
        log.info(started, self.identity, self.settings.namespace, "on" if self.elector else "off", extra=extra)
        return self

    def stop(self) -> bool:
        """Stop as on SIGTERM; True when every run in progress finished within the grace period."""
        if self._stopped.is_set():
            return True
        self._stopped.set()
        grace = self.settings.grace_period
        self.executor.drain()
        flying = self.executor.in_flight()
        log.info(
            "stopping: no new capture; waiting up to %ss for checks in progress (%s)",
            grace,
            ", ".join(f"{entry.profile_type} of {entry.pod}" for entry in flying) or "no profile in flight",
            extra={"action": "stop", "in_flight": self.scheduler.in_flight},
        )
        finished = self.scheduler.stop(grace)
        if not finished:
            log.warning(
                "grace period over with %d check(s) still running; cutting their captures",
                self.scheduler.in_flight,
                extra={"action": "stop", "reason": "grace-period-over"},
            )
            self.executor.abort()
            finished = self.scheduler.wait_idle(ABORT_WAIT_SECONDS)
        self.windows.flush()
        self.goroutines.close()
        for store in self.stores.spooling():
            try:
                report = store.flush()
            except Exception as error:
                log.warning("flushing the spool %s failed: %s", store.spool_dir, error, extra={"action": "flush"})
                continue
            if report.remaining_bytes:
                stays = "%d bytes of profiles stay in the spool %s for the next start"
                extra = {"action": "flush", "reason": "store-unreachable"}
                log.warning(stays, report.remaining_bytes, store.spool_dir, extra=extra)
        if self.elector is not None:
            self.elector.stop(release=True)
        self.configs.stop()
        self.pods.stop()
        for endpoint in self.endpoints:
            endpoint.stop()
        log.info("operator stopped", extra={"action": "stopped", "clean": finished})
        return finished

    def abort(self) -> None:
        """Cut every capture in flight now (a second signal); `stop()` still does the rest."""
        self.executor.abort()

    def wait_synced(self, timeout: float) -> bool:
        return self.pods.wait_synced(timeout) and self.configs.wait_synced(timeout)

    # State -------------------------------------------------------------------------------------

    def is_leader(self) -> bool:
        if self._stopped.is_set():
            return False
        return self.elector.is_leader if self.elector is not None else True

    def may_check(self) -> bool:
        """Checks run only in the leader, and only over synced caches."""
        return self._synced.is_set() and self.is_leader()

    def ready(self) -> tuple[bool, str]:
        """Ready when both caches are synced and leadership is settled (leading, or standing by
        after having seen the Lease)."""
        waiting = [
            name for name, cache in (("pods", self.pods), ("profilingconfigs", self.configs)) if not cache.synced
        ]
        if waiting:
            return False, f"waiting for the {' and '.join(waiting)} cache to sync"
        if self._stopped.is_set():
            return False, "shutting down"
        if self.elector is None:
            return True, "caches synced; leader election off"
        if not self.elector.settled:
            return False, f"caches synced; Lease {self.settings.lease_name} not seen yet"
        if self.elector.is_leader:
            return True, "caches synced; leader"
        return True, f"caches synced; standing by (leader: {self.elector.leader_identity or 'none'})"

    @property
    def addresses(self) -> dict[str, str]:
        """Where each endpoint listens, e.g. {"health": "127.0.0.1:8081", "metrics": ...}."""
        found = {}
        for endpoint in self.endpoints:
            for part in endpoint.name.split("+"):
                found[part] = str(endpoint.address)
        return found

    # Callbacks ---------------------------------------------------------------------------------

    def _run(self, run: Run) -> object:
        return self.pgo(run) if run.kind == PGO else self.runner(run)

    def _config(self, key: str) -> dict[str, Any] | None:
        namespace, _, name = key.partition("/")
        return self.configs.get(namespace, name)

    def _config_changed(self, event_type: str, config: dict[str, Any]) -> None:
        if self._stopped.is_set():
            return
        if event_type == DELETED:
            self.scheduler.remove(config_key(config))
        else:
            self.scheduler.sync(config)

    def _forget(self, key: str) -> None:
        self.runner.forget(key)
        if self.is_leader():
            self.history.forget(key)
            self.windows.forget(key)
            extra = {"config": key, "action": "forget", "reason": "deleted"}
            log.info("forgot the capture history of %s", key, extra=extra)

    def _next_on_demand(self, key: str, interval: int) -> dt.datetime | None:
        """When the pod of `key` captured on demand longest ago is due again (None: no history)."""
        return cadence.earliest_on_demand_due(self.history.load(key), interval)

    def _alert_receiver(self) -> endpoints.Endpoints | None:
        settings, store = self.settings, self.alerts
        if store is None or settings.alerts_addr is None:
            return None
        if not settings.alerts_token_file:
            raise StartError("--alerts-addr needs --alerts-token-file")
        self.instruments.track_alerts(lambda: len(store))
        receiver = alertreceiver.AlertReceiver(
            store,
            alertreceiver.TokenFile(settings.alerts_token_file),
            mapping=alertmanager.LabelMapping(
                settings.alerts_namespace_label, settings.alerts_pod_label, settings.alerts_match_labels
            ),
            on_firing=self._wake_alert_checks,
            standing_by=self._standing_by,
            max_body_bytes=settings.alerts_max_body_bytes,
            instruments=self.instruments,
        )
        tls = None
        if settings.alerts_tls_cert_file and settings.alerts_tls_key_file:
            tls = alertreceiver.tls_context(settings.alerts_tls_cert_file, settings.alerts_tls_key_file)
        return alertreceiver.serve(endpoints.parse_address(settings.alerts_addr), receiver, tls)

    def _standing_by(self) -> bool:
        """A replica that has seen another one hold the Lease: its alerts would never be checked."""
        return self.elector is not None and self.elector.settled and not self.is_leader()

    def _wake_alert_checks(self) -> None:
        """An alert arrived: the configs that take alerts check at once, not at their next interval."""
        if not self.may_check():
            return  # caches not synced yet (every config is checked once they are), or not leading
        for config in self.configs.configs():
            if takes_alerts(config.get("spec")):
                key = config_key(config)
                if self.scheduler.run_now(key, CHECK):
                    log.info("checking %s at once: an alert arrived", key, extra={"config": key, "action": "wake"})

    def _transport(self, name: str) -> Transport:
        with self._transports_lock:
            if name not in self._transports:
                self._transports[name] = pprof.make_transport(
                    name, api_client=self.api, tls_verify=self.settings.tls_verify
                )
            return self._transports[name]

    def _flush_spool(self, store: ProfileStore) -> None:
        if isinstance(store, SpoolingStore) and store.pending_bytes:
            report = store.flush()
            if report.uploaded:
                extra = {"action": "flush", "uploaded": report.uploaded, "remaining_bytes": report.remaining_bytes}
                log.info("uploaded %d spooled profile(s)", report.uploaded, extra=extra)
                self.instruments.uploads.labels("stored").inc(report.uploaded)

    def _activate_when_synced(self) -> None:
        while not self._stopped.is_set():
            if self.pods.wait_synced(0.5) and self.configs.wait_synced(0.5):
                break
        if self._stopped.is_set():
            return
        extra = {"action": "synced", "pods": len(self.pods), "configs": len(self.configs)}
        log.info("caches synced: %d pods, %d ProfilingConfigs", len(self.pods), len(self.configs), extra=extra)
        # The caches (hundreds of thousands of small objects at scale) live as long as the process:
        # out of the collector's generations, every later collection no longer walks them.
        gc.collect()
        gc.freeze()
        with self._activation:
            self._synced.set()
            if self.is_leader():
                self.scheduler.activate()

    def _started_leading(self) -> None:
        # Another leader may have written history, windows and status meanwhile: read them afresh.
        self.history.invalidate()
        self.windows.invalidate()
        self.runner.leadership_changed()
        with self._activation:
            if self._synced.is_set():
                self.scheduler.activate()

    def _stopped_leading(self) -> None:
        self.scheduler.deactivate()
        self.runner.leadership_changed()
        self.windows.invalidate()  # the new leader's windows are its own: never write these over them

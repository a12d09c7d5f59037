"""The node agent, wired: the operator (`operator.app.Operator`: its scheduler, check runner,
executor, stores, endpoints and SIGTERM path, unchanged) over the share of the cluster one node
holds. `kprof node` builds one per node (a DaemonSet).

What differs from the operator, and why:
- pods: a watch cache with the server-side field selector `spec.nodeName=<node>`, so an agent's
  memory and work follow its node's pods, not the cluster's;
- usage: the node's kubelet, `/metrics/resource` (`adapters.kube.kubelet`), not metrics-server;
- history: a ConfigMap per node and config (`ConfigMapHistory(node=...)`): cooldowns, on-demand
  intervals and any other history key hold when the agent restarts, and each has one writer;
- status: each agent writes its node's report (`adapters.kube.nodereports`), which the check runner
  builds on as it builds on a status; the elected agent folds the reports into the configs'
  statuses (`node.folder`). Events on pods are the node's agent's; the InvalidConfig Event on a
  config is the folder's, once, not one per node; pgo jobs run on the folder only;
- every agent checks (the operator checks only while it holds its Lease): the operator's Lease
  and leader election elect the folder;
- transport: always direct, to the pod IPs of the node (a config's `transport` is not used: the
  node's pods are reachable from the node, and the agents need no pods/proxy or portforward grant).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from typing import Any

from opentelemetry import trace

from kprof_lib.adapters.kube.events import EventRecorder
from kprof_lib.adapters.kube.history import ConfigMapHistory
from kprof_lib.adapters.kube.informer import PodCache
from kprof_lib.adapters.kube.kubelet import KubeletMetrics
from kprof_lib.adapters.kube.metrics import MetricsUnavailable
from kprof_lib.adapters.kube.nodereports import NodeReports, ReportError
from kprof_lib.adapters.kube.windows import ConfigMapWindows
from kprof_lib.execution.ports import Transport
from kprof_lib.runtimes.node.folder import StatusFolder
from kprof_lib.runtimes.node.settings import KUBELET_PORT, NodeSettings
from kprof_lib.runtimes.operator.app import Operator, StartError
from kprof_lib.runtimes.operator.scheduling import PGO, Run
from kprof_lib.spec.schemas import KIND

log = logging.getLogger("kprof.node")

COMPONENT = "kprof-node"


def kubelet_url(settings: NodeSettings) -> str:
    """--kubelet-url, else the node's own address from the downward API ($NODE_IP) on 10250."""
    if settings.kubelet_url:
        return settings.kubelet_url
    address = os.environ.get("NODE_IP")
    if not address:
        raise StartError("--kubelet-url is not set and neither is $NODE_IP (the downward API's status.hostIP)")
    host = f"[{address}]" if ":" in address else address
    return f"https://{host}:{KUBELET_PORT}"


class PodEventsOnly:
    """The agent's Events: those on its node's pods; a config's Events are the folder's."""

    def __init__(self, recorder: EventRecorder) -> None:
        self.recorder = recorder

    def record(self, involved: Mapping[str, str], event_type: str, reason: str, message: str) -> None:
        if involved.get("kind") != KIND:
            self.recorder.record(involved, event_type, reason, message)


class NodeAgent(Operator):
    def __init__(
        self, settings: NodeSettings, *, api_client: Any = None, tracer_provider: trace.TracerProvider | None = None
    ):
        if not settings.node_name:
            raise StartError("--node-name is not set (the DaemonSet gives $NODE_NAME from spec.nodeName)")
        self.node = settings.node_name
        self.node_settings = settings
        self._kubelet_url = kubelet_url(settings)
        super().__init__(settings, api_client=api_client, tracer_provider=tracer_provider)
        # The operator's Lease (self.elector) elects the agent that folds; every agent checks.
        self.folder = StatusFolder(
            self.api,
            settings.namespace,
            self.configs,
            self._pod_events.recorder,
            elector=self.elector,
            interval=settings.fold_interval,
            refresh=settings.report_refresh,
        )
        self.instruments.track_leader(lambda: self.folder.is_leader and not self._stopped.is_set())

    # The operator's parts this agent has its own of (see the module's docstring).

    def _pod_cache(self) -> PodCache:
        return PodCache(self.api, field_selector=f"spec.nodeName={self.node}")

    def _metrics_source(self) -> KubeletMetrics:
        settings = self.node_settings
        self.kubelet = KubeletMetrics(
            self._kubelet_url, self.api, ca_file=settings.kubelet_ca_file, tls_verify=settings.kubelet_tls_verify
        )
        return self.kubelet

    def _history_store(self) -> ConfigMapHistory:
        return ConfigMapHistory(self.api, self.settings.namespace, node=self.node)

    def _usage_windows(self) -> ConfigMapWindows:
        return ConfigMapWindows(self.api, self.settings.namespace, node=self.node)

    def _event_recorder(self) -> PodEventsOnly:
        host = os.environ.get("POD_NAME") or self.node
        self._pod_events = PodEventsOnly(EventRecorder(self.api, component=COMPONENT, host=host))
        return self._pod_events

    def _status_port(self) -> NodeReports:
        self.reports = NodeReports(
            self.api, self.settings.namespace, self.node, refresh=self.node_settings.report_refresh
        )
        return self.reports

    def _config(self, key: str) -> dict[str, Any] | None:
        """The config as the runner sees it: its status is this node's report (what it builds on)."""
        config = super()._config(key)
        if config is None:
            return None
        return {**config, "status": self.reports.load(key, config["metadata"].get("uid"))}

    def _run(self, run: Run) -> object:
        if run.kind == PGO and not self.folder.is_leader:
            return None  # one writer of the merged profiles: the folder
        try:
            return super()._run(run)
        except ReportError as error:  # the report to build on is unreadable: no check without it
            extra = {"config": run.key, "action": run.kind, "reason": "report-unreadable"}
            log.warning("%s of %s not run: %s", run.kind, run.key, error, extra=extra)
            return None

    def _transport(self, name: str) -> Transport:
        return super()._transport("direct")

    def _forget(self, key: str) -> None:
        super()._forget(key)
        self.reports.forget(key)

    # The Lease elects the folder only: checks run in every agent, leading or not.

    def is_leader(self) -> bool:
        return not self._stopped.is_set()

    def _started_leading(self) -> None:
        log.info("folding the node reports into the statuses", extra={"action": "lead", "node": self.node})
        self.folder.leadership_changed()

    def _stopped_leading(self) -> None:
        self.folder.leadership_changed()

    # Lifecycle ---------------------------------------------------------------------------------

    def start(self) -> NodeAgent:
        super().start()
        # A first scrape now, so that the first check already has a CPU rate.
        threading.Thread(target=self._prime, name="kprof-kubelet-prime", daemon=True).start()
        self.folder.start()
        extra = {"action": "start", "node": self.node, "kubelet": self.kubelet.url}
        log.info("node agent for %s (kubelet %s)", self.node, self.kubelet.url, extra=extra)
        return self

    def stop(self) -> bool:
        if self._stopped.is_set():
            return True
        self.folder.stop()
        return super().stop()  # releases the Lease: another agent folds at once

    def ready(self) -> tuple[bool, str]:
        ready, why = super().ready()
        if not ready:
            return ready, why
        role = "folding the statuses" if self.folder.is_leader else "another agent folds the statuses"
        return True, f"caches synced; node {self.node}; {role}"

    def _prime(self) -> None:
        try:
            self.kubelet.scrape()
        except MetricsUnavailable as error:
            log.warning("kubelet: %s", error, extra={"action": "scrape", "reason": "kubelet-unavailable"})

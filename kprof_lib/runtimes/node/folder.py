"""The elected node agent's extra work: fold every node's report into each ProfilingConfig's status
(`planning.folding`), so that a config's status has one writer however many nodes there are.

Of all the agents, the holder of a Lease in the agents' namespace folds (`LeaderElector`, the
operator's leader election); the others only check their nodes. Every `interval` seconds the
holder lists the reports (one LIST by label, `adapters.kube.nodereports.read_all`), folds the
reports of each config it watches (only those written for the config's current uid) and patches
the status when the fold changes it. It records the InvalidConfig Event on a config that became
invalid (the agents record Events on their pods only, so a bad spec is one Event, not one per
node). A report is fresh while it was written within twice the longest of the refresh period and
the config's job intervals, and a minute: past that its node counts as gone (its totals stay).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from typing import Any

from kubernetes.client import ApiClient

from kprof_lib.adapters.kube import events, nodereports
from kprof_lib.adapters.kube.informer import ConfigWatch
from kprof_lib.adapters.kube.leader import LeaderElector
from kprof_lib.adapters.kube.status import StatusWriter
from kprof_lib.execution.ports import EventRecorder
from kprof_lib.planning import conditions, folding
from kprof_lib.planning import status as statuses
from kprof_lib.runtimes.operator.scheduling import config_key, plan_jobs
from kprof_lib.spec.schemas import API_VERSION, KIND
from kprof_lib.state import cluster

log = logging.getLogger("kprof.node.fold")


class StatusFolder:
    """Folds reports into statuses while `elector` (None: always) says this agent leads."""

    def __init__(
        self,
        api_client: ApiClient,
        namespace: str,
        configs: ConfigWatch,
        events_recorder: EventRecorder,
        *,
        elector: LeaderElector | None,
        interval: float,
        refresh: float,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self._api = api_client
        self.namespace = namespace
        self._configs = configs
        self._events = events_recorder
        self.elector = elector
        self._interval = interval
        self._refresh = refresh
        self._now = now
        self._status = StatusWriter(api_client)
        # What this process last wrote per config (uid, status): newer than the watch cache.
        self._written: dict[str, tuple[str | None, dict[str, Any]]] = {}
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.folds = 0
        self.patches = 0

    @property
    def is_leader(self) -> bool:
        return self.elector is None or self.elector.is_leader

    def start(self) -> StatusFolder:
        """Fold from now on while leading (the elector is started and stopped by its owner)."""
        self._thread = threading.Thread(target=self._loop, name="kprof-node-fold", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(10)

    def leadership_changed(self) -> None:
        self._written.clear()  # another agent may have written meanwhile

    def _loop(self) -> None:
        while not self._stopping.wait(self._interval):
            if not self.is_leader or not self._configs.synced:
                continue
            try:
                self.fold_once()
            except Exception as error:  # the API unreachable: the next round tries again
                log.warning("folding node reports failed: %s", error, extra={"action": "fold", "reason": "fold-failed"})

    def fold_once(self) -> int:
        """One round over every config; the number of statuses patched."""
        reports = nodereports.read_all(self._api, self.namespace)
        now = self._now()
        patched = 0
        for config in self._configs.items():
            metadata = config["metadata"]
            key, uid = config_key(config), metadata.get("uid")
            mine = {r.node: r.status for r in reports.get(key, ()) if r.config_uid in (None, uid) and r.node}
            written = self._written.get(key)
            base = written[1] if written is not None and written[0] == uid else dict(config.get("status") or {})
            generation = metadata.get("generation")
            folded = folding.fold(
                mine,
                base,
                generation=generation,
                now=cluster.format_time(now),
                fresh_since=now - self._horizon(config),
            )
            if folded is None:
                continue
            merged = nodereports.merge_patch(base, folded)
            if merged == base:
                continue
            try:
                updated = self._status.patch_status(metadata["namespace"], metadata["name"], folded)
            except Exception as error:
                log.error("%s: status not written: %s", key, error, extra={"config": key, "action": "write-status"})
                continue
            if updated is None:
                continue
            self._written[key] = (uid, merged)
            patched += 1
            self._report_invalid(config, base, merged, generation)
        self.folds += 1
        self.patches += patched
        return patched

    def _horizon(self, config: dict[str, Any]) -> dt.timedelta:
        longest = max(plan_jobs(config.get("spec")).intervals().values(), default=0)
        return dt.timedelta(seconds=2 * max(self._refresh, longest) + 60)

    def _report_invalid(
        self, config: dict[str, Any], base: dict[str, Any], status: dict[str, Any], generation: int | None
    ) -> None:
        valid = conditions.find_condition(status.get("conditions"), statuses.VALID)
        if valid is None or valid.get("status") != conditions.FALSE:
            return
        if statuses.already_reported(base, statuses.Invalid(str(valid.get("message"))), generation):
            return
        meta = config["metadata"]
        involved = {"apiVersion": API_VERSION, "kind": KIND, "namespace": meta["namespace"], "name": meta["name"]}
        involved["uid"] = meta.get("uid", "")
        self._events.record(involved, events.WARNING, events.INVALID_CONFIG, str(valid.get("message")))

"""Capture-now in the operator: `kubectl annotate pod P profiling.io/capture-now=<value> --overwrite`
wakes the check of every config that may select the pod at once, instead of leaving it to the
config's next interval. Reconcile still decides (one capture per distinct value, by the history's
captureNowValue); this only saves the wait. `app.Operator` gives it every change of the pod watch
cache (pod digests), on the cache's thread: it is cheap (a dictionary look-up per event, the configs looked at
only when a value changed) and never raises; a woken check runs at once, or as soon as the one in
progress ends (`ConfigScheduler.run_now`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

from kprof_lib.planning import selection
from kprof_lib.state import optin
from kprof_lib.state.digest import PodDigest

log = logging.getLogger("kprof.operator.requests")

DELETED = "DELETED"


class CaptureNowWakeups:
    """Wakes the checks of the configs (`configs()`: the ProfilingConfigs as the API returns them)
    that select a pod whose capture-now value changed, through `wake(config_key)`; only while
    `active()` (the leader with synced caches: a standby's checks would not run)."""

    def __init__(
        self,
        configs: Callable[[], Iterable[dict[str, Any]]],
        wake: Callable[[str], bool],
        active: Callable[[], bool],
        *,
        cluster_wide_namespaces: Collection[str] = (),
    ) -> None:
        self._configs = configs
        self._wake = wake
        self._active = active
        # Configs elsewhere select pods of their own namespace only (`planning.tenancy`).
        self._cluster_wide = frozenset(cluster_wide_namespaces)
        self._seen: dict[str, str] = {}  # "namespace/pod" -> the capture-now value last seen
        self._lock = threading.Lock()

    def __call__(self, event_type: str, pod: PodDigest) -> None:
        key = pod.key
        value = pod.annotations.get(optin.CAPTURE_NOW) or None
        with self._lock:
            previous = self._seen.pop(key, None)
            if value is not None and event_type != DELETED:
                self._seen[key] = value
        if value is None or value == previous or event_type == DELETED or not self._active():
            return
        try:
            for config_key in self.selecting(pod.namespace, pod.labels):
                if self._wake(config_key):
                    extra = {"config": config_key, "pod": key, "action": "wake", "reason": "requested"}
                    log.info("checking %s at once: %s=%s on %s", config_key, optin.CAPTURE_NOW, value, key, extra=extra)
        except Exception:  # a wake-up that fails costs the wait for the next check, nothing more
            log.exception("capture-now wake-up for %s failed", key, extra={"pod": key, "action": "wake"})

    def selecting(self, namespace: str, labels: Mapping[str, str]) -> list[str]:
        """The configs that take capture-now (on by default) and select a pod of `namespace` with
        `labels`: its namespace as the tenancy rules give it (a config outside the cluster-wide
        namespaces selects its own), its labels by the label selector."""
        found = []
        for config in self._configs():
            spec = config.get("spec") or {}
            if not isinstance(spec, dict) or not _takes_capture_now(spec):
                continue
            wanted = spec.get("selector") or {}
            if not isinstance(wanted, dict):
                continue
            own = config["metadata"]["namespace"]
            selected = wanted.get("namespace")
            if own not in self._cluster_wide:
                if selected not in (None, own):
                    continue  # an invalid config: its check says so
                selected = own
            if not selection.namespace_matches(selected, namespace):
                continue
            try:
                if not selection.compile_label_selector(wanted.get("labelSelector"))(labels):
                    continue
            except (AttributeError, KeyError, TypeError):  # an invalid spec: its check says so
                continue
            found.append(f"{config['metadata']['namespace']}/{config['metadata']['name']}")
        return found


def _takes_capture_now(spec: dict[str, Any]) -> bool:
    capture_now = (spec.get("triggers") or {}).get("captureNow") or {}
    return not isinstance(capture_now, dict) or capture_now.get("enabled", True) is not False

"""The operator's usage windows (`adapters.windows`): in memory per ProfilingConfig, and persisted
in a ConfigMap per config beside its capture history, so a restarted operator or a new leader
starts with the trends the last one saw instead of waiting for a window to fill again.

The ConfigMap is `kprof-windows-<the history ConfigMap's hash>` in the operator's namespace,
labelled like the history (`app.kubernetes.io/managed-by=kprof`, component `usage-windows`), the
compact document of `adapters.windows.dumps` under `data["windows.json"]`, cut to `max_bytes`
(far below the API's 1 MiB: every pod keeps its newest samples). It is written at most every
`persist_every` seconds per config (a check every 10 s would otherwise be a write every 10 s) and
at `flush()`, which the operator calls when it stops; a crash loses at most that many seconds.

Windows are the leader's own observations, so the last write wins (a conflict re-reads the
resourceVersion and writes again). Unlike the history, nothing here is needed for safety: a
window that cannot be read or written is logged and the triggers wait for a new one to fill.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes.client import ApiClient

from kprof_lib.adapters import windows
from kprof_lib.adapters.kube import errors
from kprof_lib.adapters.kube.history import (
    COMPONENT_LABEL,
    CONFIG_ANNOTATION,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    NAME_PREFIX,
    NODE_LABEL,
    configmap_name,
)
from kprof_lib.adapters.kube.reads import get_json, send_json

log = logging.getLogger("kprof.operator.windows")

WINDOWS_PREFIX = "kprof-windows-"
DATA_KEY = "windows.json"
COMPONENT = "usage-windows"
DEFAULT_PERSIST_SECONDS = 30.0
DEFAULT_MAX_BYTES = 512 * 1024


def windows_configmap_name(config_key: str, node: str | None = None) -> str:
    """`kprof-windows-` and the same hash as the config's history ConfigMap (a node agent's: its
    node's)."""
    return WINDOWS_PREFIX + configmap_name(config_key, node).removeprefix(NAME_PREFIX)


@dataclass
class _Config:
    windows: windows.UsageWindows
    resource_version: str | None = None  # None: no ConfigMap yet (or not known)
    written_at: float | None = None  # monotonic time of the last write
    dirty: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


class ConfigMapWindows:
    """Usage windows of every config, loaded from their ConfigMaps on first use."""

    def __init__(
        self,
        api_client: ApiClient,
        namespace: str,
        *,
        persist_every: float = DEFAULT_PERSIST_SECONDS,
        max_bytes: int = DEFAULT_MAX_BYTES,
        monotonic: Callable[[], float] = time.monotonic,
        timeout: float = 30.0,
        node: str | None = None,
    ) -> None:
        self._api = api_client
        self.namespace = namespace
        # A node agent's windows are its node's pods': one ConfigMap per node and config, like its
        # history, so agents never overwrite each other's.
        self.node = node
        self.persist_every = persist_every
        self.max_bytes = max_bytes
        self._monotonic = monotonic
        self._timeout = timeout
        self._configs: dict[str, _Config] = {}
        self._lock = threading.Lock()

    def _path(self, config_key: str | None = None) -> str:
        base = f"/api/v1/namespaces/{self.namespace}/configmaps"
        return f"{base}/{windows_configmap_name(config_key, self.node)}" if config_key is not None else base

    def _config(self, config_key: str) -> _Config:
        with self._lock:
            entry = self._configs.get(config_key)
        if entry is not None:
            return entry
        # Read without the lock: the first checks of many configs must not wait on each other.
        loaded = self._load(config_key)
        with self._lock:
            return self._configs.setdefault(config_key, loaded)

    # Used by the check runner --------------------------------------------------------------------

    def view(self, config_key: str) -> Mapping[str, list[dict[str, Any]]]:
        """The config's windows for the cluster state's `usageWindow` (empty before its first check)."""
        return self._config(config_key).windows.view()

    def snapshot(self, config_key: str) -> windows.Windows:
        """A copy of the config's windows, as sample objects."""
        return self._config(config_key).windows.snapshot()

    def append(self, config_key: str, samples: Mapping[str, Mapping[str, Any]], *, limit: int | None = None) -> None:
        """Add one check's samples; write the ConfigMap if the last write is `persist_every` old."""
        entry = self._config(config_key)
        with entry.lock:
            if entry.windows.append(samples, limit=limit):
                entry.dirty = True
            due = entry.written_at is None or self._monotonic() - entry.written_at >= self.persist_every
            if entry.dirty and due:
                self._write(config_key, entry)

    def flush(self) -> None:
        """Write every config's windows not written since they changed (on stop)."""
        with self._lock:
            entries = list(self._configs.items())
        for config_key, entry in entries:
            with entry.lock:
                if entry.dirty:
                    self._write(config_key, entry)

    def forget(self, config_key: str) -> None:
        """Drop a deleted config's windows, and its ConfigMap."""
        with self._lock:
            self._configs.pop(config_key, None)
        try:
            send_json(self._api, "DELETE", self._path(config_key), timeout=self._timeout)
        except errors.APINotFound:
            pass
        except Exception as error:
            log.warning("%s: usage windows not deleted: %s", config_key, errors.brief(error))

    def invalidate(self) -> None:
        """Read every config's windows afresh at its next check (on gaining leadership: another
        leader observed meanwhile)."""
        with self._lock:
            self._configs.clear()

    # ConfigMap -----------------------------------------------------------------------------------

    def _load(self, config_key: str) -> _Config:
        entry = _Config(windows.UsageWindows())
        try:
            configmap = get_json(self._api, self._path(config_key), timeout=self._timeout)
        except errors.APINotFound:
            return entry
        except Exception as error:
            extra = {"config": config_key, "action": "windows", "reason": "windows-unreadable"}
            log.warning("%s: usage windows cannot be read (%s); starting without them", config_key, error, extra=extra)
            return entry
        entry.resource_version = configmap["metadata"].get("resourceVersion")
        text = (configmap.get("data") or {}).get(DATA_KEY) or ""
        try:
            entry.windows.replace(windows.decode(json.loads(text)))
        except ValueError as error:
            log.warning("%s: %s is not a usage window document (%s); starting afresh", config_key, DATA_KEY, error)
        return entry

    def _write(self, config_key: str, entry: _Config) -> None:
        kept = windows.fit(entry.windows.rows(), self.max_bytes)
        body = self._document(config_key, windows.dumps(kept))
        try:
            for _ in range(2):  # a conflict: someone else wrote; take its resourceVersion, write ours
                try:
                    written = self._send(config_key, entry, body)
                    break
                except errors.APIConflict:
                    entry.resource_version = self._current_version(config_key)
            else:
                raise errors.APIConflict(409, "Conflict", "still conflicting")
        except Exception as error:
            extra = {"config": config_key, "action": "windows", "reason": "windows-not-saved"}
            log.warning("%s: usage windows not saved: %s", config_key, errors.brief(error), extra=extra)
            entry.written_at = self._monotonic()  # try again after the interval, not at every check
            return
        entry.resource_version = written["metadata"]["resourceVersion"]
        entry.written_at = self._monotonic()
        entry.dirty = False

    def _send(self, config_key: str, entry: _Config, body: dict[str, Any]) -> Any:
        if entry.resource_version is None:
            try:
                return send_json(self._api, "POST", self._path(), body, timeout=self._timeout)
            except errors.APIConflict:  # it exists (written before this process knew)
                entry.resource_version = self._current_version(config_key)
        metadata = {**body["metadata"], "resourceVersion": entry.resource_version}
        try:
            return send_json(
                self._api, "PUT", self._path(config_key), {**body, "metadata": metadata}, timeout=self._timeout
            )
        except errors.APINotFound:  # deleted meanwhile
            entry.resource_version = None
            return send_json(self._api, "POST", self._path(), body, timeout=self._timeout)

    def _current_version(self, config_key: str) -> str | None:
        try:
            return get_json(self._api, self._path(config_key), timeout=self._timeout)["metadata"].get("resourceVersion")
        except errors.APINotFound:
            return None

    def _document(self, config_key: str, text: str) -> dict[str, Any]:
        labels = {MANAGED_BY_LABEL: MANAGED_BY, COMPONENT_LABEL: COMPONENT}
        if self.node is not None:
            labels[NODE_LABEL] = self.node
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": windows_configmap_name(config_key, self.node),
                "namespace": self.namespace,
                "labels": labels,
                "annotations": {CONFIG_ANNOTATION: config_key},
            },
            "data": {DATA_KEY: text},
        }

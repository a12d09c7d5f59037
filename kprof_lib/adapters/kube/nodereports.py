"""Node agents' reports: what each node agent would have written into a ProfilingConfig's status,
kept in a ConfigMap of its own per node and config (`kprof-node-<12 hex of sha256(config key,
node)>` in the agents' namespace, labelled with the node), so that no object has more than one
writer. `NodeReports` is the agent's side: it is the `StatusPort` the check runner patches (a
JSON merge patch applied to the stored report) and `load` gives the runner the report to build
on. `read_all` is the folding side (`runtimes.node.folder`): every report, by config and node.

A report is rewritten when anything in it but `lastCheckTime` changed, and at least every
`refresh` seconds, so that a fold can tell a live node (fresh report) from one that is gone; a
config with the same outcome at every check costs one write per refresh period per node. The
config's uid is kept with the report: a config deleted and created again under its name starts
from nothing.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes.client import ApiClient

from kprof_lib.adapters.kube import errors
from kprof_lib.adapters.kube.history import CONFIG_ANNOTATION, MANAGED_BY, MANAGED_BY_LABEL, NODE_LABEL, configmap_name
from kprof_lib.adapters.kube.reads import get_json, send_json

NAME_PREFIX = "kprof-node-"
COMPONENT_LABEL = "app.kubernetes.io/component"
COMPONENT = "node-report"
UID_ANNOTATION = "profiling.io/config-uid"
DATA_KEY = "status.json"
SELECTOR = f"{MANAGED_BY_LABEL}={MANAGED_BY},{COMPONENT_LABEL}={COMPONENT}"


class ReportError(RuntimeError):
    """A report could not be read or written; the message names the ConfigMap and the answer."""


@dataclass(frozen=True)
class Report:
    """One node's report on one config."""

    node: str
    config_uid: str | None
    status: dict[str, Any]


def merge_patch(target: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """RFC 7386 JSON merge patch of two objects: None removes a key, objects merge, the rest replaces."""
    merged = dict(target)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_patch(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


class NodeReports:
    """The reports of one node (`node`), in `namespace`."""

    def __init__(
        self,
        api_client: ApiClient,
        namespace: str,
        node: str,
        *,
        refresh: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        timeout: float = 30.0,
    ) -> None:
        self._api = api_client
        self.namespace = namespace
        self.node = node
        self._refresh = refresh
        self._clock = clock
        self._timeout = timeout
        # config key -> (resourceVersion or None, config uid, report, when written by this process)
        self._cache: dict[str, tuple[str | None, str | None, dict[str, Any], float]] = {}
        self._uids: dict[str, str | None] = {}
        self._lock = threading.Lock()
        self.writes = 0

    def _path(self, config_key: str | None = None) -> str:
        base = f"/api/v1/namespaces/{self.namespace}/configmaps"
        return base if config_key is None else f"{base}/{configmap_name(config_key, self.node, NAME_PREFIX)}"

    def load(self, config_key: str, config_uid: str | None) -> dict[str, Any]:
        """This node's report on the config of `config_key` and `config_uid` ({} when it has none,
        or one of an earlier config of that name); `ReportError` when it cannot be read."""
        with self._lock:
            self._uids[config_key] = config_uid
            cached = self._cache.get(config_key)
            if cached is None:
                cached = self._cache[config_key] = self._fetch(config_key)
            version, uid, report, _ = cached
            if uid != config_uid:
                self._cache[config_key] = (version, config_uid, {}, 0.0)
                return {}
            return copy.deepcopy(report)

    # StatusPort, as the check runner calls it.
    def patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> dict[str, Any] | None:
        key = f"{namespace}/{name}"
        with self._lock:
            cached = self._cache.get(key) or self._fetch(key)
            version, uid, report, written = cached
            uid = self._uids.get(key, uid)
            if uid != cached[1]:
                report = {}
            new = merge_patch(report, status)
            unchanged = _without_time(new) == _without_time(report) and version is not None
            if unchanged and self._clock() - written < self._refresh:
                return {"metadata": {}, "status": copy.deepcopy(report)}
            for _ in range(3):
                try:
                    version = self._write(key, version, uid, new)
                    break
                except (errors.APIConflict, errors.APINotFound):
                    # Only this node writes it: a conflict is an earlier run of this agent's write
                    # that landed after all; take its version and write again.
                    version = self._fetch(key)[0]
                except errors.APIError as exc:
                    self._cache.pop(key, None)
                    raise ReportError(f"write {self._path(key)}: {exc}") from None
            else:
                raise ReportError(f"write {self._path(key)}: still conflicting")
            self._cache[key] = (version, uid, new, self._clock())
            self.writes += 1
            return {"metadata": {}, "status": copy.deepcopy(new)}

    def forget(self, config_key: str) -> None:
        """Delete this node's report on a deleted config."""
        with self._lock:
            self._cache.pop(config_key, None)
            self._uids.pop(config_key, None)
            try:
                send_json(self._api, "DELETE", self._path(config_key), timeout=self._timeout)
            except errors.APINotFound:
                pass
            except errors.APIError as exc:
                raise ReportError(f"delete {self._path(config_key)}: {exc}") from None

    def _fetch(self, config_key: str) -> tuple[str | None, str | None, dict[str, Any], float]:
        try:
            configmap = get_json(self._api, self._path(config_key), timeout=self._timeout)
        except errors.APINotFound:
            return None, self._uids.get(config_key), {}, 0.0
        except Exception as exc:
            raise ReportError(f"read {self._path(config_key)}: {errors.brief(exc)}") from None
        report = _decoded(configmap)
        return configmap["metadata"].get("resourceVersion"), report.config_uid, report.status, 0.0

    def _write(self, config_key: str, version: str | None, uid: str | None, status: dict[str, Any]) -> str:
        metadata: dict[str, Any] = {
            "name": configmap_name(config_key, self.node, NAME_PREFIX),
            "namespace": self.namespace,
            "labels": {MANAGED_BY_LABEL: MANAGED_BY, COMPONENT_LABEL: COMPONENT, NODE_LABEL: self.node},
            "annotations": {CONFIG_ANNOTATION: config_key, UID_ANNOTATION: uid or ""},
        }
        if version is not None:
            metadata["resourceVersion"] = version
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": {DATA_KEY: _dumps(status)}}
        if version is None:
            written = send_json(self._api, "POST", self._path(), body, timeout=self._timeout)
        else:
            written = send_json(self._api, "PUT", self._path(config_key), body, timeout=self._timeout)
        return str(written["metadata"]["resourceVersion"])


def read_all(api_client: ApiClient, namespace: str, *, timeout: float = 30.0) -> dict[str, list[Report]]:
    """Every node's report in `namespace`, by config key (one LIST by label, paged)."""
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    found: dict[str, list[Report]] = {}
    token = ""
    while True:
        query = [("labelSelector", SELECTOR), ("limit", "500")] + ([("continue", token)] if token else [])
        try:
            page = get_json(api_client, path, query, timeout=timeout)
        except Exception as exc:
            raise ReportError(f"list {path}?labelSelector={SELECTOR}: {errors.brief(exc)}") from None
        for configmap in page.get("items") or ():
            key = (configmap["metadata"].get("annotations") or {}).get(CONFIG_ANNOTATION)
            if key:
                found.setdefault(key, []).append(_decoded(configmap))
        token = (page.get("metadata") or {}).get("continue") or ""
        if not token:
            return found


def _decoded(configmap: Mapping[str, Any]) -> Report:
    metadata = configmap.get("metadata") or {}
    node = (metadata.get("labels") or {}).get(NODE_LABEL, "")
    uid = (metadata.get("annotations") or {}).get(UID_ANNOTATION) or None
    try:
        status = json.loads((configmap.get("data") or {}).get(DATA_KEY) or "{}")
    except ValueError:
        status = {}  # a damaged report counts as none; the node's next write replaces it
    return Report(node, uid, status if isinstance(status, dict) else {})


def _without_time(status: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in status.items() if k != "lastCheckTime"}


def _dumps(status: Mapping[str, Any]) -> str:
    return json.dumps(status, sort_keys=True, separators=(",", ":"))

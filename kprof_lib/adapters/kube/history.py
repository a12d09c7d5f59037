"""Capture history kept in ConfigMaps, the operator's `HistoryStore`: one ConfigMap per
ProfilingConfig in the operator's namespace, named `kprof-history-<first 12 hex of sha256(config
key)>`, labelled `app.kubernetes.io/managed-by=kprof`, the config key in an annotation and the
history as JSON under `data["history.json"]`. It survives operator restarts and leader changes, so
cooldowns and on-demand intervals hold across them.

Writes are read-modify-write with optimistic concurrency (PUT carrying the resourceVersion read;
409 Conflict → read again, merge again), so concurrent writers lose nothing; for one pod and one
kind of capture the later timestamp wins. Entries older than `max_age` are pruned on every write,
and if the document still exceeds `max_bytes` the oldest entries go first, which keeps the
ConfigMap far below the API's 1 MiB limit. Reads are served from memory once loaded: while the
operator holds the Lease it is the only writer; call `invalidate()` when leadership is gained.

Node agents (`runtimes.node`) keep one history per node and config: with `node` set, the name
hashes the config key and the node name together and the ConfigMap is labelled with the node, so
each agent is the only writer of its own ConfigMaps.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from kubernetes.client import ApiClient

from kprof_lib.adapters.kube import errors
from kprof_lib.adapters.kube.reads import get_json, send_json
from kprof_lib.state.cluster import TIME_KEYS

log = logging.getLogger(__name__)

NAME_PREFIX = "kprof-history-"
DATA_KEY = "history.json"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "kprof"
COMPONENT_LABEL = "app.kubernetes.io/component"
COMPONENT = "capture-history"
CONFIG_ANNOTATION = "profiling.io/config"
NODE_LABEL = "profiling.io/node"
# Pause before re-reading after a conflicting write: up to 10 ms, doubling per attempt, at most
# 0.5 s (ten attempts wait under 3 s in all).
CONFLICT_PAUSE = 0.01
CONFLICT_PAUSE_CAP = 0.5

History = dict[str, dict[str, str]]


class HistoryError(RuntimeError):
    """History could not be read or written; the check that needed it should fail, not capture
    without it (that would ignore cooldowns)."""


@dataclass(frozen=True)
class _Stored:
    resource_version: str | None  # None: there is no ConfigMap yet
    entries: History


def configmap_name(config_key: str, node: str | None = None, prefix: str = NAME_PREFIX) -> str:
    """`kprof-history-` and the first 12 hex digits of the SHA-256 of the config key (and, for a
    node agent's history, of the node name after a newline, which no key or node name holds)."""
    scoped = config_key if node is None else f"{config_key}\n{node}"
    return prefix + hashlib.sha256(scoped.encode()).hexdigest()[:12]


class ConfigMapHistory:
    """History of every ProfilingConfig, one ConfigMap each, in `namespace`.

    Args:
        max_age: entries whose latest capture is older than this are dropped on write. Keep it
            above the longest cooldown and on-demand interval in use.
        max_bytes: the most `history.json` may hold; the oldest entries are dropped beyond it.
        now: the clock pruning uses (tests may fix it).
        attempts: how many conflicting writes `merge` retries before giving up.
        node: a node agent's node: its own ConfigMaps (see the module's docstring).
    """

    def __init__(
        self,
        api_client: ApiClient,
        namespace: str,
        *,
        max_age: dt.timedelta = dt.timedelta(days=7),
        max_bytes: int = 512 * 1024,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        attempts: int = 10,
        timeout: float = 30.0,
        node: str | None = None,
    ) -> None:
        self._api = api_client
        self.namespace = namespace
        self.node = node
        self._max_age = max_age
        self._max_bytes = max_bytes
        self._now = now
        self._attempts = attempts
        self._timeout = timeout
        self._cache: dict[str, _Stored] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()

    def _path(self, config_key: str | None = None) -> str:
        base = f"/api/v1/namespaces/{self.namespace}/configmaps"
        return f"{base}/{configmap_name(config_key, self.node)}" if config_key is not None else base

    def _lock_for(self, config_key: str) -> threading.Lock:
        with self._locks_lock:
            return self._locks.setdefault(config_key, threading.Lock())

    # ----------------------------------------------------------------- HistoryStore

    def load(self, config_key: str) -> History:
        """The history of `config_key` ({} when it has none); `HistoryError` when it cannot be read."""
        with self._lock_for(config_key):
            stored = self._cache.get(config_key)
            if stored is None:
                stored = self._cache[config_key] = self._fetch(config_key)
            return copy.deepcopy(stored.entries)

    def merge(self, config_key: str, updates: Mapping[str, Mapping[str, str]]) -> None:
        """Add `updates` ("namespace/pod" -> {field: timestamp}) to the stored history; for a field
        present on both sides the later timestamp wins. `HistoryError` when it cannot be written."""
        if not updates:
            return
        with self._lock_for(config_key):
            stored = self._cache.get(config_key) or self._fetch(config_key)
            for attempt in range(self._attempts):
                entries = self._prune(_merged(stored.entries, updates))
                try:
                    self._cache[config_key] = self._write(config_key, stored.resource_version, entries)
                    return
                except (errors.APINotFound, errors.APIConflict):
                    pass
                except Exception as exc:  # without an answer, the write may or may not have happened
                    self._cache.pop(config_key, None)
                    raise _failure("write", self._path(config_key), exc) from None
                # Someone else wrote (409), created it first (409 on create) or deleted it (404):
                # start again from what is stored now, after a jittered pause that grows, so that
                # writers racing in step (a hand-over, replicas on a busy node) fall out of step.
                time.sleep(random.uniform(0, min(CONFLICT_PAUSE_CAP, CONFLICT_PAUSE * 2**attempt)))
                stored = self._fetch(config_key)
            self._cache.pop(config_key, None)
            raise HistoryError(f"{self._path(config_key)}: still conflicting after {self._attempts} attempts")

    def forget(self, config_key: str) -> None:
        """Delete the history of a deleted ProfilingConfig."""
        with self._lock_for(config_key):
            self._cache.pop(config_key, None)
            path = self._path(config_key)
            try:
                send_json(self._api, "DELETE", path, timeout=self._timeout)
            except errors.APINotFound:
                return
            except errors.APIForbidden as exc:
                # Without delete on configmaps, an emptied ConfigMap is the next best thing.
                log.warning("%s: cannot delete (%s), emptying it instead", path, errors.brief(exc))
                self._empty(config_key)
                return
            except errors.APIError as exc:
                raise _failure("delete", path, exc) from None

    def invalidate(self, config_key: str | None = None) -> None:
        """Forget what was read, so the next `load` reads the API again (after gaining leadership)."""
        if config_key is None:
            self._cache.clear()
        else:
            self._cache.pop(config_key, None)

    # ----------------------------------------------------------------- API

    def _fetch(self, config_key: str) -> _Stored:
        path = self._path(config_key)
        try:
            configmap = get_json(self._api, path, timeout=self._timeout)
        except errors.APINotFound:
            return _Stored(None, {})
        except Exception as exc:
            raise _failure("read", path, exc) from None
        text = (configmap.get("data") or {}).get(DATA_KEY) or "{}"
        try:
            entries = json.loads(text)
            if not isinstance(entries, dict):
                raise ValueError("not an object")
        except ValueError as exc:
            # A damaged document must not stop checks for good: start afresh and say so.
            log.warning("%s: %s is not valid history (%s); starting afresh", path, DATA_KEY, exc)
            entries = {}
        entries = {k: dict(v) for k, v in entries.items() if isinstance(v, dict)}
        return _Stored(configmap["metadata"].get("resourceVersion"), entries)

    def _document(self, config_key: str, resource_version: str | None, entries: History) -> dict:
        labels = {MANAGED_BY_LABEL: MANAGED_BY, COMPONENT_LABEL: COMPONENT}
        if self.node is not None:
            labels[NODE_LABEL] = self.node
        metadata: dict = {
            "name": configmap_name(config_key, self.node),
            "namespace": self.namespace,
            "labels": labels,
            "annotations": {CONFIG_ANNOTATION: config_key},
        }
        if resource_version is not None:
            metadata["resourceVersion"] = resource_version
        return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": {DATA_KEY: _dumps(entries)}}

    def _write(self, config_key: str, resource_version: str | None, entries: History) -> _Stored:
        body = self._document(config_key, resource_version, entries)
        if resource_version is None:
            written = send_json(self._api, "POST", self._path(), body, timeout=self._timeout)
        else:
            written = send_json(self._api, "PUT", self._path(config_key), body, timeout=self._timeout)
        return _Stored(written["metadata"]["resourceVersion"], entries)

    def _empty(self, config_key: str) -> None:
        stored = self._fetch(config_key)
        if stored.resource_version is None:
            return
        try:
            self._write(config_key, stored.resource_version, {})
        except errors.APIError as exc:
            raise _failure("empty", self._path(config_key), exc) from None

    # ----------------------------------------------------------------- pruning

    def _prune(self, entries: History) -> History:
        oldest_kept = self._now() - self._max_age
        kept = {key: entry for key, entry in entries.items() if (_latest(entry) or oldest_kept) >= oldest_kept}
        if len(_dumps(kept)) <= self._max_bytes:
            return kept
        # Too big even so: drop the entries captured longest ago until the document fits.
        by_age = sorted(kept, key=lambda key: _latest(kept[key]) or dt.datetime.min.replace(tzinfo=dt.UTC))
        sizes = {key: len(_dumps({key: kept[key]})) for key in kept}
        total = len(_dumps(kept))
        for key in by_age:
            if total <= self._max_bytes:
                break
            total -= sizes[key] - 1  # the comma between entries goes too
            del kept[key]
        log.warning("capture history over %d bytes: dropped the oldest entries", self._max_bytes)
        return kept


def _merged(entries: History, updates: Mapping[str, Mapping[str, str]]) -> History:
    merged = {key: dict(entry) for key, entry in entries.items()}
    for key, update in updates.items():
        entry = merged.setdefault(key, {})
        for field, value in update.items():
            current = entry.get(field)
            # Only a time is kept when older: any other field (a capture-now value that looks like
            # a date, the alert fingerprints served) is what the newer write says.
            if current is None or field not in TIME_KEYS or _later_or_equal(value, current):
                entry[field] = value
    return merged


def _parse(value: str) -> dt.datetime | None:
    try:
        parsed = dt.datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=dt.UTC)


def _later_or_equal(candidate: str, current: str) -> bool:
    new, old = _parse(candidate), _parse(current)
    if new is None or old is None:
        return True  # what cannot be compared is replaced by the newer write
    return new >= old


def _latest(entry: Mapping[str, str]) -> dt.datetime | None:
    times = [t for t in (_parse(v) for k, v in entry.items() if k in TIME_KEYS) if t is not None]
    return max(times) if times else None


def _dumps(entries: History) -> str:
    return json.dumps(entries, sort_keys=True, separators=(",", ":"))


def _failure(action: str, path: str, exc: Exception) -> HistoryError:
    """The error for a failed call: the API's answer ("STATUS MESSAGE"), or what happened instead."""
    detail = str(exc) if isinstance(exc, errors.APIError) else f"{type(exc).__name__}: {exc}"
    return HistoryError(f"{action} {path}: {detail}")

"""The emulator's state, kept the way kube-apiserver's storage behaves: objects per kind and
namespace, one global resourceVersion counter bumped by every write, a bounded history of watch
events (older resourceVersions answer 410 Expired), watchers fed from that history, and the write
rules (AlreadyExists, optimistic concurrency, status subresource, generation, no-op writes that do
not bump the resourceVersion). Used by the HTTP server and by `KubeEmulator`'s Python API.

Stored objects are never mutated: every write builds a new dict and serializes it once, so lists
and watch events reuse the cached JSON bytes and can be served outside the lock."""

from __future__ import annotations

import base64
import bisect
import collections
import copy
import json
import queue
import random
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from . import status as st
from .resources import ResourceRegistry, ResourceType
from .selectors import Predicate, combine, parse_field_selector, parse_label_selector

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"

# kube's name generator alphabet: no vowels (no accidental words) and no look-alike characters.
_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_SYSTEM_METADATA = ("uid", "creationTimestamp", "generation", "deletionTimestamp", "deletionGracePeriodSeconds")


def dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Entry:
    """One stored object: the dict (never mutated) and its JSON, in full and as a list item."""

    __slots__ = ("full", "item", "key", "name", "namespace", "obj")

    def __init__(self, rt: ResourceType, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        self.obj = obj
        self.name: str = meta["name"]
        self.namespace: str = meta.get("namespace", "") if rt.namespaced else ""
        self.key = f"{self.namespace}/{self.name}" if rt.namespaced else self.name
        if rt.custom:
            self.full = self.item = dumps(obj)
        else:
            # Typed kinds drop apiVersion/kind from list items, as kube's typed lists do.
            self.item = dumps({k: v for k, v in obj.items() if k not in ("apiVersion", "kind")})
            head = b'{"apiVersion":' + dumps(rt.api_version) + b',"kind":' + dumps(rt.kind)
            self.full = head + (b"," + self.item[1:] if len(self.item) > 2 else b"}")

    def copy(self) -> dict[str, Any]:
        return json.loads(self.full)

    @property
    def resource_version(self) -> str:
        return self.obj["metadata"].get("resourceVersion", "")


@dataclass(frozen=True)
class WatchEvent:
    rv: int
    type: str  # ADDED, MODIFIED or DELETED
    rt_key: tuple[str, str, str]
    namespace: str
    entry: Entry
    prev: Entry | None  # the object before a MODIFIED or DELETED, for selectors and list-at-RV


class Watcher:
    """A subscription to one kind's events (filtered by namespace by the reader). `None` in the
    queue means the emulator is stopping."""

    def __init__(self, rt: ResourceType, namespace: str | None) -> None:
        self.rt = rt
        self.namespace = namespace
        self.events: queue.SimpleQueue[WatchEvent | None] = queue.SimpleQueue()


@dataclass
class ListResult:
    resource_version: str | None
    entries: list[Entry]
    continue_token: str | None
    remaining: int | None


def _parse_rv(text: str) -> int:
    if not text.isdigit():
        raise st.bad_request(f'resourceVersion: Invalid value: "{text}": must be a non-negative integer')
    return int(text)


def _encode_continue(rv: int, start: str) -> str:
    raw = dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": start})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_continue(token: str) -> tuple[int, str]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        return int(data["rv"]), str(data["start"])
    except (ValueError, KeyError, TypeError) as exc:
        raise st.bad_request(f"continue key is not valid: {exc}") from None


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge key by key, null deletes a key, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _spec_view(obj: dict[str, Any]) -> dict[str, Any]:
    """What a change to bumps metadata.generation: everything but metadata and status."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


class Store:
    def __init__(self, registry: ResourceRegistry, history_size: int = 1000) -> None:
        self._lock = threading.RLock()
        self._registry = registry
        self._rv = 0
        self._compacted_rv = 0  # watches and exact lists from an older resourceVersion get 410
        self._history: collections.deque[WatchEvent] = collections.deque()
        self._history_size = history_size
        self._objects: dict[tuple[str, str, str], dict[str, dict[str, Entry]]] = {}
        self._watchers: dict[tuple[str, str, str], set[Watcher]] = {}

    # ----------------------------------------------------------------- bookkeeping

    @property
    def resource_version(self) -> int:
        return self._rv

    def compact(self) -> None:
        """Forget the whole event history: every resourceVersion before now becomes too old."""
        with self._lock:
            self._compacted_rv = self._rv
            self._history.clear()

    def _bucket(self, rt: ResourceType) -> dict[str, dict[str, Entry]]:
        return self._objects.setdefault(rt.key, {})

    def _find(self, rt: ResourceType, namespace: str, name: str) -> Entry | None:
        return self._bucket(rt).get(namespace if rt.namespaced else "", {}).get(name)

    def _entries(self, rt: ResourceType, namespace: str | None) -> list[Entry]:
        bucket = self._bucket(rt)
        if namespace is not None and rt.namespaced:
            return list(bucket.get(namespace, {}).values())
        return [entry for names in bucket.values() for entry in names.values()]

    def _publish(self, event: WatchEvent) -> None:
        if self._history_size <= 0:
            self._compacted_rv = event.rv
        else:
            if len(self._history) >= self._history_size:
                self._compacted_rv = self._history.popleft().rv
            self._history.append(event)
        for watcher in self._watchers.get(event.rt_key, ()):
            watcher.events.put(event)

    def _commit(self, rt: ResourceType, obj: dict[str, Any], event_type: str, prev: Entry | None) -> Entry:
        if rt.versioned:
            self._rv += 1
            obj["metadata"]["resourceVersion"] = str(self._rv)
        entry = Entry(rt, obj)
        names = self._bucket(rt).setdefault(entry.namespace, {})
        if event_type == "DELETED":
            names.pop(entry.name, None)
            if not names:
                self._bucket(rt).pop(entry.namespace, None)
        else:
            names[entry.name] = entry
        if rt.versioned:
            self._publish(WatchEvent(self._rv, event_type, rt.key, entry.namespace, entry, prev))
        return entry

    # ----------------------------------------------------------------- request bodies

    def _normalize(self, rt: ResourceType, body: Any) -> dict[str, Any]:
        """A private copy of a request body with apiVersion/kind checked and filled in."""
        if not isinstance(body, dict):
            raise st.bad_request("the object provided is unrecognized: expected a JSON object")
        api_version, kind = body.get("apiVersion"), body.get("kind")
        if rt.custom and not kind:
            raise st.bad_request(f"Object 'Kind' is missing in '{json.dumps(body)[:200]}'")
        if api_version and api_version != rt.api_version:
            raise st.bad_request(
                f"the API version in the data ({api_version}) does not match the expected API version "
                f"({rt.api_version})"
            )
        if kind and kind != rt.kind:
            raise st.bad_request(f"the kind in the data ({kind}) does not match the expected kind ({rt.kind})")
        obj = json.loads(dumps(body))
        ordered = {"apiVersion": rt.api_version, "kind": rt.kind}
        ordered.update((k, v) for k, v in obj.items() if k not in ordered)
        meta = ordered.setdefault("metadata", {})
        if meta is None:
            meta = ordered["metadata"] = {}
        if not isinstance(meta, dict):
            raise st.bad_request("metadata must be an object")
        return ordered

    def _namespace_of(self, rt: ResourceType, namespace: str | None, meta: dict[str, Any], *, seed: bool) -> str:
        if not rt.namespaced:
            meta.pop("namespace", None)
            return ""
        body_ns = meta.get("namespace")
        namespace = namespace or body_ns or ("default" if seed else "")
        if not namespace:
            raise st.bad_request("the namespace of the object must be given")
        if body_ns and body_ns != namespace:
            raise st.bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        meta["namespace"] = namespace
        return namespace

    def _ensure_namespace(self, namespace: str, *, seed: bool) -> None:
        namespaces = self._registry.lookup("", "v1", "namespaces")
        if namespaces is None or self._find(namespaces, "", namespace) is not None:
            return
        if not seed:
            raise st.not_found("namespaces", "", namespace)
        self.create(namespaces, None, {"metadata": {"name": namespace}}, seed=True)

    def _check_precondition(self, rt: ResourceType, cur: Entry, rv: Any, *, required: bool) -> None:
        if not rv:
            if required:
                raise st.invalid(
                    rt.kind,
                    rt.group,
                    cur.name,
                    [
                        (
                            "FieldValueInvalid",
                            "metadata.resourceVersion",
                            "Invalid value: 0x0: must be specified for an update",
                        )
                    ],
                )
            return
        if str(rv) != cur.resource_version:
            raise st.conflict(rt.plural, rt.group, cur.name)

    # ----------------------------------------------------------------- writes

    def create(
        self, rt: ResourceType, namespace: str | None, body: Any, *, seed: bool = False
    ) -> Entry:
        """POST semantics; `seed` is the Python API's create: it keeps .status and creates namespaces."""
        if rt.read_only and not seed:
            raise st.method_not_allowed()
        obj = self._normalize(rt, body)
        meta = obj["metadata"]
        if meta.get("resourceVersion") and not seed:
            raise st.ApiError(
                500, "Internal error occurred: resourceVersion should not be set on objects to be created"
            )
        for field_name in (*_SYSTEM_METADATA, "resourceVersion", "selfLink", "managedFields"):
            meta.pop(field_name, None)
        if rt.status_subresource and not seed:
            # kube resets status on create for kinds with a status subresource.
            obj.pop("status", None)
            if rt.key == ("", "v1", "pods"):
                obj["status"] = {"phase": "Pending"}
        if rt.key == ("", "v1", "namespaces"):
            obj.setdefault("spec", {"finalizers": ["kubernetes"]})
            obj.setdefault("status", {"phase": "Active"})
        with self._lock:
            ns = self._namespace_of(rt, namespace, meta, seed=seed)
            if rt.namespaced:
                self._ensure_namespace(ns, seed=seed)
            if not meta.get("name"):
                prefix = meta.get("generateName")
                if not prefix:
                    raise st.invalid(
                        rt.kind,
                        rt.group,
                        "",
                        [("FieldValueRequired", "metadata.name", "Required value: name or generateName is required")],
                    )
                meta["name"] = self._generate_name(rt, ns, str(prefix))
            if self._find(rt, ns, meta["name"]) is not None:
                raise st.already_exists(rt.plural, rt.group, meta["name"])
            if rt.versioned:
                meta["uid"] = str(uuid.uuid4())
                if rt.tracks_generation:
                    meta["generation"] = 1
            meta["creationTimestamp"] = now_rfc3339()
            return self._commit(rt, obj, "ADDED", None)

    def _generate_name(self, rt: ResourceType, namespace: str, prefix: str) -> str:
        prefix = prefix[:58]
        while True:
            name = prefix + "".join(random.choice(_GENERATE_ALPHABET) for _ in range(5))
            if self._find(rt, namespace, name) is None:
                return name

    def update(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        body: Any,
        *,
        subresource: str | None = None,
    ) -> tuple[Entry, bool]:
        """PUT semantics. Returns the stored entry and whether it was created."""
        if rt.read_only:
            raise st.method_not_allowed()
        obj = self._normalize(rt, body)
        meta = obj["metadata"]
        if meta.get("name") != name:
            raise st.bad_request(
                f"the name of the object ({meta.get('name', '')}) does not match the name on the URL ({name})"
            )
        with self._lock:
            ns = self._namespace_of(rt, namespace, meta, seed=False)
            cur = self._find(rt, ns, name)
            if cur is None:
                if rt.create_on_update and subresource is None and not meta.get("resourceVersion"):
                    return self.create(rt, ns, obj), True
                raise st.not_found(rt.plural, rt.group, name)
            self._check_precondition(rt, cur, meta.get("resourceVersion"), required=not rt.unconditional_update)
            new = self._merge_for_update(rt, cur, obj, subresource)
            return self._replace(rt, cur, new), False

    def _merge_for_update(
        self, rt: ResourceType, cur: Entry, new: dict[str, Any], subresource: str | None
    ) -> dict[str, Any]:
        """The object a write stores: a status write changes only .status; a main-resource write
        keeps the system metadata and, for kinds with a status subresource, the stored status."""
        if subresource == "status":
            result = cur.copy()
            if "status" in new:
                result["status"] = new["status"]
            else:
                result.pop("status", None)
            return result
        meta, old_meta = new["metadata"], cur.obj["metadata"]
        for field_name in (*_SYSTEM_METADATA, "name", "namespace"):
            if field_name in old_meta:
                meta[field_name] = old_meta[field_name]
            else:
                meta.pop(field_name, None)
        if rt.status_subresource:
            if "status" in cur.obj:
                new["status"] = cur.obj["status"]
            else:
                new.pop("status", None)
        return new

    def _replace(self, rt: ResourceType, cur: Entry, new: dict[str, Any]) -> Entry:
        meta = new["metadata"]
        if rt.tracks_generation:
            generation = cur.obj["metadata"].get("generation", 1)
            meta["generation"] = generation + 1 if _spec_view(new) != _spec_view(cur.obj) else generation
        if rt.versioned:
            meta["resourceVersion"] = cur.resource_version
        if new == cur.obj:
            return cur  # kube does not write (nor bump the resourceVersion) for a no-op update
        return self._commit(rt, new, "MODIFIED", cur)

    def patch(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        content_type: str,
        raw: bytes,
        *,
        subresource: str | None = None,
    ) -> tuple[Entry, bool]:
        """A merge patch (a strategic merge patch on built-in kinds is applied as one: lists are
        replaced). The kubernetes client's JSON patches and server-side apply are not served."""
        if rt.read_only:
            raise st.method_not_allowed()
        media = content_type.split(";")[0].strip().lower()
        accepted = [MERGE_PATCH] + ([] if rt.custom else [STRATEGIC_MERGE_PATCH])
        if media not in accepted:
            raise st.unsupported_media_type(media, accepted)
        try:
            patch_body = json.loads(raw or b"null")
        except ValueError as exc:
            raise st.bad_request(f"error decoding patch: {exc}") from None
        with self._lock:
            cur = self._find(rt, (namespace if rt.namespaced else "") or "", name)
            if cur is None:
                raise st.not_found(rt.plural, rt.group, name)
            new = merge_patch(cur.copy(), patch_body)
            if not isinstance(new, dict) or not isinstance(new.get("metadata"), dict):
                raise st.ApiError(422, "the patched object is not a Kubernetes object")
            patched_rv = new["metadata"].get("resourceVersion")
            if patched_rv and str(patched_rv) != cur.resource_version:
                raise st.conflict(rt.plural, rt.group, name)
            new["apiVersion"], new["kind"] = rt.api_version, rt.kind
            new = self._merge_for_update(rt, cur, new, subresource)
            return self._replace(rt, cur, new), False

    def delete(self, rt: ResourceType, namespace: str | None, name: str, *, internal: bool = False) -> Entry:
        """Immediate, as with gracePeriodSeconds=0: no finalizers, no DeleteOptions preconditions."""
        if rt.read_only and not internal:
            raise st.method_not_allowed()
        with self._lock:
            cur = self._find(rt, namespace or "", name)
            if cur is None:
                raise st.not_found(rt.plural, rt.group, name)
            return self._commit(rt, cur.copy(), "DELETED", cur)

    def seed(self, rt: ResourceType, body: Any) -> Entry:
        """Upsert without the HTTP rules: status is written as given, namespaces are created."""
        obj = self._normalize(rt, body)
        with self._lock:
            ns = self._namespace_of(rt, None, obj["metadata"], seed=True)
            cur = self._find(rt, ns, obj["metadata"].get("name", ""))
            if cur is None:
                return self.create(rt, ns, obj, seed=True)
            meta, old_meta = obj["metadata"], cur.obj["metadata"]
            for field_name in _SYSTEM_METADATA:
                if field_name in old_meta:
                    meta[field_name] = old_meta[field_name]
            return self._replace(rt, cur, obj)

    # ----------------------------------------------------------------- reads

    def find(self, rt: ResourceType, namespace: str | None, name: str) -> Entry | None:
        with self._lock:
            return self._find(rt, namespace or "", name)

    def get(self, rt: ResourceType, namespace: str | None, name: str) -> Entry:
        entry = self.find(rt, namespace, name)
        if entry is None:
            raise st.not_found(rt.plural, rt.group, name)
        return entry

    def predicate(self, rt: ResourceType, label_selector: str | None, field_selector: str | None) -> Predicate | None:
        return combine(
            parse_label_selector(label_selector),
            parse_field_selector(field_selector, rt.supported_field_labels, dict(rt.field_aliases)),
        )

    def list(
        self,
        rt: ResourceType,
        namespace: str | None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        continue_token: str | None = None,
        resource_version: str | None = None,
    ) -> ListResult:
        """The current objects (no list at an older resourceVersion); `limit` pages continue after
        the last name sent, from the state at the time of each page."""
        predicate = self.predicate(rt, label_selector, field_selector)
        start = ""
        with self._lock:
            list_rv: int | None = self._rv if rt.versioned else None
            if continue_token:
                at_rv, start = _decode_continue(continue_token)
                if rt.versioned and at_rv < self._compacted_rv:
                    raise st.expired(
                        "The provided continue parameter is too old to display a consistent list result. "
                        "You can start a new list without the continue parameter."
                    )
                list_rv = at_rv if rt.versioned else None
            elif resource_version and resource_version != "0" and rt.versioned:
                requested = _parse_rv(resource_version)
                if requested > self._rv:
                    raise st.too_large_resource_version(requested, self._rv)
            snapshot = {entry.key: entry for entry in self._entries(rt, namespace)}
        keys = sorted(snapshot)
        index = bisect.bisect_left(keys, start) if start else 0
        items: list[Entry] = []
        while index < len(keys) and (not limit or len(items) < limit):
            entry = snapshot[keys[index]]
            index += 1
            if predicate is None or predicate(entry.obj):
                items.append(entry)
        more = bool(limit) and index < len(keys)
        token = _encode_continue(list_rv or 0, keys[index - 1] + "\x00") if more else None
        remaining = len(keys) - index if more and predicate is None else None
        return ListResult(str(list_rv) if list_rv is not None else None, items, token, remaining)

    # ----------------------------------------------------------------- watches

    def open_watch(
        self, rt: ResourceType, namespace: str | None, resource_version: str | None, *, send_initial: bool = False
    ) -> tuple[Watcher, list[Entry]]:
        """Subscribe to a kind's events after `resource_version`. Without one (or with "0", or when
        `send_initial`) the current objects come back to be sent as synthetic ADDED events first."""
        with self._lock:
            initial: list[Entry] = []
            replay: list[WatchEvent] = []
            if not resource_version or resource_version == "0" or send_initial:
                initial = sorted(self._entries(rt, namespace), key=lambda e: e.key)
            else:
                requested = _parse_rv(resource_version)
                if requested < self._compacted_rv:
                    raise st.too_old_resource_version(requested, self._compacted_rv)
                replay = [e for e in self._history if e.rv > requested and e.rt_key == rt.key]
            watcher = Watcher(rt, namespace)
            for event in replay:
                watcher.events.put(event)
            self._watchers.setdefault(rt.key, set()).add(watcher)
            return watcher, initial

    def close_watch(self, watcher: Watcher) -> None:
        with self._lock:
            self._watchers.get(watcher.rt.key, set()).discard(watcher)

    def close_all_watches(self) -> None:
        with self._lock:
            for watchers in self._watchers.values():
                for watcher in watchers:
                    watcher.events.put(None)

    def bookmark_rv(self, watcher: Watcher) -> int | None:
        """The resourceVersion a BOOKMARK may carry now, or None while events are still queued
        (a bookmark must never claim a version whose events the watcher has not been sent)."""
        with self._lock:
            return self._rv if watcher.events.empty() else None

    def watch_count(self, plural: str | None = None) -> int:
        with self._lock:
            return sum(len(ws) for key, ws in self._watchers.items() if plural is None or key[2] == plural)

"""Watch caches over the Kubernetes API, the way client-go's reflector keeps them: LIST (paged with
limit/continue), then WATCH from the list's resourceVersion with bookmarks; apply every event to an
in-memory map keyed by (namespace, name). An expired resourceVersion (410 Gone, whether answered
as the HTTP status or as an ERROR event in the stream) means a new LIST that replaces the map and
reports what changed meanwhile; any other failure (API error, dropped connection, timeout) means
a wait with exponential backoff and jitter, then a WATCH resumed from the last resourceVersion
seen, so no change is missed and nothing is listed again. The operator builds its pod cache
(`PodCache`, a digest of what reconcile reads per pod) and its ProfilingConfig watch
(`ConfigWatch`) here.

Everything is plain JSON read with `_preload_content=False`: the client's model objects would cost
several times the memory. Cached objects are shared with callers and must be treated as
read-only; pod digests even share their label maps and containers with each other.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from kprof_lib.adapters.kube import errors
from kprof_lib.adapters.kube.reads import get_list, open_response
from kprof_lib.spec import crd
from kprof_lib.state import digest
from kprof_lib.state.digest import PodDigest
from kprof_lib.state.errors import StateError

log = logging.getLogger(__name__)

ADDED = "ADDED"
MODIFIED = "MODIFIED"
DELETED = "DELETED"

PODS_PATH = "/api/v1/pods"
PROFILING_CONFIGS_PATH = f"/apis/{crd.API_VERSION}/{crd.PLURAL}"

# The only annotations reconcile reads (see kprof_lib.state.optin).
_KEPT_ANNOTATION_PREFIX = "profiling.io/"
# A watch that ends this soon with nothing in it is treated as a failure, so that a server that
# closes watches at once cannot make the informer spin.
_MIN_QUIET_WATCH_SECONDS = 1.0

T = TypeVar("T")  # what the cache holds per object: the object, or what `slim` makes of it


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter: the n-th failure in a row waits initial·factorⁿ⁻¹ seconds
    (at most `cap`), less a random share of up to `jitter` of it so that many clients that failed
    together do not come back together."""

    initial: float = 0.5
    cap: float = 30.0
    factor: float = 2.0
    jitter: float = 0.5

    def delay(self, failures: int) -> float:
        base = min(self.cap, self.initial * self.factor ** max(0, failures - 1))
        return base * (1.0 - self.jitter * random.random())


class _Expired(Exception):
    """The resourceVersion the informer holds is too old: only a new LIST helps."""


class WatchError(RuntimeError):
    """The API server ended a watch with an ERROR event other than 410 Gone."""


class Informer(Generic[T]):
    """A cache of one collection (e.g. `/api/v1/pods`, every namespace), kept current by a daemon
    thread after `start()`.

    Args:
        api_client: the kubernetes client's ApiClient (authentication and TLS come from it).
        path: the collection's API path; WATCH uses the same path with `watch=true`.
        slim: applied to every object before it is cached (None keeps objects whole).
        label_selector, field_selector: pushed to the server on LIST and WATCH.
        page_size: LIST page size (`limit`), which bounds the memory one page of full objects takes.
        timeout_seconds: how long the server keeps one watch open before the informer opens the next.
        backoff: waits between attempts after failures.
        request_timeout: seconds for one LIST page.

    Counters for metrics: `lists` (LISTs completed), `relists` (LISTs forced by an expired
    resourceVersion), `restarts` (failed LIST or WATCH attempts), `bookmarks`, `events`, and
    `last_error` (the latest failure, as text; None until one happens).
    """

    def __init__(
        self,
        api_client: ApiClient,
        path: str,
        *,
        slim: Callable[[dict[str, Any]], T] | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        page_size: int = 500,
        timeout_seconds: int = 300,
        backoff: Backoff = Backoff(),
        request_timeout: float = 60.0,
    ) -> None:
        self._api = api_client
        self.path = path
        self._slim = slim
        selectors = (("labelSelector", label_selector), ("fieldSelector", field_selector))
        self._selectors = [(name, value) for name, value in selectors if value]
        self._page_size = page_size
        self._timeout_seconds = max(1, int(timeout_seconds))
        self._backoff = backoff
        self._request_timeout = request_timeout

        self._lock = threading.Lock()
        self._objects: dict[str, dict[str, T]] = {}  # namespace -> name -> object
        self._resource_version: str | None = None
        self._callbacks: list[Callable[[str, T], None]] = []
        self._synced = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._response: Any = None  # the open watch response, so that stop() can cut it

        self.lists = 0
        self.relists = 0
        self.restarts = 0
        self.bookmarks = 0
        self.events = 0
        self.last_error: str | None = None

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> Informer[T]:
        if self._thread is not None:
            return self
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name=f"informer {self.path}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop watching, promptly: the open watch's socket is shut down rather than waited out."""
        self._stopping.set()
        with self._lock:
            response = self._response
        if response is not None:
            _cut(response)
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                log.warning("informer for %s did not stop within %.1fs", self.path, timeout)

    @property
    def synced(self) -> bool:
        """True once the first LIST has been loaded (and from then on, through relists)."""
        return self._synced.is_set()

    def wait_synced(self, timeout: float | None = None) -> bool:
        return self._synced.wait(timeout)

    @property
    def resource_version(self) -> str | None:
        """The resourceVersion the next watch resumes from."""
        return self._resource_version

    def on_change(self, callback: Callable[[str, T], None]) -> None:
        """Call `callback(event_type, obj)` (ADDED, MODIFIED, DELETED) for every change, on the
        informer's thread: it must return quickly and not raise (exceptions are logged). The first
        LIST reports every object as ADDED; a relist reports the differences it found."""
        self._callbacks.append(callback)

    # ----------------------------------------------------------------- reads

    def items(self, namespace: str | None = None) -> list[T]:
        """A snapshot of the cached objects, of one namespace or of all (None)."""
        with self._lock:
            if namespace is None:
                return [obj for names in self._objects.values() for obj in names.values()]
            return list(self._objects.get(namespace, {}).values())

    def get(self, namespace: str | None, name: str) -> T | None:
        with self._lock:
            return self._objects.get(namespace or "", {}).get(name)

    def __len__(self) -> int:
        with self._lock:
            return sum(len(names) for names in self._objects.values())

    # ----------------------------------------------------------------- the loop

    def _run(self) -> None:
        failures = 0
        expiries = 0
        must_list = True
        while not self._stopping.is_set():
            try:
                if must_list:
                    self._list()
                    must_list = False
                delivered, lasted = self._watch()
                if not self._stopping.is_set() and not delivered and lasted < _MIN_QUIET_WATCH_SECONDS:
                    raise WatchError(f"the watch ended after {lasted:.2f}s without any event")
                failures = expiries = 0
            except _Expired as exc:
                must_list = True
                self.relists += 1
                expiries += 1
                log.info("%s: %s; listing again", self.path, exc)
                # client-go relists at once; an expiry right after a fresh LIST is waited out like
                # any other failure, so that a server expiring everything cannot keep us listing.
                if expiries > 1:
                    self._stopping.wait(self._backoff.delay(expiries - 1))
            except Exception as exc:  # every other failure: back off and resume from where we were
                if self._stopping.is_set():
                    break
                failures += 1
                self.restarts += 1
                self.last_error = errors.brief(exc)
                delay = self._backoff.delay(failures)
                retrying = "%s: %s; retrying in %.1fs from resourceVersion %s"
                extra = {"path": self.path, "failures": failures}
                log.warning(retrying, self.path, self.last_error, delay, self._resource_version, extra=extra)
                self._stopping.wait(delay)

    def _list(self) -> None:
        objects: dict[str, dict[str, T]] = {}
        query: list[tuple[str, str]] = [*self._selectors, ("limit", str(self._page_size))]
        token: str | None = None
        resource_version: str | None = None
        while True:
            page_query = query + ([("continue", token)] if token else [])
            try:
                page, kept = self._page(page_query)
            except errors.APIGone as exc:  # the continue token expired: the whole LIST starts again
                raise _Expired(f"LIST {self.path}: 410 Gone ({exc.message})") from None
            item_api_version = page.get("apiVersion")
            item_kind = (page.get("kind") or "").removesuffix("List")
            for namespace, name, obj in kept:
                # Typed lists leave apiVersion/kind out of their items; watch events carry them.
                if item_api_version and item_kind and not self._slim:
                    obj.setdefault("apiVersion", item_api_version)
                    obj.setdefault("kind", item_kind)
                objects.setdefault(namespace, {})[name] = obj
            metadata = page.get("metadata") or {}
            resource_version = resource_version or metadata.get("resourceVersion")
            token = metadata.get("continue")
            if self._stopping.is_set():
                return  # a partial list must not replace the cache
            if not token:
                break
        self._replace(objects, resource_version)

    def _page(self, query: list[tuple[str, str]]) -> tuple[dict[str, Any], list[tuple[str, str, Any]]]:
        """One LIST page: its fields and its objects (namespace, name, what is cached), each slimmed
        as soon as it is decoded (reads.get_list), so that the full objects of a page never exist
        all at once."""
        kept: list[tuple[str, str, Any]] = []
        slim = self._slim

        def keep(item: dict[str, Any]) -> None:
            metadata = item.get("metadata") or {}
            kept.append((metadata.get("namespace") or "", metadata.get("name", ""), slim(item) if slim else item))

        return get_list(self._api, self.path, keep, query, timeout=self._request_timeout), kept

    def _replace(self, objects: dict[str, dict[str, T]], resource_version: str | None) -> None:
        with self._lock:
            old, self._objects = self._objects, objects
            self._resource_version = resource_version
        self.lists += 1
        self._synced.set()
        if not self._callbacks:
            return
        for namespace, names in old.items():
            current = objects.get(namespace, {})
            for name, obj in names.items():
                if name not in current:
                    self._emit(DELETED, obj)
        for namespace, names in objects.items():
            previous = old.get(namespace, {})
            for name, obj in names.items():
                before = previous.get(name)
                if before is None:
                    self._emit(ADDED, obj)
                elif self._version(before) != self._version(obj) or (self._version(obj) is None and before != obj):
                    self._emit(MODIFIED, obj)

    def _watch(self) -> tuple[int, float]:
        """One WATCH until the server ends it; returns (events delivered, seconds it lasted)."""
        query = [*self._selectors, ("watch", "true"), ("allowWatchBookmarks", "true")]
        query.append(("timeoutSeconds", str(self._timeout_seconds)))
        if self._resource_version:
            query.append(("resourceVersion", self._resource_version))
        started = time.monotonic()
        try:
            # A read timeout beyond the server's own end of the watch: a connection that went silent
            # without closing is given up on instead of waited on forever.
            timeout = (self._request_timeout, self._timeout_seconds + 30)
            response = open_response(self._api, "GET", self.path, query=query, timeout=timeout)
        except ApiException as exc:
            error = errors.from_exception(exc)
            if isinstance(error, errors.APIGone):
                raise _Expired(f"WATCH {self.path}: 410 Gone ({error.message})") from None
            raise error from None
        with self._lock:
            self._response = response
        delivered = 0
        try:
            if self._stopping.is_set():
                return delivered, time.monotonic() - started
            for line in _lines(response):
                if self._stopping.is_set():
                    break
                self._handle(json.loads(line))
                delivered += 1
        finally:
            with self._lock:
                self._response = None
            response.close()
            response.release_conn()
        return delivered, time.monotonic() - started

    def _handle(self, event: dict[str, Any]) -> None:
        event_type = event.get("type")
        obj = event.get("object") or {}
        if event_type == "ERROR":
            code, message = obj.get("code"), obj.get("message", "")
            if code == 410:
                raise _Expired(f"WATCH {self.path}: 410 Gone ({message})")
            raise WatchError(f"WATCH {self.path}: error event {code} {obj.get('reason', '')}: {message}")
        metadata = obj.get("metadata") or {}
        resource_version = metadata.get("resourceVersion")
        if event_type == "BOOKMARK":
            if resource_version:
                self._resource_version = resource_version
            self.bookmarks += 1
            return
        if event_type not in (ADDED, MODIFIED, DELETED):
            log.warning("%s: ignoring a watch event of type %r", self.path, event_type)
            return
        # Without `slim` the cache holds the objects themselves (T is their dict).
        cached = cast(T, self._slim(obj) if self._slim else obj)
        namespace, name = metadata.get("namespace") or "", metadata.get("name", "")
        with self._lock:
            if event_type == DELETED:
                names = self._objects.get(namespace)
                if names is not None:
                    names.pop(name, None)
                    if not names:
                        del self._objects[namespace]
            else:
                self._objects.setdefault(namespace, {})[name] = cached
            if resource_version:
                self._resource_version = resource_version
        self.events += 1
        self._emit(event_type, cached)

    def _version(self, obj: Any) -> str | None:
        """The resourceVersion of a cached object."""
        return (obj.get("metadata") or {}).get("resourceVersion")

    def _emit(self, event_type: str, obj: Any) -> None:
        for callback in self._callbacks:
            try:
                callback(event_type, obj)
            except Exception:
                log.exception("%s: change callback failed on %s", self.path, event_type)


class PodCache(Informer[PodDigest]):
    """The operator's `PodSource`: every pod of every namespace (or those a selector picks), each
    kept as a `PodDigest` made once when its event arrives (`digest_pod`)."""

    def __init__(self, api_client: ApiClient, **options: Any) -> None:
        options.setdefault("slim", digest_pod)
        super().__init__(api_client, PODS_PATH, **options)

    def _version(self, obj: Any) -> str | None:
        return obj.resource_version

    pods = Informer.items


class ConfigWatch(Informer[dict[str, Any]]):
    """Every ProfilingConfig in the cluster, kept whole; `on_change` tells the operator when one is
    added, changed or deleted."""

    def __init__(self, api_client: ApiClient, **options: Any) -> None:
        super().__init__(api_client, PROFILING_CONFIGS_PATH, **options)

    configs = Informer.items


# ----------------------------------------------------------------- slimming


def digest_pod(pod: dict[str, Any]) -> PodDigest:
    """The pod as the digest reconcile decides with (kprof_lib.state.digest): metadata, the
    `profiling.io/` annotations, phase and IP, requests and limits summed into numbers. About a
    third of the pod slimmed to the same fields as JSON; what pods of one workload have in common
    (labels, annotations, containers, service) is stored once and shared. A pod whose quantities do
    not parse (no API server writes such a pod) keeps its spec, for reconcile to name the field."""
    metadata = pod.get("metadata") or {}
    annotations = {
        key: value
        for key, value in (metadata.get("annotations") or {}).items()
        if key.startswith(_KEPT_ANNOTATION_PREFIX)
    }
    slim = {
        "metadata": {**metadata, "labels": _shared(metadata.get("labels") or {}), "annotations": _shared(annotations)},
        "status": pod.get("status") or {},
        "spec": pod.get("spec") or {},
    }
    try:
        found = digest.from_pod(slim, "pod")
    except StateError as error:
        log.warning("pod %s/%s: %s; left alone", metadata.get("namespace"), metadata.get("name"), error)
        version = metadata.get("resourceVersion")
        return PodDigest(metadata.get("namespace", ""), metadata.get("name", ""), resource_version=version)
    try:
        containers = found.containers_of("pod")
    except StateError:
        log.warning("pod %s/%s: its resources do not parse", found.namespace, found.name)
        found.source = {"spec": slim["spec"]}
    else:
        found.containers = _SHARED_CONTAINERS.setdefault(containers, containers)
        if len(_SHARED_CONTAINERS) > _SHARED_LIMIT:
            _SHARED_CONTAINERS.clear()
    # Only what pods share is interned: interned strings outlive the pods that churn.
    found.namespace, found.service = _intern(found.namespace), _intern(found.service)
    return found


# Shared read-only values, by their JSON text (containers by value). Bounded: cleared when a
# cluster has more distinct values than any realistic fleet of workloads would produce.
_SHARED: dict[str, Any] = {}
_SHARED_CONTAINERS: dict[tuple[digest.Container, ...], tuple[digest.Container, ...]] = {}
_SHARED_LIMIT = 50_000


def _shared(value: Any) -> Any:
    key = json.dumps(value, sort_keys=True, separators=(",", ":"))
    found = _SHARED.get(key)
    if found is not None:
        return found
    if len(_SHARED) >= _SHARED_LIMIT:
        _SHARED.clear()
    return _SHARED.setdefault(key, _intern_all(value))


def _intern(value: Any) -> Any:
    return sys.intern(value) if isinstance(value, str) else value


def _intern_all(value: Any) -> Any:
    if isinstance(value, dict):
        return {_intern(k): _intern_all(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_intern_all(v) for v in value]
    return _intern(value)


# ----------------------------------------------------------------- helpers


def _lines(response: Any) -> Iterator[bytes]:
    """The watch stream's lines (one JSON event each) as they arrive."""
    pending = bytearray()
    for chunk in _chunks(response):
        pending += chunk
        if b"\n" not in chunk:
            continue
        *lines, rest = pending.split(b"\n")
        pending = bytearray(rest)
        for line in lines:
            if line.strip():
                yield bytes(line)
    if pending.strip():
        yield bytes(pending)


def _chunks(response: Any) -> Iterator[bytes]:
    if getattr(response, "chunked", False) and response.supports_chunked_reads():
        yield from response.read_chunked(decode_content=True)
        return
    while True:  # not chunked (unusual for a watch): read what is there without waiting for more
        data = response.read1(65536) if hasattr(response, "read1") else response.read(1)
        if not data:
            return
        yield data


def _cut(response: Any) -> None:
    """Shut the watch's socket (urllib3's `shutdown`): the thread blocked on it sees the stream end now."""
    with contextlib.suppress(Exception):
        response.shutdown()

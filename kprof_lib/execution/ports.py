"""The ports the executor and the runtimes talk through. Adapters implement them; tests may too.

Contracts are stated here, once: what each method returns, what it raises, and what it must not do.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from kprof_lib.state.digest import PodDigest
from kprof_lib.state.podusage import PodUsage

PPROF_CONTENT_TYPE = "application/octet-stream"


@dataclass(frozen=True)
class ProfileRequest:
    """One profile to fetch from one pod's pprof endpoint."""

    namespace: str
    pod: str
    pod_ip: str
    scheme: str
    port: int
    base_path: str  # e.g. "/debug/pprof", no trailing slash
    profile_type: str  # heap, cpu, goroutine, mutex, block, allocs, threadcreate
    cpu_seconds: int = 30
    # pprof's text form (debug=1: counts per stack, the total on the first line); None: the
    # gzip'd protobuf a capture stores. Not for cpu, whose query is its seconds.
    debug: int | None = None

    @property
    def path(self) -> str:
        """The path under the pod's address: `{base}/profile` for cpu, `{base}/{type}` otherwise."""
        leaf = "profile" if self.profile_type == "cpu" else self.profile_type
        return f"{self.base_path.rstrip('/')}/{leaf}"

    @property
    def query(self) -> dict[str, str]:
        if self.profile_type == "cpu":
            return {"seconds": str(self.cpu_seconds)}
        return {"debug": str(self.debug)} if self.debug is not None else {}

    @property
    def target(self) -> str:
        """A human-readable address for messages and spans."""
        query = "?" + "&".join(f"{k}={v}" for k, v in self.query.items()) if self.query else ""
        return f"{self.scheme}://{self.pod_ip}:{self.port}{self.path}{query}"


@dataclass
class Response:
    """An HTTP response being streamed. `chunks` yields the body; reading it may raise
    `CaptureTimeout` or `CaptureFailed` (connection lost)."""

    status: int
    reason: str
    headers: Mapping[str, str]
    chunks: Iterator[bytes]


class Transport(Protocol):
    """Reaches a pod's pprof endpoint: directly, through the API server's pods/proxy, or port-forward.

    `open` returns a context manager that yields the `Response` once the status line and headers
    are in; leaving the context releases the connection whether or not the body was read.
    It raises `CaptureTimeout` when nothing answers within `timeout` seconds and `CaptureFailed`
    for every other failure to connect (the message says why). It does not check the status code,
    the size or the content: the caller does, while streaming.
    """

    name: str

    def open(self, request: ProfileRequest, timeout: float) -> AbstractContextManager[Response]: ...

    def abort(self) -> None:
        """Cuts every fetch in flight now (`Executor.abort`): their bodies end in `CaptureFailed`.
        Safe from a signal handler; later fetches are not affected."""
        ...


class ForwardingTransport:
    """A `Transport` in front of `inner` that passes everything on; subclasses change `open`."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.name = inner.name

    def open(self, request: ProfileRequest, timeout: float) -> AbstractContextManager[Response]:
        return self.inner.open(request, timeout)

    def abort(self) -> None:
        self.inner.abort()


@dataclass(frozen=True)
class StoredObject:
    """Where a profile went. `uri` is s3://bucket/key or file:///path; `spooled` when it waits in the
    local spool for the store to come back."""

    uri: str
    key: str
    size: int
    attempts: int = 1
    spooled: bool = False


class ProfileStore(Protocol):
    """Keeps profiles. `put` stores one object and returns where it went; it raises `StoreError` when
    the object could not be stored (after the store's own retries). It must not keep a partial object
    under `key` on failure. `metadata` values and `tags` are plain strings, already within limits the
    caller can know (see keys.py); the store drops what its backend still refuses, with a log line.
    """

    description: str  # e.g. "s3://bucket" or "/var/lib/kprof/profiles", for messages

    @property
    def bucket(self) -> str | None:
        """The S3 bucket profiles end up in (a span attribute); None for other stores."""
        ...

    def uri_for(self, key: str) -> str:
        """Where `key` is (or would be) stored: s3://bucket/key or file:///path."""
        ...

    def put(
        self, key: str, data: bytes, *, metadata: Mapping[str, str], tags: Mapping[str, str], content_type: str
    ) -> StoredObject: ...

    def read(self, key: str, max_bytes: int) -> bytes:
        """What the store holds under `key` (a workload's healthy baseline, read back to diff an
        incident against); raises `StoreError` when the object is not there or not readable, or is
        larger than `max_bytes` (nothing larger is read)."""
        ...

    def check(self) -> None:
        """Start-up diagnostics: raises `StoreError` saying why the destination cannot be reached
        (for S3, a HeadBucket with the credentials of the default chain; its cause is the SDK's
        error); a store with nothing to ask returns."""
        ...


@runtime_checkable
class DocumentStore(Protocol):
    """A store that can also replace what is under a key (the local directory, S3): for documents
    derived from profiles that are written again and again under one key, such as a workload's
    merged `default.pgo`, never for profiles (`ProfileStore.put` never overwrites). `replace` takes
    the arguments of `put`, returns where the object went, and raises `StoreError` as `put` does."""

    def replace(
        self, key: str, data: bytes, *, metadata: Mapping[str, str], tags: Mapping[str, str], content_type: str
    ) -> StoredObject: ...


class ForwardingStore:
    """A `ProfileStore` in front of `inner` that passes everything on; subclasses change `put`."""

    def __init__(self, inner: ProfileStore) -> None:
        self.inner = inner
        self.description = inner.description

    @property
    def bucket(self) -> str | None:
        return self.inner.bucket

    def uri_for(self, key: str) -> str:
        return self.inner.uri_for(key)

    def put(
        self, key: str, data: bytes, *, metadata: Mapping[str, str], tags: Mapping[str, str], content_type: str
    ) -> StoredObject:
        return self.inner.put(key, data, metadata=metadata, tags=tags, content_type=content_type)

    def read(self, key: str, max_bytes: int) -> bytes:
        return self.inner.read(key, max_bytes)

    def check(self) -> None:
        self.inner.check()


class Clock(Protocol):
    """Time, for everything except reconcile (which is given `now`). Tests may drive a fake one."""

    def now(self) -> dt.datetime: ...  # aware, UTC

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class CaptureError(Exception):
    """A capture that did not produce a profile; `str()` is the reason shown to users."""

    retryable = False


class CaptureFailed(CaptureError):
    """Connection refused, reset, DNS, HTTP error status, non-pprof content: a clear reason."""


class CaptureTimeout(CaptureError):
    """Nothing, or not all of the profile, arrived in time."""


class CaptureTooLarge(CaptureError):
    """The profile exceeded the size cap; streaming was stopped at the cap."""


class TargetBusy(CaptureError):
    """Go's CPU profiler is held by another profiler (HTTP 500 "cpu profiling already in use"):
    worth retrying later."""

    retryable = True


class StoreError(Exception):
    """A profile that could not be stored; `str()` says why. `retryable` when a later attempt may work
    (network, throttling, 5xx), false for permanent refusals (no such bucket, access denied)."""

    def __init__(self, message: str, *, retryable: bool = True, attempts: int = 1):
        super().__init__(message)
        self.retryable = retryable
        self.attempts = attempts


# Ports of the runtimes that watch a cluster (the operator); the sidecar and local mode build their
# cluster state without them.


class PodSource(Protocol):
    """The pods the operator knows about, from its watch cache: each a `PodDigest` (what reconcile
    reads of it). `pods(namespace)` returns a snapshot list; None means every namespace.
    `synced` is False until the first LIST has been loaded."""

    @property
    def synced(self) -> bool: ...

    def pods(self, namespace: str | None = None) -> list[PodDigest]: ...


class MetricsSource(Protocol):
    """PodMetrics as metrics-server returns them, each as a `PodUsage` (or, when not well-formed, cut
to the fields reconcile reads, for it to report). One LIST per
    call: the label selector (a string in the API's syntax, e.g. "tier in (web),!canary") is pushed
    to the server; `wanted`, when given, says which pods' ((namespace, name)) to keep, the others
    being dropped as they are read. Raises on API errors (the check then fails and is retried at
    the next interval)."""

    def pod_metrics(
        self,
        namespace: str | None,
        label_selector: str | None,
        wanted: Callable[[tuple[str, str]], bool] | None = None,
    ) -> Sequence[PodUsage | dict]: ...


class HistoryStore(Protocol):
    """Capture history per ProfilingConfig ("namespace/pod" -> {lastThresholdCapture,
    lastOnDemandCapture}), kept where it survives a restart of the operator. `load` returns {} for a
    config with no history; `merge` adds updates and must not lose concurrent updates."""

    def load(self, config_key: str) -> dict[str, dict[str, str]]: ...

    def merge(self, config_key: str, updates: Mapping[str, Mapping[str, str]]) -> None: ...

    def forget(self, config_key: str) -> None: ...


class EventRecorder(Protocol):
    """Kubernetes Events, deduplicated as Kubernetes does (same object, reason and message within a
    window → count and lastTimestamp of the existing Event are updated). Never raises: an Event that
    cannot be written is logged, not fatal."""

    def record(self, involved: Mapping[str, str], event_type: str, reason: str, message: str) -> None: ...


class StatusPort(Protocol):
    """Writes a ProfilingConfig's status (merge patch on the status subresource); returns the
    updated object, or None when the config no longer exists. Raises when the write failed (the
    caller logs it; the next run writes again)."""

    def patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> dict[str, Any] | None: ...

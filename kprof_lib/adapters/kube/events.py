"""Kubernetes Events (core/v1) for the operator's `EventRecorder` port: on a pod when a profile was
captured (and where it went), spooled or failed; on a ProfilingConfig when its spec is invalid.

Deduplicated as client-go's EventCorrelator does: an event is keyed by its involved object, type,
reason and message; the first occurrence creates an Event named `<object name>.<hex nanoseconds>`
with count 1, and a repeat within the window patches that Event's count and lastTimestamp instead
of adding another (so `kubectl describe` shows "x5 over 3m"). The keys live in a bounded LRU.
Recording never raises: an Event that cannot be written is a log line, not a failed capture.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

from kubernetes.client import ApiClient

from kprof_lib.adapters.kube import errors
from kprof_lib.adapters.kube.reads import MERGE_PATCH, send_json
from kprof_lib.state import cluster

log = logging.getLogger(__name__)

NORMAL = "Normal"
WARNING = "Warning"

# Reasons the operator records, with the type each goes with.
PROFILE_CAPTURED = "ProfileCaptured"  # Normal, on the pod: "captured heap,cpu (cpu-threshold ...) → s3://..."
PROFILE_CAPTURE_FAILED = "ProfileCaptureFailed"  # Warning, on the pod: why
PROFILE_SPOOLED = "ProfileSpooled"  # Warning, on the pod: the store is down, the profile waits locally
INVALID_CONFIG = "InvalidConfig"  # Warning, on the ProfilingConfig: the SpecError text

# kube-apiserver keeps Event messages readable; longer texts are cut with a marker.
MAX_MESSAGE_LENGTH = 1024


@dataclass
class _Seen:
    event_name: str
    namespace: str
    count: int
    last: float  # monotonic


class EventRecorder:
    """Writes Events in the involved object's namespace.

    `involved` is {kind, namespace, name, uid?, apiVersion} (a ProfilingConfig: apiVersion
    profiling.io/v1alpha1, kind ProfilingConfig). `host` is the operator's pod name, shown as the
    Event's source host and reporting instance.
    """

    def __init__(
        self,
        api_client: ApiClient,
        component: str = "kprof-operator",
        host: str | None = None,
        *,
        window: float = 600.0,
        cache_size: int = 4096,
        timeout: float = 10.0,
    ) -> None:
        self._api = api_client
        self.component = component
        self.host = host
        self._window = window
        self._cache_size = cache_size
        self._timeout = timeout
        self._seen: OrderedDict[tuple[str, ...], _Seen] = OrderedDict()
        self._lock = threading.Lock()
        self.failures = 0  # Events that could not be written, for metrics

    def record(self, involved: Mapping[str, str], event_type: str, reason: str, message: str) -> None:
        try:
            self._record(involved, event_type, reason, message)
        except Exception as exc:
            self.failures += 1
            detail = errors.brief(exc)
            kind, namespace, name = involved.get("kind"), involved.get("namespace"), involved.get("name")
            extra = {"reason": reason, "detail": detail}
            log.warning("could not record event %s on %s %s/%s: %s", reason, kind, namespace, name, detail, extra=extra)

    def _record(self, involved: Mapping[str, str], event_type: str, reason: str, message: str) -> None:
        namespace = involved.get("namespace") or "default"
        if len(message) > MAX_MESSAGE_LENGTH:
            message = message[: MAX_MESSAGE_LENGTH - 1] + "…"
        what = (involved.get("apiVersion", ""), involved.get("kind", ""), namespace, involved["name"])
        key = (*what, involved.get("uid", ""), event_type, reason, message)
        now = cluster.format_time(dt.datetime.now(dt.UTC))
        with self._lock:
            seen = self._seen.get(key)
            if seen is not None and time.monotonic() - seen.last < self._window:
                path = f"/api/v1/namespaces/{seen.namespace}/events/{seen.event_name}"
                patch = {"count": seen.count + 1, "lastTimestamp": now}
                try:
                    send_json(self._api, "PATCH", path, patch, content_type=MERGE_PATCH, timeout=self._timeout)
                    seen.count += 1
                    seen.last = time.monotonic()
                    self._seen.move_to_end(key)
                    return
                except errors.APINotFound:  # the Event expired (kube keeps them ~1h): start anew
                    pass
            event_name = f"{involved['name']}.{time.time_ns():x}"
            involved_object = {
                key: involved[key]
                for key in ("apiVersion", "kind", "namespace", "name", "uid", "resourceVersion", "fieldPath")
                if involved.get(key)
            }
            event = {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"name": event_name, "namespace": namespace},
                "involvedObject": involved_object,
                "type": event_type,
                "reason": reason,
                "message": message,
                "source": {"component": self.component, **({"host": self.host} if self.host else {})},
                "reportingComponent": self.component,
                "reportingInstance": self.host or "",
                "firstTimestamp": now,
                "lastTimestamp": now,
                "count": 1,
            }
            send_json(self._api, "POST", f"/api/v1/namespaces/{namespace}/events", event, timeout=self._timeout)
            self._seen[key] = _Seen(event_name, namespace, 1, time.monotonic())
            self._seen.move_to_end(key)
            while len(self._seen) > self._cache_size:
                self._seen.popitem(last=False)

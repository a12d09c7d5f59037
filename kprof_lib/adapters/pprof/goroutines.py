"""Goroutine counts read from pods' pprof endpoints, for the goroutine triggers: the first line of
`<path>/goroutine?debug=1` ("goroutine profile: total 1234"), through the same transports the
captures use (direct, proxy, port-forward). The sidecar and local mode read their one target at
every check; the operator reads the selected pods of the configs that ask (`GoroutineReader`, with
bounded concurrency and one deadline for the whole batch).

Reading stops at the first chunk that holds that line (or once `MAX_LINE_BYTES` have come without
one); a chunk is what has arrived, at most the transports' 64 KiB: the rest of the text (one entry
per distinct stack, large while goroutines leak) is never downloaded. The connection is then closed
rather than pooled, which costs a new connection at the next read: cheaper than reading a body
that grows with the leak. A pod that does not answer, answers an error or something else than that
line has no count this check (`CountError`, logged by the caller): a trigger then says it has no
count, nothing is captured for it.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kprof_lib.execution.ports import CaptureError, ProfileRequest, Transport
from kprof_lib.planning import selection
from kprof_lib.spec.model import Spec
from kprof_lib.state import digest, optin
from kprof_lib.state.digest import PodDigest
from kprof_lib.state.errors import StateError

log = logging.getLogger("kprof.goroutines")

MAX_LINE_BYTES = 256  # "goroutine profile: total " and a number, with room to spare
DEFAULT_TIMEOUT_SECONDS = 5.0
DEFAULT_CONCURRENCY = 16
_FIRST_LINE = re.compile(rb"goroutine profile: total (\d{1,12})")


class CountError(CaptureError):
    """The goroutine count could not be read; the message names the target and why."""


def request_for(namespace: str, pod: str, pod_ip: str, endpoint: optin.Endpoint) -> ProfileRequest:
    """The request for a pod's goroutine count at its pprof endpoint."""
    return ProfileRequest(
        namespace=namespace,
        pod=pod,
        pod_ip=pod_ip,
        scheme=endpoint.scheme,
        port=endpoint.port,
        base_path=endpoint.path,
        profile_type="goroutine",
        debug=1,
    )


def requests_for(spec: Spec, pods: Iterable[PodDigest | Mapping[str, Any]]) -> list[ProfileRequest]:
    """The requests for the pods of `pods` (digests, or v1 Pods as the API returns them) that
    `spec` selects and that can be profiled: opted in, running with an IP, valid endpoint
    annotations. The others get no count; reconcile says why they are left alone."""
    wanted = spec.namespace
    labels_match = selection.compile_label_selector(spec.label_selector)
    found = []
    for index, item in enumerate(pods):
        try:
            pod = item if isinstance(item, PodDigest) else digest.from_pod(item, f"pods[{index}]")
        except (StateError, KeyError, AttributeError, TypeError):
            continue  # not a pod reconcile could read either: it says so
        if (
            not selection.namespace_matches(wanted, pod.namespace)
            or not labels_match(pod.labels)
            or not pod.enabled
            or not pod.running
            or not pod.pod_ip
        ):
            continue
        endpoint = optin.endpoint(pod.annotations)
        if isinstance(endpoint, optin.Endpoint):
            found.append(request_for(pod.namespace, pod.name, pod.pod_ip, endpoint))
    return found


def read_count(transport: Transport, request: ProfileRequest, *, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> int:
    """The number of goroutines `request`'s pod reports now. Raises `CountError` (or the
    transport's `CaptureError`: timeout, refused connection) naming the target."""
    with transport.open(request, timeout) as response:
        if response.status != 200:
            reason = f" {response.reason}" if response.reason else ""
            raise CountError(f"HTTP {response.status}{reason} from {request.target}")
        head = b""
        for chunk in response.chunks:
            head += chunk
            if b"\n" in head or len(head) > MAX_LINE_BYTES:
                break
    line = head.split(b"\n", 1)[0][:MAX_LINE_BYTES]
    found = _FIRST_LINE.fullmatch(line.rstrip(b"\r"))
    if found is None:
        # What a target answered is not quoted (see execution.capture): its size says enough.
        raise CountError(
            f"{request.target} did not answer with 'goroutine profile: total N' "
            f"(first line of {len(line)} bytes; is it Go's net/http/pprof?)"
        )
    return int(found[1])


class GoroutineReader:
    """Reads many pods' counts at once: at most `concurrency` reads in flight, each within
    `timeout`, and none started after the batch's deadline. Thread-safe; its worker threads are
    made on first use and end with `close()`."""

    def __init__(self, *, concurrency: int = DEFAULT_CONCURRENCY, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, not {concurrency}")
        self.concurrency = concurrency
        self.timeout = timeout
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._failing: dict[str, frozenset[str]] = {}  # per label: the pods that failed last time

    def read(
        self,
        transport: Transport,
        requests: Iterable[ProfileRequest],
        *,
        within: float | None = None,
        label: str = "",
    ) -> dict[str, int]:
        """{"namespace/pod": count} for every pod that answered; `within` seconds bound the whole
        batch (reads not started by then are skipped, those in flight end by their own timeout).
        Failures are logged under `label` (the config): a warning when the pods failing change,
        so a broken endpoint is said once, not at every check."""
        pending = list(requests)
        counts: dict[str, int] = {}
        failures: dict[str, str] = {}
        if pending:
            deadline = None if within is None else time.monotonic() + within
            pool = self._workers()
            futures = [pool.submit(self._one, transport, request, deadline) for request in pending]
            for request, future in zip(pending, futures, strict=True):
                key = f"{request.namespace}/{request.pod}"
                outcome = future.result()
                if isinstance(outcome, int):
                    counts[key] = outcome
                else:
                    failures[key] = outcome
        self._note(label, failures)
        return counts

    def _one(self, transport: Transport, request: ProfileRequest, deadline: float | None) -> int | str:
        timeout = self.timeout
        if deadline is not None:
            timeout = min(timeout, deadline - time.monotonic())
            if timeout <= 0:
                return "not read: the check's time for goroutine counts was over"
        try:
            return read_count(transport, request, timeout=timeout)
        except CaptureError as error:
            return str(error)
        except Exception as error:  # a transport bug must not fail the check; say what it was
            return f"{type(error).__name__}: {error}"

    def _note(self, label: str, failures: Mapping[str, str]) -> None:
        failing = frozenset(failures)
        with self._lock:
            changed = self._failing.get(label, frozenset()) != failing
            self._failing[label] = failing
        if not failures:
            return
        first = min(failures)
        extra = {
            "config": label or None,
            "action": "goroutines",
            "reason": "goroutines-unread",
            "pods": sorted(failures)[:20],
        }
        log.log(
            logging.WARNING if changed else logging.DEBUG,
            "goroutine count not read for %d pod(s), e.g. %s: %s",
            len(failures),
            first,
            failures[first],
            extra=extra,
        )

    def forget(self, label: str) -> None:
        with self._lock:
            self._failing.pop(label, None)

    def _workers(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="kprof-goroutines")
            return self._pool

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

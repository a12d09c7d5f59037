"""Fault injection for the front (front.py): a `Fault` describes which requests misbehave (method,
path regex, watch/list only) and how (an error status with optional Retry-After, a delay, a watch
stream cut after N events, a connection closed without an answer). `FaultSet` hands the first
matching fault with uses left to the front, which applies it before passing anything on, so an
injected error never writes. Also `ApiError`, an answer in kube-apiserver's Status form, and
`RequestLog`, the record tests and benchmarks count."""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from typing import NamedTuple

_REASONS = {400: "BadRequest", 403: "Forbidden", 404: "NotFound", 409: "Conflict", 410: "Expired",
            429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable", 504: "Timeout"}
_MESSAGES = {
    429: "Too many requests, please try again later.",
    500: "Internal error occurred: injected fault",
    503: "the server is currently unable to handle the request",
    504: "Timeout: request did not complete within the allotted timeout",
}


class ApiError(Exception):
    """An API failure answered with the `kind: Status` body kube-apiserver would send."""

    def __init__(self, code: int, message: str, retry_after: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.reason = _REASONS.get(code, "Unknown")
        self.details = {} if retry_after is None else {"retryAfterSeconds": retry_after}
        self.headers = {} if retry_after is None else {"Retry-After": str(retry_after)}

    def body(self) -> bytes:
        status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                  "message": self.message, "reason": self.reason, "details": self.details, "code": self.code}
        return json.dumps(status).encode()


@dataclass
class Fault:
    """How matching requests misbehave.

    - `status`: answer with this code and a kube Status body (429 gets `retry_after` as the
      Retry-After header and details.retryAfterSeconds). `None` means: after `delay`, serve normally.
    - `delay`: seconds to wait before anything else happens.
    - `drop_after_events`: watch requests only; the stream is cut (no terminating chunk) after that
      many events, 0 meaning right after the response headers. Takes precedence over `status`.
    - `close_connection`: close the connection without any answer. Takes precedence over `status`.
    - `count`: how many requests it applies to; `None` for every matching request. urllib3 retries
      idempotent requests that get 429/503 with Retry-After (up to 3 times) on its own, so such a
      failure reaches the caller only with `count=None`.
    - `path` is searched (re.search) in the decoded request path, without the query string.
    """

    method: str | None = None
    path: str = ""
    status: int | None = 500
    count: int | None = 1
    delay: float = 0.0
    retry_after: int | None = None
    drop_after_events: int | None = None
    close_connection: bool = False
    watch_only: bool = False
    list_only: bool = False
    message: str | None = None
    hits: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self._pattern = re.compile(self.path)

    def matches(self, method: str, path: str, is_watch: bool, is_list: bool) -> bool:
        if self.method and self.method.upper() != method:
            return False
        if (self.watch_only or self.drop_after_events is not None) and not is_watch:
            return False
        if self.list_only and (not is_list or is_watch):
            return False
        return bool(self._pattern.search(path))

    def error(self) -> ApiError:
        assert self.status is not None
        message = self.message or _MESSAGES.get(self.status, "injected fault")
        return ApiError(self.status, message, retry_after=self.retry_after)

    @property
    def exhausted(self) -> bool:
        return self.count is not None and self.hits >= self.count


class FaultSet:
    """The faults armed on a front, consumed in the order they were added."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def remove(self, fault: Fault) -> None:
        with self._lock:
            self._faults = [f for f in self._faults if f is not fault]

    def take(self, method: str, path: str, *, is_watch: bool, is_list: bool) -> Fault | None:
        """The fault to apply to this request, its use counted; None when no fault applies."""
        if not self._faults:  # the common case, checked without the lock
            return None
        with self._lock:
            for fault in self._faults:
                if not fault.exhausted and fault.matches(method, path, is_watch, is_list):
                    fault.hits += 1
                    return fault
        return None


class RequestRecord(NamedTuple):
    method: str
    path: str
    query: dict[str, str]
    status: int  # 0 when the connection was closed without an answer
    is_watch: bool


class RequestLog:
    """Append-only, thread-safe record of answered requests; cheap enough for benchmark loads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[RequestRecord] = []

    def append(self, record: RequestRecord) -> None:
        with self._lock:
            self._records.append(record)

    def snapshot(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._records)

    def reset(self) -> None:
        with self._lock:
            self._records = []

    def count(self, method: str | None = None, path_regex: str | None = None, watch: bool | None = None) -> int:
        pattern = re.compile(path_regex) if path_regex else None
        return sum(
            1
            for r in self.snapshot()
            if (method is None or r.method == method.upper())
            and (watch is None or r.is_watch == watch)
            and (pattern is None or pattern.search(r.path))
        )

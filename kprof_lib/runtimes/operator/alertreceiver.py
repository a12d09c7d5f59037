"""The operator's Alertmanager webhook receiver: `POST /alertmanager/webhook` on an address of its
own (`--alerts-addr`), HTTPS when given a certificate. Alertmanager's `webhook_configs` with
`http_config.authorization` (a bearer token) sends it version-4 notifications
(`adapters.alertmanager`); the firing alerts that name a pod go to the `AlertStore`, which every
check gives reconcile as the cluster state's `alerts`, and the checks of the configs that take
alerts are woken at once (`on_firing`).

Answers, each with a one-line message in the body: 401 when the `Authorization: Bearer` token is
missing or wrong (compared in constant time, before the body is read), 503 from a standby
replica (only the leader checks, so only the leader may hold alerts: the connection is closed, and
Alertmanager's retry reaches another replica through the Service), 411 without a Content-Length,
413 over `max_body_bytes`, 400 when the body is not a version-4 notification (naming each bad
field), 503 when the store is full (Alertmanager retries), 200 otherwise (the message counts what
was kept, renewed, resolved and ignored). Only a 200 changes anything.
"""

from __future__ import annotations

import hmac
import logging
import os
import ssl
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from kprof_lib.adapters import alertmanager
from kprof_lib.runtimes.endpoints import Address, Endpoints, Request
from kprof_lib.runtimes.operator.alertstore import AlertStore, StoreFull

if TYPE_CHECKING:  # prometheus_client stays out of `kprof run --help` (settings imports this module)
    from kprof_lib.runtimes.operator.monitoring import Instruments

log = logging.getLogger("kprof.operator.alerts")

PATH = "/alertmanager/webhook"
# A notification of a few hundred alerts is well below this; Alertmanager's max_alerts bounds it.
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
# A client that stalls this long within a request is dropped.
REQUEST_TIMEOUT_SECONDS = 10.0

Answer = tuple[int, str, bytes, Mapping[str, str]]


class TokenFile:
    """The bearer token, read from a file (a mounted Secret) and read again when the file changes,
    so a rotated Secret takes effect without a restart. A file that cannot be read or is empty at
    start is an error; later, the last token read stays in force."""

    def __init__(self, path: str):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._token = b""
        self._reload(initial=True)

    def matches(self, presented: str) -> bool:
        self._reload()
        with self._lock:
            token = self._token
        return hmac.compare_digest(presented.encode("utf-8", "surrogateescape"), token)

    def _reload(self, *, initial: bool = False) -> None:
        try:
            stat = os.stat(self.path)
            stamp = (stat.st_mtime_ns, stat.st_size)
            if stamp == self._stamp:
                return
            token = self.path.read_bytes().strip()
        except OSError as error:
            if initial:
                raise ValueError(f"--alerts-token-file {self.path}: {error.strerror}") from None
            log.warning("cannot read the alerts token file %s: %s; the last token read stays", self.path, error)
            return
        if not token:
            if initial:
                raise ValueError(f"--alerts-token-file {self.path}: the file is empty")
            log.warning("the alerts token file %s is empty; the last token read stays", self.path)
            return
        with self._lock:
            self._token, self._stamp = token, stamp


def _text(status: int, message: str, headers: Mapping[str, str] | None = None) -> Answer:
    return status, "text/plain; charset=utf-8", f"{message}\n".encode(), dict(headers or {})


class AlertReceiver:
    """The route behind `PATH`; `__call__(request)` answers one delivery."""

    def __init__(
        self,
        store: AlertStore,
        token: TokenFile,
        *,
        mapping: alertmanager.LabelMapping | None = None,
        on_firing: Callable[[], None] = lambda: None,
        standing_by: Callable[[], bool] = lambda: False,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        instruments: Instruments | None = None,
    ):
        self.store = store
        self.token = token
        self.mapping = mapping or alertmanager.LabelMapping()
        self.on_firing = on_firing
        self.standing_by = standing_by
        self.max_body_bytes = max_body_bytes
        self.instruments = instruments

    def __call__(self, request: Request) -> Answer:
        answer, result = self._answer(request)
        if self.instruments is not None:
            self.instruments.alert_notifications.labels(result).inc()
        return answer

    def _answer(self, request: Request) -> tuple[Answer, str]:
        scheme, _, presented = (request.headers.get("Authorization") or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not self.token.matches(presented.strip()):
            why = "no bearer token" if scheme.lower() != "bearer" else "wrong bearer token"
            log.warning("alert notification refused: %s", why, extra={"action": "alert", "reason": "unauthorized"})
            challenge = {"WWW-Authenticate": 'Bearer realm="kprof"'}
            return _text(401, f"unauthorized: {why} (Authorization: Bearer <token>)", challenge), "unauthorized"
        if self.standing_by():
            log.info("alert notification refused: standing by", extra={"action": "alert", "reason": "standing-by"})
            answer = _text(503, "standing by: not the leader; another replica takes alerts", {"Retry-After": "1"})
            return answer, "standing-by"
        length = request.content_length()
        if length is None:
            return _text(411, "a Content-Length is required"), "bad-request"
        if length > self.max_body_bytes:
            extra = {"action": "alert", "reason": "too-large", "bytes": length}
            log.warning("alert notification refused: %d bytes, over %d", length, self.max_body_bytes, extra=extra)
            return _text(413, f"the body ({length} bytes) is over {self.max_body_bytes} bytes"), "too-large"
        try:
            body = request.body(length)
        except OSError as error:  # the client stalled past the timeout, or hung up
            log.warning("alert notification not read: %s", error, extra={"action": "alert", "reason": "unread"})
            return _text(400, f"the body could not be read: {error}"), "bad-request"
        try:
            notification = alertmanager.parse(body, self.mapping)
        except alertmanager.PayloadError as error:
            extra = {"action": "alert", "reason": "bad-payload"}
            log.warning("alert notification refused: %s", error, extra=extra)
            return _text(400, f"not an Alertmanager webhook notification (version 4): {error}"), "bad-request"
        try:
            kept = self.store.keep(notification)
        except StoreFull as error:
            log.warning("alert notification refused: %s", error, extra={"action": "alert", "reason": "store-full"})
            return _text(503, f"{error}; try again later", {"Retry-After": "60"}), "store-full"
        for why in notification.ignored:
            log.info("alert ignored: %s", why, extra={"action": "alert", "reason": "ignored"})
        summary = (
            f"{kept.added} new, {kept.renewed} again, {kept.resolved} resolved, {len(notification.ignored)} ignored"
        )
        extra = {
            "action": "alert",
            "reason": "accepted",
            "alerts": [
                f"{a.alertname} {a.fingerprint} {a.namespace}/{a.pod or a.match_labels}" for a in notification.firing
            ],
            "added": kept.added,
            "renewed": kept.renewed,
            "resolved": kept.resolved,
            "ignored": len(notification.ignored),
        }
        log.info("alert notification accepted: %s", summary, extra=extra)
        if notification.firing:
            # Level-based, as every check is: each delivery of a firing alert lets reconcile look
            # again; whether its fingerprint was served already is in the capture history.
            self.on_firing()
        return _text(200, f"accepted: {summary}"), "accepted"


def tls_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    """A server context for `--alerts-tls-cert-file` and `--alerts-tls-key-file`; ValueError naming
    them when they cannot be loaded."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert_file, key_file)
    except (OSError, ssl.SSLError) as error:
        raise ValueError(f"--alerts-tls-cert-file {cert_file} / --alerts-tls-key-file {key_file}: {error}") from None
    return context


def serve(
    address: Address,
    receiver: AlertReceiver,
    tls: ssl.SSLContext | None = None,
    timeout: float = REQUEST_TIMEOUT_SECONDS,
) -> Endpoints:
    """The receiver's server, not yet started; a connection silent for `timeout` seconds is dropped."""
    return Endpoints(address, {}, "alerts", posts={PATH: receiver}, tls=tls, timeout=timeout)

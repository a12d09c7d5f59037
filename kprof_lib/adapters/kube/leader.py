"""Leader election on a `coordination.k8s.io/v1` Lease, as client-go's leaderelection package does
it, so that of several operator replicas exactly one checks and captures while the others stand by.

A candidate takes the Lease when it does not exist, when its holder released it (empty
holderIdentity), or when the holder has not renewed it for leaseDurationSeconds. Expiry is judged
on the local monotonic clock from the moment this candidate last saw the record change, never by
comparing renewTime with the local wall clock (clocks of two nodes may disagree). The leader renews
every retry_period; if it cannot renew for renew_deadline (shorter than the lease duration) it
steps down before anyone else may take over. Every write is an update carrying the
resourceVersion read, so when two candidates race, one gets 409 Conflict and loses. `release()`
on shutdown empties holderIdentity and shortens the lease to 1 s so that a standby takes over at
once rather than after the lease expires.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from kubernetes.client import ApiClient

from kprof_lib.adapters.kube import errors
from kprof_lib.adapters.kube.reads import get_json, send_json

log = logging.getLogger(__name__)

# The spec fields whose change tells a candidate that the holder is alive.
_RECORD_FIELDS = ("holderIdentity", "leaseDurationSeconds", "acquireTime", "renewTime", "leaseTransitions")


def micro_time(now: dt.datetime | None = None) -> str:
    """A MicroTime as the API writes it: 2026-11-25T10:00:00.000000Z."""
    return (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _record(holder: str, duration: int, acquired: str, renewed: str, transitions: int) -> dict[str, Any]:
    """The Lease spec fields of `_RECORD_FIELDS`, in their order."""
    return dict(zip(_RECORD_FIELDS, (holder, duration, acquired, renewed, transitions), strict=True))


class LeaderElector:
    """Campaigns for the Lease `namespace/name` as `identity` (the pod name) on a daemon thread.

    `on_started_leading()` and `on_stopped_leading()` are called on that thread when leadership is
    gained and lost (also when `stop()` ends it); they must return quickly. After losing the
    Lease the elector campaigns again. Durations are seconds; `lease_duration > renew_deadline >
    1.2 * retry_period` as client-go requires.
    """

    def __init__(
        self,
        api_client: ApiClient,
        namespace: str,
        name: str,
        identity: str,
        lease_duration: float = 15,
        renew_deadline: float = 10,
        retry_period: float = 2,
        on_started_leading: Callable[[], None] | None = None,
        on_stopped_leading: Callable[[], None] | None = None,
    ) -> None:
        if not identity:
            raise ValueError("leader election needs a non-empty identity")
        if not lease_duration > renew_deadline > 1.2 * retry_period > 0:
            raise ValueError(
                "leader election needs lease_duration > renew_deadline > 1.2 * retry_period > 0, got "
                f"{lease_duration}, {renew_deadline}, {retry_period}"
            )
        self._api = api_client
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self._on_started = on_started_leading
        self._on_stopped = on_stopped_leading
        # One request must not outlast the time left to renew in.
        self._timeout = max(1.0, min(renew_deadline / 2, 10.0))

        self._observed: dict[str, Any] = {}
        self._observed_at = 0.0  # monotonic time the observed record last changed
        self._leader = False
        self._last_renew = 0.0
        self._settled = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def _duration(self) -> int:
        """leaseDurationSeconds as written: whole seconds, at least 1."""
        return max(1, round(self.lease_duration))

    @property
    def path(self) -> str:
        return f"/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases/{self.name}"

    # ----------------------------------------------------------------- state

    @property
    def is_leader(self) -> bool:
        """True while this elector holds the Lease and renewed it within the lease duration."""
        return self._leader and time.monotonic() - self._last_renew < self.lease_duration

    @property
    def leader_identity(self) -> str | None:
        """Who holds the Lease as last seen (None before the first attempt, "" when released)."""
        return self._observed.get("holderIdentity") if self._settled.is_set() else None

    @property
    def settled(self) -> bool:
        """True once one attempt has completed: this elector knows whether it leads."""
        return self._settled.is_set()

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> LeaderElector:
        if self._thread is None:
            self._stopping.clear()
            self._thread = threading.Thread(target=self._run, name=f"leader-election {self.name}", daemon=True)
            self._thread.start()
        return self

    def stop(self, release: bool = False, timeout: float = 5.0) -> None:
        """Stop campaigning (leadership ends, `on_stopped_leading` runs); with `release`, also
        hand the Lease over at once."""
        self._stopping.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)
        if release:
            self.release()

    def release(self) -> bool:
        """Give the Lease up if this elector holds it: holderIdentity "", leaseDurationSeconds 1.
        Meant for after `stop()`. Returns whether a release was written."""
        try:
            lease = get_json(self._api, self.path, timeout=self._timeout)
        except Exception as exc:
            log.warning("could not read Lease %s/%s to release it: %s", self.namespace, self.name, exc)
            return False
        spec = lease.get("spec") or {}
        if spec.get("holderIdentity") != self.identity:
            return False
        now = micro_time()
        lease["spec"] = {**spec, **_record("", 1, now, now, spec.get("leaseTransitions") or 0)}
        try:
            written = send_json(self._api, "PUT", self.path, lease, timeout=self._timeout)
        except Exception as exc:
            log.warning("could not release Lease %s/%s: %s", self.namespace, self.name, exc)
            return False
        self._observe(written.get("spec") or {})
        self._end_leadership("released the Lease")
        log.info("released Lease %s/%s", self.namespace, self.name)
        return True

    # ----------------------------------------------------------------- the loop

    def _run(self) -> None:
        while not self._stopping.is_set():
            if not self._attempt():
                self._stopping.wait(self.retry_period * (1 + 0.2 * random.random()))
                continue
            self._begin_leadership()
            reason = "stopped"
            while not self._stopping.wait(self.retry_period):
                if self._attempt():
                    continue
                holder = self._observed.get("holderIdentity")
                if holder and holder != self.identity and not self._expired():
                    reason = f"the Lease is held by {holder}"
                    break
                if time.monotonic() - self._last_renew >= self.renew_deadline:
                    reason = f"could not renew the Lease within {self.renew_deadline}s"
                    break
            self._end_leadership(reason)

    def _attempt(self) -> bool:
        try:
            won = self._try_acquire_or_renew()
        except Exception as exc:
            detail = errors.brief(exc)
            log.warning("Lease %s/%s: %s", self.namespace, self.name, detail)
            won = False
        self._settled.set()
        if won:
            self._last_renew = time.monotonic()
        return won

    def _try_acquire_or_renew(self) -> bool:
        now = micro_time()
        try:
            lease = get_json(self._api, self.path, timeout=self._timeout)
        except errors.APINotFound:
            return self._create(now)
        spec = lease.get("spec") or {}
        self._observe(spec)
        holder = spec.get("holderIdentity") or ""
        if holder and holder != self.identity and not self._expired():
            return False
        mine = holder == self.identity
        acquired = (spec.get("acquireTime") or now) if mine else now
        transitions = (spec.get("leaseTransitions") or 0) + (0 if mine else 1)
        lease["spec"] = {**spec, **_record(self.identity, self._duration, acquired, now, transitions)}
        try:
            written = send_json(self._api, "PUT", self.path, lease, timeout=self._timeout)
        except errors.APIConflict:  # someone else wrote since we read: they won this round
            return False
        self._observe(written.get("spec") or {})
        return True

    def missing_namespace(self) -> bool:
        """Whether the Lease's namespace does not exist (checked once at start: a Lease that is not
        there yet is created by the campaign, a namespace is not). A GET of a missing Lease says
        404 either way, so a dry-run create asks the API server, which refuses it 404 with the
        namespace's kind when the namespace is missing. Other errors are the campaign's to log."""
        try:
            get_json(self._api, self.path, timeout=self._timeout)
            return False
        except errors.APINotFound:
            pass
        except errors.APIError:
            return False
        try:
            self._create(micro_time(), dry_run=True)
        except errors.APINotFound as error:
            return "namespace" in str(error.message).lower()
        except errors.APIError:
            return False
        return False

    def _create(self, now: str, *, dry_run: bool = False) -> bool:
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": _record(self.identity, self._duration, now, now, 0),
        }
        leases = self.path.rpartition("/")[0]
        try:
            dry = [("dryRun", "All")] if dry_run else None
            created = send_json(self._api, "POST", leases, body, query=dry, timeout=self._timeout)
        except errors.APIConflict:  # another candidate created it first
            return False
        if dry_run:
            return False
        self._observe(created.get("spec") or {})
        return True

    def _observe(self, spec: dict[str, Any]) -> None:
        record = {key: spec.get(key) for key in _RECORD_FIELDS}
        if record != self._observed:
            self._observed = record
            self._observed_at = time.monotonic()

    def _expired(self) -> bool:
        duration = self._observed.get("leaseDurationSeconds") or 0
        return self._observed_at + duration <= time.monotonic()

    def _begin_leadership(self) -> None:
        self._leader = True
        extra = {"action": "leader-elected", "identity": self.identity}
        log.info("became leader on Lease %s/%s as %s", self.namespace, self.name, self.identity, extra=extra)
        self._call(self._on_started, "on_started_leading")

    def _end_leadership(self, reason: str) -> None:
        if not self._leader:
            return
        self._leader = False
        extra = {"action": "leader-lost", "identity": self.identity, "reason": reason}
        log.info("stopped leading Lease %s/%s: %s", self.namespace, self.name, reason, extra=extra)
        self._call(self._on_stopped, "on_stopped_leading")

    @staticmethod
    def _call(callback: Callable[[], None] | None, what: str) -> None:
        if callback is None:
            return
        try:
            callback()
        except Exception:
            log.exception("leader election callback %s failed", what)

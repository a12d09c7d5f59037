"""Whether each S3 destination the operator's configs use can be written, found out once and then
again with backoff, not at every capture: a bucket that does not exist or credentials it refuses
make every check of the configs that use it fail at once, with the reason in their status
(Ready=False) and one log line per new attempt; the check runner asks before each run. A problem
that may be temporary (S3 not answering) is left to the spool. Used by `operator.runner`."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from kprof_lib.execution.ports import ProfileStore
from kprof_lib.planning import cadence
from kprof_lib.runtimes import preflight

log = logging.getLogger("kprof.operator.destinations")

FIELD = "spec.s3Config.bucket"
# The same backoff as a pod's failed captures: 30 s first, doubling, at most 15 minutes.
FIRST_RETRY_SECONDS = float(cadence.RETRY_FIRST_SECONDS)
MAX_RETRY_SECONDS = float(cadence.RETRY_MAX_SECONDS)
# A destination found usable is looked at again after this long (a bucket may be deleted).
RECHECK_OK_SECONDS = 300.0


class DestinationUnusable(RuntimeError):
    """A config's destination cannot take profiles; the message says why and names the field."""


@dataclass
class _Entry:
    problem: str | None
    next_check: float
    failures: int = 0


class DestinationChecks:
    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._entries: dict[int, _Entry] = {}
        self._lock = threading.Lock()

    def problem(self, store: ProfileStore) -> str | None:
        """Why `store` cannot take profiles now, or None; HeadBucket only when the last answer is
        old enough (30 s after a first problem, doubling to 15 minutes; 5 minutes when fine)."""
        key = id(store)
        now = self._monotonic()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and now < entry.next_check:
                return entry.problem
        found = preflight.bucket(store, FIELD)
        with self._lock:
            if found is None or not found.permanent:
                self._entries[key] = _Entry(None, now + RECHECK_OK_SECONDS)
                return None
            failures = (entry.failures if entry is not None else 0) + 1
            delay = min(MAX_RETRY_SECONDS, FIRST_RETRY_SECONDS * 2 ** (failures - 1))
            self._entries[key] = _Entry(found.message, now + delay, failures)
        log.warning(
            "%s; configs writing there capture nothing until it works (checked again in %g s)",
            found.message,
            delay,
            extra={"action": "destination", "reason": "destination-unusable", "store": store.description},
        )
        return found.message

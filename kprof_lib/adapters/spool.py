"""The spool: a `ProfileStore` in front of another that keeps profiles on local disk while the other
is unreachable, and uploads them when it is back. The operator wraps its S3 store in one, calls
`flush()` every cycle and exports `pending_bytes` as a metric.

Nothing captured is dropped without a word:
- a retryable failure (connection refused, timeout, throttling, 5xx) spools the profile and `put`
  returns `StoredObject(spooled=True)` with the URI it will have once uploaded;
- a permanent failure (no such bucket, access denied) spools it too, but logs an ERROR at the
  `put` and at every `flush` that still fails, so a misconfiguration is loud; the spool's size limit
  keeps it from filling the disk, and once full every further profile raises `SpoolFull`;
- a profile that does not fit in `max_bytes` raises `SpoolFull`, which says so.

When the spool is full, the new profile is refused and the spooled ones are kept (the oldest are
nearest the start of an incident): `SpoolFull` names the spool and its bound, an ERROR is logged,
`refused` counts it (the operator exports kprof_spool_refused_total) and the executor reports the
profile as failed (the operator's ProfileCaptureFailed Event on the pod carries the message).

Each spooled profile is one file `<sequence>-<random>.spool`: a 12-digit sequence that goes on
after a restart, so names sort oldest first, and a random part that keeps two stores given the
same folder from overwriting each other's files. It holds a JSON header line (key, content type,
metadata, tags, size, sha256, spooledAt, lastError), a newline, then the profile's bytes. It is
written to a temporary name and renamed into place, so it is there whole or not at all and
survives restarts; `flush` deletes it only after the inner store has taken it. A file that cannot
be read back is renamed to `<name>.corrupt`, logged, and no longer counted.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kprof_lib.adapters.files import write_atomically
from kprof_lib.execution import redact
from kprof_lib.execution.clock import SystemClock
from kprof_lib.execution.ports import Clock, DocumentStore, ForwardingStore, ProfileStore, StoredObject, StoreError

log = logging.getLogger(__name__)

MiB = 1024 * 1024
DEFAULT_MAX_BYTES = 256 * MiB
SPOOL_SUFFIX = ".spool"
_SPOOL_NAME = re.compile(r"^(\d{12})-[0-9a-f]{8}\.spool$")
_FORMAT_VERSION = 1


class SpoolFull(StoreError):
    """The store failed and the spool has no room for the profile: it was not stored anywhere.
    Retryable: once the store is back and the spool flushed, there is room again."""


@dataclass(frozen=True)
class FlushReport:
    """What one `flush` did. `failed` counts uploads that were tried and refused; `errors` has
    their messages (the first retryable one ends the flush)."""

    uploaded: int
    failed: int
    remaining_bytes: int
    remaining_count: int = 0
    errors: tuple[str, ...] = ()


class SpoolingStore(ForwardingStore):
    """A `ProfileStore` that tries `inner` and spools to `spool_dir` when it fails. Thread-safe."""

    def __init__(
        self,
        inner: ProfileStore,
        spool_dir: str | os.PathLike[str],
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(inner)
        self.spool_dir = Path(spool_dir).absolute()
        self.max_bytes = max_bytes
        self.clock = clock or SystemClock()
        self._lock = threading.Lock()  # guards the bookkeeping below and spool writes
        self._flush_lock = threading.Lock()  # one flush at a time
        self._sizes: dict[str, int] = {}  # spool file name -> bytes on disk
        self._pending_bytes = 0
        self.refused = 0  # profiles turned away because the spool was full
        self._next_sequence = 1
        self._load()

    @property
    def pending_bytes(self) -> int:
        with self._lock:
            return self._pending_bytes

    @property
    def pending_count(self) -> int:
        with self._lock:
            return len(self._sizes)

    def put(
        self, key: str, data: bytes, *, metadata: Mapping[str, str], tags: Mapping[str, str], content_type: str
    ) -> StoredObject:
        try:
            return self.inner.put(key, data, metadata=metadata, tags=tags, content_type=content_type)
        except StoreError as error:
            stored = self._spool(key, data, metadata, tags, content_type, error)
            if error.retryable:
                spooled = "%s is unavailable; spooled %s (%d bytes) in %s: %s"
                log.warning(spooled, self.inner.description, key, len(data), self.spool_dir, error)
            else:
                refused = "%s refused %s permanently; it waits in the spool %s until the configuration is fixed: %s"
                log.error(refused, self.inner.description, key, self.spool_dir, error)
            return stored

    def replace(
        self, key: str, data: bytes, *, metadata: Mapping[str, str], tags: Mapping[str, str], content_type: str
    ) -> StoredObject:
        """The store behind the spool replaces what is under `key`; nothing is spooled (a document
        that is written again at its next interval is not worth the spool's room)."""
        if not isinstance(self.inner, DocumentStore):
            raise StoreError(f"{self.inner.description} cannot replace objects", retryable=False)
        return self.inner.replace(key, data, metadata=metadata, tags=tags, content_type=content_type)

    def flush(self) -> FlushReport:
        """Upload spooled profiles oldest first, deleting each once stored; stop at the first
        retryable failure, since the store is still down. Permanent failures are skipped, counted
        and logged once as an ERROR for the whole flush."""
        uploaded = 0
        errors: list[str] = []
        permanent: list[str] = []
        with self._flush_lock:
            with self._lock:
                names = sorted(self._sizes)
            for name in names:
                item = self._read(name)
                if item is None:
                    continue
                header, data = item
                key, metadata, tags = header["key"], header["metadata"], header["tags"]
                try:
                    self.inner.put(key, data, metadata=metadata, tags=tags, content_type=header["contentType"])
                except StoreError as error:
                    errors.append(str(error))
                    if error.retryable:
                        break
                    permanent.append(key)
                    continue
                self._forget(name)
                uploaded += 1
        if permanent:
            stuck = "%d spooled profile(s) cannot be uploaded to %s and stay in %s: %s"
            log.error(stuck, len(permanent), self.inner.description, self.spool_dir, errors[-1])
        with self._lock:
            remaining_bytes, remaining_count = self._pending_bytes, len(self._sizes)
        if uploaded or errors:
            flushed = "spool flush: %d uploaded, %d failed, %d waiting (%d bytes)"
            log.info(flushed, uploaded, len(errors), remaining_count, remaining_bytes)
        return FlushReport(uploaded, len(errors), remaining_bytes, remaining_count, tuple(errors))

    def _spool(
        self,
        key: str,
        data: bytes,
        metadata: Mapping[str, str],
        tags: Mapping[str, str],
        content_type: str,
        cause: StoreError,
    ) -> StoredObject:
        header = {
            "version": _FORMAT_VERSION,
            "key": key,
            "contentType": content_type,
            "metadata": dict(metadata),
            "tags": dict(tags),
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "spooledAt": self.clock.now().isoformat(),
            "lastError": redact.text(str(cause)),
        }
        head = json.dumps(header, sort_keys=True).encode() + b"\n"
        # Written as two parts: joining them would copy the profile once more.
        blob = (head, data)
        size = len(head) + len(data)
        with self._lock:
            if self._pending_bytes + size > self.max_bytes:
                # The oldest profiles are nearest the start of an incident: they stay, the new one
                # is refused, loudly (this error, kprof_spool_refused_total, the pod's Event).
                self.refused += 1
                full = "profile spool %s is full (%d of %d bytes): refusing %s (%d bytes); the spooled ones are kept"
                log.error(full, self.spool_dir, self._pending_bytes, self.max_bytes, key, len(data))
                raise SpoolFull(
                    f"profile spool {self.spool_dir} is full: {self._pending_bytes} of {self.max_bytes} bytes "
                    f"used by {len(self._sizes)} profile(s) waiting for {self.inner.description}; "
                    f"{key} ({len(data)} bytes) was NOT stored ({cause})",
                    retryable=True,
                    attempts=cause.attempts,
                ) from cause
            name = f"{self._next_sequence:012d}-{secrets.token_hex(4)}{SPOOL_SUFFIX}"
            try:
                self.spool_dir.mkdir(parents=True, exist_ok=True)
                write_atomically([(self.spool_dir / name, blob)])
            except OSError as error:
                lost = f"{key} could not be stored ({cause}) nor spooled in {self.spool_dir} ({error})"
                raise StoreError(lost, retryable=True, attempts=cause.attempts) from cause
            self._next_sequence += 1
            self._sizes[name] = size
            self._pending_bytes += size
        return StoredObject(uri=self.inner.uri_for(key), key=key, size=len(data), attempts=cause.attempts, spooled=True)

    def _load(self) -> None:
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        for path in self.spool_dir.iterdir():
            match = _SPOOL_NAME.match(path.name)
            if match:
                size = path.stat().st_size
                self._sizes[path.name] = size
                self._pending_bytes += size
                self._next_sequence = max(self._next_sequence, int(match.group(1)) + 1)
            elif path.name.startswith(".") and path.name.endswith(".tmp"):
                # A write cut short by a crash: its put never returned, so nobody was told it was kept.
                with contextlib.suppress(OSError):
                    path.unlink()
        if self._sizes:
            holds = "spool %s holds %d profile(s), %d bytes, for %s"
            log.info(holds, self.spool_dir, len(self._sizes), self._pending_bytes, self.inner.description)

    def _read(self, name: str) -> tuple[dict[str, Any], bytes] | None:
        path = self.spool_dir / name
        try:
            # The header line, then the profile read on its own: one copy of it in memory.
            with path.open("rb") as stream:
                header_line = stream.readline()
                data = stream.read()
            header = json.loads(header_line)
            if hashlib.sha256(data).hexdigest() != header["sha256"] or len(data) != header["size"]:
                raise ValueError("the profile's bytes do not match their checksum")
            missing = [field for field in ("key", "contentType", "metadata", "tags") if field not in header]
            if missing:
                raise ValueError(f"the header lacks {', '.join(missing)}")
        except FileNotFoundError:
            log.error("spooled profile %s vanished from %s", name, self.spool_dir)
            self._forget(name)
            return None
        except (OSError, ValueError, KeyError, TypeError) as error:
            corrupt = path.with_name(name + ".corrupt")
            log.error("spooled profile %s is unreadable (%s); moved aside to %s", path, error, corrupt)
            with contextlib.suppress(OSError):
                os.replace(path, corrupt)
            self._forget(name, delete=False)
            return None
        return header, data

    def _forget(self, name: str, *, delete: bool = True) -> None:
        with self._lock:
            if delete:
                with contextlib.suppress(FileNotFoundError):
                    (self.spool_dir / name).unlink()
            self._pending_bytes -= self._sizes.pop(name, 0)

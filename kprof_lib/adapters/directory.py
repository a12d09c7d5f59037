"""The local profile store: keeps profiles as files under one directory, for clusters without S3,
for the CLI and for development. Runtimes build it when spec.s3Config is absent.

A key maps to the path `<directory>/<key>`, so the key layouts of `kprof_lib.execution.keys` give
the same tree as in S3. Beside each profile `<file>` lies `<file>.json`, the sidecar with what S3
would keep with the object:

    {"key": ..., "contentType": ..., "size": ..., "sha256": ..., "metadata": {...}, "tags": {...}}

Both files are written to temporary names in the target directory and linked into place (a hard
link is atomic, and exclusive: it fails when the name exists), the sidecar first, so a reader sees
a whole profile with its sidecar or nothing, a failed write leaves nothing behind, and a profile
already stored under a key is never overwritten (the put is a `StoreError` instead). Keys ending in
`.json` are refused (but a capture's `summary.json`, whose sidecar is `summary.json.json`), as are
keys that would leave the directory (absolute, `..`, or through a symbolic link).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path

from kprof_lib.adapters.files import write_atomically
from kprof_lib.execution.ports import StoredObject, StoreError

SIDECAR_SUFFIX = ".json"
# A capture's summary is JSON too; no profile's sidecar ends so (profile types are not "summary").
SUMMARY_NAME = "summary.json"
# Out of space or quota, or a flaky disk, may pass; a permission or path problem will not.
_TRANSIENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EAGAIN, errno.EINTR, errno.EBUSY}


class LocalStore:
    """A `ProfileStore` writing files under `directory` (created when first needed)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory).absolute()
        self.description = str(self.directory)
        self.bucket: str | None = None

    def path_for(self, key: str) -> Path:
        """The file a key is stored in; raises `StoreError` for a key that would escape."""
        if not isinstance(key, str):
            raise StoreError(f"refusing key of type {type(key).__name__}: keys are text", retryable=False)
        parts = key.split("/")
        if any(char < " " or char == "\x7f" for char in key):
            raise StoreError(
                f"refusing key {key[:80]!r}: it contains a control character (NUL included)", retryable=False
            )
        if not key or key.startswith("/") or "\\" in key or any(part in ("", ".", "..") for part in parts):
            raise StoreError(
                f"refusing key {key!r}: it must be a relative path without empty, . or .. "
                f"segments, inside {self.directory}",
                retryable=False,
            )
        if key.endswith(SIDECAR_SUFFIX) and not key.endswith(SUMMARY_NAME):
            raise StoreError(
                f"refusing key {key!r}: names ending in {SIDECAR_SUFFIX} are the metadata sidecars of {self.directory}",
                retryable=False,
            )
        path = self.directory.joinpath(*parts)
        # Defence in depth: a symbolic link already in the tree must not lead outside it either.
        try:
            root = self.directory.resolve()
            resolved = path.resolve()
        except (OSError, ValueError) as error:
            raise StoreError(f"refusing key {key[:80]!r}: {error}", retryable=False) from error
        if not resolved.is_relative_to(root):
            raise StoreError(f"refusing key {key!r}: it resolves to {resolved}, outside {root}", retryable=False)
        return path

    def uri_for(self, key: str) -> str:
        return self.directory.joinpath(*key.split("/")).as_uri()

    def put(
        self, key: str, data: bytes, *, metadata: Mapping[str, str], tags: Mapping[str, str], content_type: str
    ) -> StoredObject:
        return self._write(key, data, metadata, tags, content_type, exclusive=True)

    def replace(
        self, key: str, data: bytes, *, metadata: Mapping[str, str], tags: Mapping[str, str], content_type: str
    ) -> StoredObject:
        """Like `put`, but what is under `key` is replaced (the `DocumentStore` port)."""
        return self._write(key, data, metadata, tags, content_type, exclusive=False)

    def _write(
        self,
        key: str,
        data: bytes,
        metadata: Mapping[str, str],
        tags: Mapping[str, str],
        content_type: str,
        *,
        exclusive: bool,
    ) -> StoredObject:
        path = self.path_for(key)
        sidecar = {
            "key": key,
            "contentType": content_type,
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "metadata": dict(metadata),
            "tags": dict(tags),
        }
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Re-check after creating directories: a link could have appeared in between.
            self.path_for(key)
            # The sidecar goes first: whoever finds the profile finds its description too.
            sidecar_text = json.dumps(sidecar, indent=2, sort_keys=True) + "\n"
            write_atomically(
                [(path.with_name(path.name + SIDECAR_SUFFIX), sidecar_text.encode()), (path, data)], exclusive=exclusive
            )
        except FileExistsError as error:
            taken = error.filename2 or error.filename
            raise StoreError(
                f"storing {key} in {self.directory}: {taken} exists already; not overwritten", retryable=False
            ) from error
        except OSError as error:
            transient = error.errno in _TRANSIENT_ERRNOS
            raise StoreError(
                f"storing {key} in {self.directory}: {error.strerror or error} ({path})", retryable=transient
            ) from error
        return StoredObject(uri=path.as_uri(), key=key, size=len(data))

    def read(self, key: str, max_bytes: int) -> bytes:
        """The bytes stored under `key`."""
        path = self.path_for(key)
        try:
            size = path.stat().st_size
            if size > max_bytes:
                raise StoreError(f"reading {key} in {self.directory}: {size} bytes, over {max_bytes}", retryable=False)
            return path.read_bytes()
        except OSError as error:
            why = error.strerror or error
            raise StoreError(f"reading {key} in {self.directory}: {why}", retryable=False) from error

    def check(self) -> None:
        """Nothing to ask: `runtimes.preflight.directory` checks that the folder takes a file."""

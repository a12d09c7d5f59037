"""Builds the profile store a config asks for (S3 behind a spool, or the local store; the capture
transport comes from `adapters.pprof.make_transport`). Shared by the operator, the sidecar and the
commands; stores are cached so a check every few seconds does not build a new S3 client each time."""

from __future__ import annotations

import argparse
import hashlib
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kprof_lib.adapters import spool
from kprof_lib.adapters.directory import LocalStore
from kprof_lib.adapters.s3 import S3Store
from kprof_lib.adapters.spool import SpoolingStore
from kprof_lib.execution.capture import DEFAULT_MAX_BYTES
from kprof_lib.execution.ports import DocumentStore, ProfileStore

# The s3Config fields that tell the cached S3 stores apart.
_S3_STORE_FIELDS = ("bucket", "region", "endpoint", "serverSideEncryption", "kmsKeyId")


class Stores:
    """One store per destination: `for_spec(spec)` gives the S3 store (spooled) of its s3Config, or
    the local store when it has none."""

    def __init__(
        self,
        *,
        local_dir: str | Path,
        spool_dir: str | Path | None = None,
        spool_max_bytes: int = spool.DEFAULT_MAX_BYTES,
    ):
        self.local_dir = Path(local_dir)
        self.spool_dir = Path(spool_dir) if spool_dir else None
        self.spool_max_bytes = spool_max_bytes
        self._cache: dict[tuple[Any, ...], ProfileStore] = {}
        self._lock = threading.Lock()

    def for_spec(self, spec: Mapping[str, Any]) -> ProfileStore:
        s3 = spec.get("s3Config")
        key = ("s3", *(s3.get(field) for field in _S3_STORE_FIELDS)) if s3 else ("local",)
        with self._lock:
            if key not in self._cache:
                self._cache[key] = self._build(s3)
            return self._cache[key]

    def documents_for(self, spec: Mapping[str, Any]) -> DocumentStore:
        """The store of `for_spec`, for documents replaced in place (a workload's merged default.pgo)."""
        store = self.for_spec(spec)
        assert isinstance(store, DocumentStore)  # every store this builds can replace
        return store

    def spooling(self) -> list[SpoolingStore]:
        """Every spooled store built so far: the runtimes flush them and export their size."""
        with self._lock:
            return [store for store in self._cache.values() if isinstance(store, SpoolingStore)]

    def _build(self, s3: Mapping[str, Any] | None) -> ProfileStore:
        if not s3:
            return LocalStore(self.local_dir)
        store = S3Store(
            s3["bucket"],
            region=s3.get("region"),
            endpoint=s3.get("endpoint"),
            prefix=s3.get("prefix", ""),
            sse=s3.get("serverSideEncryption"),
            kms_key_id=s3.get("kmsKeyId"),
        )
        if self.spool_dir is None:
            return store
        # One spool folder per destination, so a flush sends each profile where it was meant to go;
        # named by a stable digest so it is found again after a restart.
        digest = hashlib.sha256(f"{s3['bucket']}|{s3.get('endpoint') or ''}".encode()).hexdigest()[:10]
        folder = self.spool_dir / f"{s3['bucket']}-{digest}"
        return SpoolingStore(store, folder, max_bytes=self.spool_max_bytes)


def add_max_bytes_flag(parser: argparse._ActionsContainer) -> None:
    """`--max-profile-bytes`, for the commands that keep capturing (local mode, the sidecar)."""
    text = "size cap per profile (default %(default)s)"
    parser.add_argument("--max-profile-bytes", type=int, default=DEFAULT_MAX_BYTES, metavar="N", help=text)


def add_tls_flag(parser: argparse.ArgumentParser) -> None:
    """`--insecure-skip-tls-verify`, for every command that fetches profiles."""
    parser.add_argument(
        "--insecure-skip-tls-verify",
        action="store_true",
        help="accept any certificate from https pprof endpoints (pods with self-signed certificates); "
        "the connection is still encrypted but not authenticated",
    )

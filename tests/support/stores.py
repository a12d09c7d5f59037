"""Stores for tests that need a destination which is always down (behind a spool, say): they
satisfy the ProfileStore port and refuse every put with a retryable StoreError."""

from __future__ import annotations

from kprof_lib.execution.ports import StoreError


class UnreachableStore:
    description = "s3://down"
    bucket = "down"

    def uri_for(self, key):
        return f"s3://down/{key}"

    def put(self, key, data, **kwargs):
        raise StoreError("store unreachable", retryable=True)

"""Cheap checks a runtime makes before its first capture, so that a wrong port, an unwritable
directory, a missing bucket or credentials that do not work are said at start, once, naming the
flag or field that sets them, rather than found at every capture. Used by `kprof capture`,
`kprof local` and `kprof sidecar`; each returns a `Problem` or None.

A problem is `permanent` when waiting cannot help (no such bucket, no credentials at all, a
directory that cannot be written): the runtimes refuse to start. Otherwise it is a warning: S3 not
answering now (a spool keeps the profiles until the store is back), or HeadBucket refused with 403
(which a least-privilege role without s3:ListBucket gets even where its puts work).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import urllib3

from kprof_lib.execution import redact
from kprof_lib.execution.ports import ProfileStore, StoreError

TARGET_TIMEOUT = 3.0  # seconds


@dataclass(frozen=True)
class Problem:
    message: str
    permanent: bool = True

    def __str__(self) -> str:
        return self.message


def directory(path: Path, flag: str) -> Problem | None:
    """`path` (created if missing) takes a file: a probe file is created and removed."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(dir=path, prefix=".kprof-probe-", suffix=".tmp")
        os.close(handle)
        os.unlink(name)
    except OSError as error:
        return Problem(f"{flag} {path}: cannot write there: {error.strerror or error}")
    return None


def bucket(store: ProfileStore, flag: str) -> Problem | None:
    """The store's bucket answers a HeadBucket with the credentials of the default chain
    (`ProfileStore.check`; a store that is not S3 has nothing to ask)."""
    try:
        store.check()
    except StoreError as error:
        if _status_of(error.__cause__) == 403:
            # HeadBucket needs s3:ListBucket, which a least-privilege role does not have
            # (docs/IRSA_SETUP.md): a refusal here does not mean that puts are refused.
            return Problem(
                f"{flag}: HeadBucket on {redact.text(store.description)} was refused (403): the credentials lack the "
                "optional s3:ListBucket, or do not work; a failed upload will say which",
                permanent=False,
            )
        return Problem(f"{flag}: {redact.text(str(error))}", permanent=not error.retryable)
    return None


def _status_of(error: BaseException | None) -> int | None:
    """The HTTP status of a botocore ClientError (read from its response, without botocore)."""
    response = getattr(error, "response", None)
    if not isinstance(response, dict):
        return None
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return status if isinstance(status, int) else None


def target(
    scheme: str, host: str, port: int, path: str, flag: str, *, tls_verify: bool, timeout: float = TARGET_TIMEOUT
) -> Problem | None:
    """The pprof index under `path` (Go's net/http/pprof serves it at `path/`, e.g.
    http://127.0.0.1:6060/debug/pprof/) answers a GET with a 2xx within `timeout` seconds."""
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    url = f"{scheme}://{where}{path.rstrip('/')}/"
    pool = urllib3.PoolManager(
        retries=False,
        cert_reqs="CERT_REQUIRED" if tls_verify else "CERT_NONE",
        assert_hostname=None if tls_verify else False,
    )
    shown = redact.text(url)
    try:
        response = pool.request(
            "GET", url, timeout=urllib3.Timeout(total=timeout), preload_content=False, redirect=False
        )
    except urllib3.exceptions.HTTPError as error:
        reason = getattr(error, "reason", None) or error
        text = str(reason)
        if "refused" in text.lower():
            why = "connection refused (nothing listens on that port?)"
        elif isinstance(reason, urllib3.exceptions.TimeoutError) or "timed out" in text.lower():
            why = f"no answer within {timeout:g} s"
        elif "certificate verify failed" in text.lower():
            why = "TLS certificate not verified (--insecure-skip-tls-verify accepts any certificate)"
        else:
            why = redact.text(text)
        return Problem(f"{flag} {shown}: {why}")
    finally:
        pool.clear()
    with contextlib.closing(response):
        status = response.status
    if not 200 <= status < 300:
        return Problem(f"{flag} {shown}: answered HTTP {status} (is net/http/pprof served at that path?)")
    return None

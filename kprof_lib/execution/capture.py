"""Fetching one pprof profile through any `Transport`, with the checks every transport shares.

The executor calls `fetch_profile` for each profile of a capture and `timeout_for` to give it a
time budget; the benchmarks call them too. The transports (adapters) only move bytes; here the
status code is judged (Go's "profiling already in use" becomes `TargetBusy`), the size cap is
enforced while the body streams, the content is checked to be a gzip'd pprof profile as soon as
its first bytes arrive, and the total time budget is checked between chunks. Transports bound
each blocking read to the same budget, so a server that trickles bytes cannot hold a capture
past it.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator, Mapping

from kprof_lib.execution import ports

DEFAULT_MAX_BYTES = 64 * 1024 * 1024
# CPU profiles fetched at once (the executor's `cpu_concurrency`): each waits `cpuProfileSeconds`
# for the target, then streams a body of tens of KB, so many at once cost a thread each and little
# memory (the in-flight byte budget bounds it all the same).
DEFAULT_CPU_CONCURRENCY = 32
DEFAULT_TIMEOUT_SECONDS = 30.0
CPU_MARGIN_SECONDS = 15.0

GZIP_MAGIC = b"\x1f\x8b"
# Go's net/http/pprof answers 500 "Could not enable CPU profiling: cpu profiling already in use"
# while another CPU profile runs; older and forked servers drop the "cpu".
BUSY_MARKER = "profiling already in use"
# Enough of an error body to recognise Go's busy profiler; the rest is never read. Messages (and so
# Events, logs and spans) never quote what a target answered: through pods/proxy an answer may come
# from somewhere its pod owner should not read, so they say its type and size and what was expected.
ERROR_BODY_READ_BYTES = 4096
SHOWN_CONTENT_TYPE_CHARS = 64
EXPECTED = "expected a gzip-compressed pprof profile"


def timeout_for(
    request: ports.ProfileRequest, base_timeout: float = DEFAULT_TIMEOUT_SECONDS, cpu_margin: float = CPU_MARGIN_SECONDS
) -> float:
    """The time budget for fetching `request`: a CPU profile takes its seconds before the server
    answers at all, so it gets those seconds plus `cpu_margin`; other profiles get `base_timeout`."""
    if request.profile_type == "cpu":
        return request.cpu_seconds + cpu_margin
    return base_timeout


def fetch_profile(
    transport: ports.Transport,
    request: ports.ProfileRequest,
    *,
    timeout: float,
    max_bytes: int = DEFAULT_MAX_BYTES,
    reserve: Callable[[int, float], None] | None = None,
) -> bytes:
    """The gzip'd pprof profile `request` names, fetched through `transport` within `timeout` seconds.

    The body is collected in one buffer that grows as it arrives and becomes the returned bytes
    without a copy: one copy of the profile in memory, never a list of chunks joined at the end.
    `reserve(n, deadline)`, if given, is called before each `n` bytes are kept (the executor's
    in-flight byte budget); it may block until `deadline` (a `time.monotonic()` value) and raise
    a `CaptureError`.

    Raises `TargetBusy` when Go's profiler is held by someone else, `CaptureTooLarge` as soon as
    more than `max_bytes` arrived, `CaptureTimeout` when the whole body did not arrive in time and
    `CaptureFailed` for an error status, an empty body, content that is not gzip, or a lost
    connection. Each message names the target.
    """
    deadline = time.monotonic() + timeout
    with transport.open(request, timeout) as response:
        if response.status != 200:
            raise _status_error(response, request)
        declared = _declared_length(response.headers)
        if declared is not None and declared > max_bytes:
            raise ports.CaptureTooLarge(
                f"profile exceeded {_size(max_bytes)} cap: {request.target} announced {declared} bytes"
            )
        content_type = _content_type(response.headers)
        # BytesIO grows its one bytes object in place (realloc, which moves big blocks by remapping
        # pages, not copying them) and getvalue() hands that object over when nothing else uses
        # it: the peak is the profile's size, where joining a list of chunks needs twice that.
        body = io.BytesIO()
        received = 0
        head = b""
        for chunk in response.chunks:
            if not chunk:
                continue
            received += len(chunk)
            if received > max_bytes:
                raise ports.CaptureTooLarge(
                    f"profile exceeded {_size(max_bytes)} cap: stopped reading {request.target} after {received} bytes"
                )
            if reserve is not None:
                reserve(len(chunk), deadline)
            body.write(chunk)
            if len(head) < len(GZIP_MAGIC):
                head += chunk[: len(GZIP_MAGIC)]
                if len(head) >= len(GZIP_MAGIC):
                    _check_gzip(head, received, request, content_type)
            if time.monotonic() > deadline:
                raise ports.CaptureTimeout(
                    f"timed out after {timeout:g} s reading the profile from {request.target} "
                    f"({received} bytes received)"
                )
    if not received:
        raise ports.CaptureFailed(f"target returned an empty body: {request.target}")
    if len(head) < len(GZIP_MAGIC):
        _check_gzip(head, received, request, content_type)
    return body.getvalue()


def _check_gzip(head: bytes, received: int, request: ports.ProfileRequest, content_type: str) -> None:
    if not head.startswith(GZIP_MAGIC):
        raise ports.CaptureFailed(
            f"target returned non-pprof content ({content_type}, first {received} bytes not gzip; {EXPECTED}) "
            f"from {request.target}"
        )


def _status_error(response: ports.Response, request: ports.ProfileRequest) -> Exception:
    head, complete = _error_head(response.chunks)
    if response.status == 500 and BUSY_MARKER in head.decode("utf-8", errors="replace").lower():
        return ports.TargetBusy(f"profiler busy at {request.target}: cpu profiling already in use")
    reason = f" {response.reason}" if response.reason else ""
    size = f"{len(head)} bytes" if complete else f"more than {ERROR_BODY_READ_BYTES} bytes"
    declared = _declared_length(response.headers)
    if declared is not None:
        size = f"{declared} bytes"
    body = f"{_content_type(response.headers)}, {size}" if head else "empty body"
    return ports.CaptureFailed(f"HTTP {response.status}{reason} from {request.target} ({body}; {EXPECTED})")


def _error_head(chunks: Iterator[bytes]) -> tuple[bytes, bool]:
    """The start of an error body, and whether that is all of it; a body that cannot be read is no
    reason to hide the status."""
    head = b""
    try:
        for chunk in chunks:
            head += chunk
            if len(head) > ERROR_BODY_READ_BYTES:
                return head[:ERROR_BODY_READ_BYTES], False
    except (ports.CaptureFailed, ports.CaptureTimeout):
        pass
    return head, True


def _content_type(headers: Mapping[str, str]) -> str:
    """The answer's Content-Type as a message shows it: printable ASCII, cut short."""
    value = headers.get("Content-Type") or headers.get("content-type")
    if not value:
        return "no Content-Type"
    text = "".join(char if " " <= char <= "~" else "?" for char in str(value))
    if len(text) > SHOWN_CONTENT_TYPE_CHARS:
        text = text[:SHOWN_CONTENT_TYPE_CHARS] + "..."
    return f"Content-Type {text}"


def _declared_length(headers: Mapping[str, str]) -> int | None:
    # Transports hand over case-insensitive header maps; plain dicts spell it one of these ways.
    value = headers.get("Content-Length") or headers.get("content-length")
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


def _size(count: int) -> str:
    """64 MiB, 512 KiB or 1000 bytes: caps are usually round numbers of binary units."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= scale and count % scale == 0:
            return f"{count // scale} {unit}"
    return f"{count} bytes"

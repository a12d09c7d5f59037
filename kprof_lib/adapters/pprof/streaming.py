"""What the pprof transports share: request addresses, streaming a response body under the
watchdog's deadline, and turning urllib3 and socket errors into `CaptureFailed` or
`CaptureTimeout` with a reason a user can act on. Used by direct.py, proxy.py and portforward.py.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import posixpath
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import unquote

import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    MaxRetryError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)
from urllib3.util import parse_url

from kprof_lib.adapters.pprof.deadlines import Watch
from kprof_lib.adapters.pprof.exchange import Exchange
from kprof_lib.execution.ports import CaptureError, CaptureFailed, CaptureTimeout, ProfileRequest, Response

# Big enough that a profile needs few reads, small enough that the size cap stops reading promptly.
CHUNK_BYTES = 64 * 1024
REQUEST_HEADERS = {"Accept": "*/*", "User-Agent": "kprof"}
TLS_HINT = " (for pods with self-signed certificates: --insecure-skip-tls-verify, or tls_verify=False)"


def host_port(host: str, port: int) -> str:
    """`host:port`, with an IPv6 address in brackets as URLs need it."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def path_and_query(request: ProfileRequest) -> str:
    query = "&".join(f"{key}={value}" for key, value in request.query.items())
    return f"{request.path}?{query}" if query else request.path


def confine(url: str, prefix: str, request: ProfileRequest) -> None:
    """Refuses (`CaptureFailed`) a request whose path, as it will finally be sent, leaves `prefix`
    (ending in `/`): the pod's own pprof base path, or its pods/proxy prefix on the API server.

    Annotations are validated before a plan is made, but a plan can come from a library caller:
    this is the check at the last moment. Two readings of the path must stay inside: the one
    urllib3 sends (it removes dot segments, so `/proxy/../../other` reaches another object with
    the caller's credentials) and the one a server sees that decodes `%2e%2e` and `%2f` first.
    """
    sent = parse_url(url).path or "/"
    decoded = posixpath.normpath(unquote(sent))
    for path in (sent, decoded):
        if not (path + "/").startswith(prefix) or "\x00" in path:
            raise CaptureFailed(
                f"refused to fetch {request.target}: its path would leave {prefix} "
                f"(profiling.io/path must name a path under the pod's own endpoint)"
            )


def body_chunks(
    pieces: Iterator[bytes],
    watch: Watch,
    request: ProfileRequest,
    timeout: float,
    *,
    remaining: Callable[[], int | None] = lambda: None,
) -> Iterator[bytes]:
    """The body from `pieces` (a response's own streaming), with its errors as capture errors:
    `CaptureTimeout` once the watchdog has cut the connection or a read timed out, `CaptureFailed`
    if the connection is lost or closes before `remaining()` (bytes the server announced and did
    not send) reaches 0."""
    received = 0

    def timed_out() -> CaptureTimeout:
        return CaptureTimeout(
            f"timed out after {timeout:g} s reading the profile from {request.target} ({received} bytes received)"
        )

    while True:
        try:
            data = next(pieces, b"")
        except (ReadTimeoutError, TimeoutError) as error:
            raise timed_out() from error
        except (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError, ValueError) as error:
            # ValueError: http.client reading from a file that was closed under it.
            if watch.fired:
                raise timed_out() from error
            raise CaptureFailed(
                f"connection lost while reading the profile from {request.target} after {received} bytes: "
                f"{_describe(error)}"
            ) from error
        if watch.fired:
            raise timed_out()
        if not data:
            missing = remaining()
            if missing:
                raise CaptureFailed(
                    f"connection closed while reading the profile from {request.target}: "
                    f"{missing} of {received + missing} announced bytes missing"
                )
            return
        received += len(data)
        yield data


@contextlib.contextmanager
def streamed_urllib3(
    response: urllib3.BaseHTTPResponse, request: ProfileRequest, timeout: float, exchange: Exchange
) -> Iterator[Response]:
    """A urllib3 response (opened with preload_content=False inside `exchange`) as a `Response`
    whose body must arrive by the exchange's deadline. On leaving, a connection whose body was not
    read to the end is closed, not pooled: unread bytes would be read as the next response."""
    exchange.responded(response)
    assert exchange.watch is not None
    try:
        yield Response(
            status=response.status,
            reason=response.reason or "",
            headers=response.headers,
            chunks=body_chunks(_pieces(response), exchange.watch, request, timeout),
        )
    finally:
        exchange.watch.cancel()
        response.close()
        response.release_conn()


def _pieces(response: urllib3.BaseHTTPResponse) -> Iterator[bytes]:
    """A chunked body chunk by chunk as the server sent them (urllib3 reads each chunk whole,
    cheaply); any other body by read1, which returns whatever has arrived, so the content check
    sees the first bytes at once. Either read may block: the deadline is the watchdog's business."""
    if response.chunked:
        return response.stream(CHUNK_BYTES)
    return iter(lambda: response.read1(CHUNK_BYTES), b"")


def request_error(error: Exception, *, where: str, target: str, timeout: float, tls_hint: str = "") -> CaptureError:
    """The capture error for a urllib3 failure before the response headers arrived.

    `where` names the host that was being reached (the pod, or the API server for the proxy)."""
    if isinstance(error, MaxRetryError) and error.reason is not None:
        error = error.reason
    if isinstance(error, NameResolutionError):
        return CaptureFailed(f"could not resolve {where}: {_describe(error)}")
    if isinstance(error, NewConnectionError):
        cause = error.__cause__ or error.__context__
        if isinstance(cause, ConnectionRefusedError) or "refused" in str(error).lower():
            return CaptureFailed(f"connection refused by {where}")
        if isinstance(cause, TimeoutError):
            return CaptureTimeout(f"timed out after {timeout:g} s connecting to {where}")
        return CaptureFailed(f"could not connect to {where}: {_describe(cause or error)}")
    if isinstance(error, ConnectTimeoutError):
        return CaptureTimeout(f"timed out after {timeout:g} s connecting to {where}")
    if isinstance(error, ReadTimeoutError | TimeoutError):
        return CaptureTimeout(f"timed out after {timeout:g} s waiting for {target}")
    if isinstance(error, SSLError):
        return CaptureFailed(f"TLS with {where} failed: {_describe(error)}{tls_hint}")
    if isinstance(error, ProtocolError):
        return CaptureFailed(f"connection to {where} lost before a response: {_describe(error)}")
    return CaptureFailed(f"request to {target} failed: {_describe(error)}")


def api_status(body: bytes | str) -> dict[str, Any] | None:
    """The API server's own error, a JSON `Status` object, if that is what `body` is."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    if not text.lstrip().startswith("{"):
        return None
    try:
        document = json.loads(body)
    except ValueError:
        return None
    if isinstance(document, dict) and document.get("kind") == "Status":
        return document
    return None


def _describe(error: BaseException) -> str:
    """The innermost useful text of an exception: urllib3 wraps the socket error in a tuple."""
    while isinstance(error, ProtocolError | SSLError | MaxRetryError) and error.args:
        inner = error.args[-1]
        if not isinstance(inner, BaseException):
            break
        error = inner
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__

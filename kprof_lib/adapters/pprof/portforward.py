"""The port-forward transport: reaches a pod's pprof port through the API server's pods/portforward
subresource (a WebSocket tunnel, as `kubectl port-forward` uses), for runtimes outside the cluster
network when pods/proxy is not allowed or not wanted. It needs RBAC `create` on
`pods/portforward`. `make_transport("portforward", api_client=...)` builds it.

Each capture opens its own tunnel to the one port, speaks HTTP/1.1 over it with http.client (which
streams both chunked and Content-Length bodies), and closes the tunnel afterwards whatever
happened. The kubernetes client opens the WebSocket with no timeout of its own, so the opening is
waited for in a helper thread, bounded by the capture's budget.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import urllib3
from kubernetes.client import ApiClient, CoreV1Api
from kubernetes.client.exceptions import ApiException
from kubernetes.stream import portforward

from kprof_lib.adapters.pprof import streaming
from kprof_lib.adapters.pprof.deadlines import WATCHDOG, Group, shutdown_socket
from kprof_lib.execution.ports import CaptureFailed, CaptureTimeout, ProfileRequest, Response

# How long closing waits for the client's forwarding thread to let go of the tunnel.
HANG_UP_SECONDS = 2.0


class PortForwardTransport:
    """Fetches a profile over a port-forward tunnel to `request.pod`'s `request.port`."""

    name = "portforward"

    def __init__(self, api_client: ApiClient, *, tls_verify: bool = True) -> None:
        self._core = CoreV1Api(api_client)
        self.tls_verify = tls_verify
        self._group = Group()

    def abort(self) -> None:
        """Cut every capture in flight through this transport now, and any started later."""
        WATCHDOG.cut_group(self._group)

    @contextmanager
    def open(self, request: ProfileRequest, timeout: float) -> Iterator[Response]:
        deadline = time.monotonic() + timeout
        inside = request.base_path.rstrip("/") + "/"
        streaming.confine(f"http://localhost{streaming.path_and_query(request)}", inside, request)
        tunnel = _open_tunnel(self._core, request, timeout)
        end = tunnel.socket(request.port)
        # The client wraps its end of the tunnel to hide a TCP-only option from http.client's
        # connect(), which is never called here; TLS needs the socket itself.
        sock: socket.socket = getattr(end, "_socket", end)
        sock.settimeout(timeout)
        watch = WATCHDOG.watch(deadline, lambda: shutdown_socket(sock), self._group)
        connection = http.client.HTTPConnection("localhost", request.port, timeout=timeout)
        response: http.client.HTTPResponse | None = None
        try:
            try:
                connection.sock = sock
                if request.scheme == "https":
                    # Handshake after wrapping: a failed wrap_socket() would close the socket at
                    # once, with the server's alert unread (see _hang_up).
                    sock = connection.sock = self._tls(sock, request)
                    sock.do_handshake()
                connection.request("GET", streaming.path_and_query(request), headers=streaming.REQUEST_HEADERS)
                response = answer = connection.getresponse()
            except (OSError, http.client.HTTPException) as error:
                fired = watch.cancel()
                raise _tunnel_error(error, tunnel, request, timeout, fired) from error
            yield Response(
                status=answer.status,
                reason=answer.reason or "",
                headers=urllib3.HTTPHeaderDict(answer.getheaders()),
                # read1 returns what has arrived; http.client decodes chunked bodies on the way.
                chunks=streaming.body_chunks(
                    iter(lambda: answer.read1(streaming.CHUNK_BYTES), b""),
                    watch,
                    request,
                    timeout,
                    remaining=lambda: answer.length,
                ),
            )
        finally:
            watch.cancel()
            _hang_up(sock)
            if response is not None:
                response.close()  # it holds the socket open until closed too
            connection.close()
            tunnel.close()

    def _tls(self, sock: socket.socket, request: ProfileRequest) -> ssl.SSLSocket:
        context = ssl.create_default_context()
        if not self.tls_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context.wrap_socket(sock, server_hostname=request.pod_ip, do_handshake_on_connect=False)


def _hang_up(sock: socket.socket) -> None:
    """End our side of the tunnel so that the client's forwarding thread ends cleanly and closes
    the WebSocket: half-close, then read what is still queued until that thread closes its side.
    Closing with unread bytes queued would fail that thread's next read with ECONNRESET, and it
    would die with the WebSocket still open."""
    try:
        socket.socket.shutdown(sock, socket.SHUT_WR)
        socket.socket.settimeout(sock, HANG_UP_SECONDS)
        deadline = time.monotonic() + HANG_UP_SECONDS
        while socket.socket.recv(sock, streaming.CHUNK_BYTES) and time.monotonic() < deadline:
            pass
    except OSError:
        pass  # already closed or cut: nothing queued that could matter


def _open_tunnel(core: CoreV1Api, request: ProfileRequest, timeout: float) -> Any:
    """The client's PortForward for `request`, or CaptureTimeout/CaptureFailed within `timeout`."""
    outcome: dict[str, Any] = {}
    lock = threading.Lock()
    ready = threading.Event()

    def connect() -> None:
        try:
            tunnel = portforward(
                core.connect_get_namespaced_pod_portforward, request.pod, request.namespace, ports=str(request.port)
            )
        except AttributeError as error:
            # The client decodes a failed handshake's missing body and trips: the ApiException
            # underneath says what went wrong.
            with lock:
                outcome["error"] = error.__context__ if isinstance(error.__context__, ApiException) else error
            ready.set()
            return
        except Exception as error:  # reported to the waiting caller, below
            with lock:
                outcome["error"] = error
            ready.set()
            return
        with lock:
            abandoned = outcome.get("abandoned", False)
            outcome["tunnel"] = tunnel
        if abandoned:
            tunnel.close()  # the caller gave up waiting; nobody else will close it
        ready.set()

    threading.Thread(target=connect, name=f"kprof-portforward {request.namespace}/{request.pod}", daemon=True).start()
    ready.wait(timeout)
    with lock:
        if "tunnel" in outcome:
            return outcome["tunnel"]
        error = outcome.get("error")
        if error is None:
            outcome["abandoned"] = True
    if error is None:
        raise CaptureTimeout(
            f"timed out after {timeout:g} s opening a port-forward to {request.namespace}/{request.pod} "
            f"port {request.port}"
        )
    raise CaptureFailed(
        f"port-forward to {request.namespace}/{request.pod} port {request.port} failed: {_explain(error)}"
    ) from error


def _explain(error: Exception) -> str:
    """Why the tunnel did not open. A refused WebSocket handshake reads "Handshake status 404 Not
    Found -+-+- {headers} -+-+- {body}"; its body is the API server's Status."""
    reason = str(error.reason if isinstance(error, ApiException) else error)
    parts = reason.split(" -+-+- ")
    if len(parts) == 3 and parts[0].startswith("Handshake status "):
        status = streaming.api_status(parts[2])
        answer = parts[0].removeprefix("Handshake status ")
        if status is not None and status.get("message"):
            return f"API server answered {answer}: {status['message']}"
        return f"API server answered {answer}"
    return " ".join(reason.split())


def _tunnel_error(error: Exception, tunnel: Any, request: ProfileRequest, timeout: float, fired: bool) -> Exception:
    where = f"{request.namespace}/{request.pod} port {request.port}"
    if fired or isinstance(error, TimeoutError):
        return CaptureTimeout(f"timed out after {timeout:g} s waiting for {request.target} over a port-forward")
    if isinstance(error, ssl.SSLError):
        hint = streaming.TLS_HINT if "certificate verify failed" in str(error).lower() else ""
        return CaptureFailed(f"TLS with {where} over a port-forward failed: {error}{hint}")
    # The API server reports a pod port it could not reach on the tunnel's error channel, then
    # closes the tunnel: the HTTP client only sees the connection end.
    with contextlib.suppress(ValueError):
        reported = tunnel.error(request.port)
        if reported:
            refused = "connection refused by the pod: " if "refused" in reported.lower() else ""
            return CaptureFailed(f"port-forward to {where} failed: {refused}{' '.join(reported.split())}")
    return CaptureFailed(f"port-forward to {where} closed before a response: {type(error).__name__}: {error}")

"""The proxy transport: reaches a pod's pprof endpoint through the API server's pods/proxy
subresource, for a runtime outside the cluster network (a laptop, CI) that can reach only the API
server. It needs RBAC `get` on `pods/proxy`. `make_transport("proxy", api_client=...)` builds it.

Requests go out through the kubernetes client's `call_api`, so every authentication the client
supports (tokens, exec plugins, client certificates) works unchanged. They use a private
`ApiClient` built from the caller's configuration with urllib3 retries off: the client's default
is three retries of a GET on a read timeout, which would quadruple a capture's time budget and
re-run a CPU profile behind the caller's back. One deadline covers the whole exchange with the API
server, headers included (`exchange.watched`).

The pod's own answer passes through the API server unchanged (a 404 from pprof, Go's 500 "cpu
profiling already in use"), so it is handed on as a `Response` for the caller to judge. An error
the API server raises itself (no such pod, RBAC refused, pod unreachable) comes as a JSON `Status`
and is reported as `CaptureFailed` with the API server's message.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import urllib3
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from kprof_lib.adapters.kube import reads
from kprof_lib.adapters.pprof import exchange
from kprof_lib.adapters.pprof.deadlines import WATCHDOG, Group
from kprof_lib.adapters.pprof.streaming import REQUEST_HEADERS, api_status, confine, request_error, streamed_urllib3
from kprof_lib.execution import redact
from kprof_lib.execution.ports import CaptureError, CaptureFailed, CaptureTimeout, ProfileRequest, Response


class ProxyTransport:
    """Fetches a profile via `GET /api/v1/namespaces/{ns}/pods/[https:]{name}:{port}/proxy{path}`."""

    name = "proxy"

    def __init__(self, api_client: ApiClient) -> None:
        self._api = _without_retries(api_client)
        self._group = Group()
        host = self._api.configuration.host
        self._api_server = redact.text(host).split("://", 1)[-1].split("/", 1)[0] if host else host

    @staticmethod
    def resource_path(request: ProfileRequest) -> str:
        """The proxy path for `request`; https needs the scheme spelled out before the pod name."""
        return ProxyTransport.proxy_prefix(request).rstrip("/") + request.path

    @staticmethod
    def proxy_prefix(request: ProfileRequest) -> str:
        """`/api/v1/namespaces/{ns}/pods/[https:]{name}:{port}/proxy/`: every request for `request`'s
        pod stays under it."""
        scheme = "https:" if request.scheme == "https" else ""
        return f"/api/v1/namespaces/{request.namespace}/pods/{scheme}{request.pod}:{request.port}/proxy/"

    @contextmanager
    def open(self, request: ProfileRequest, timeout: float) -> Iterator[Response]:
        deadline = time.monotonic() + timeout
        path = self.resource_path(request)
        # The client sends configuration.host + path; a host may carry a path of its own (a
        # gateway in front of the API server).
        host = self._api.configuration.host.rstrip("/")
        base = urlsplit(host).path
        inside = base + self.proxy_prefix(request).rstrip("/") + request.base_path.rstrip("/") + "/"
        confine(host + path, inside, request)
        via = f"{request.target} via the API server at {self._api_server}"
        answer: Response | None
        with exchange.watched(deadline, self._group) as watched:
            try:
                query, headers = list(request.query.items()), dict(REQUEST_HEADERS)
                response = reads.open_response(self._api, "GET", path, query=query, headers=headers, timeout=timeout)
            except ApiException as error:
                # The client raises for every non-2xx status, having read the whole error body.
                answer = _error_response(error, request)
            except AttributeError as error:
                # The client decodes an ApiException's body on the way out and trips over a missing
                # one (TLS failures): the ApiException underneath is the news.
                if isinstance(error.__context__, ApiException):
                    raise _api_failure(error.__context__, request) from error.__context__
                raise
            except (urllib3.exceptions.HTTPError, OSError) as error:
                if watched.cut:
                    raise CaptureTimeout(f"timed out after {timeout:g} s waiting for {via}") from error
                raise request_error(
                    error, where=f"API server {self._api_server}", target=via, timeout=timeout
                ) from error
            else:
                answer = None
            if answer is not None:
                yield answer
                return
            with streamed_urllib3(response, request, timeout, watched) as streamed:
                yield streamed

    def abort(self) -> None:
        """Cut every capture in flight through this transport now, and any started later."""
        WATCHDOG.cut_group(self._group)

    def close(self) -> None:
        self._api.close()


def _without_retries(api_client: ApiClient) -> ApiClient:
    configuration = copy.copy(api_client.configuration)
    configuration.retries = False
    private = ApiClient(configuration)
    # Its connections can be cut by the capture's deadline (exchange.watched).
    exchange.watch_pools(private.rest_client.pool_manager)
    private.default_headers.update(api_client.default_headers)
    private.cookie = api_client.cookie
    return private


def _error_response(error: ApiException, request: ProfileRequest) -> Response:
    """A non-2xx answer: the pod's own goes back as a Response; the API server's own is raised."""
    if not error.status:
        raise _api_failure(error, request) from error
    body = error.body if isinstance(error.body, bytes) else (error.body or "").encode()
    status = api_status(body)
    if status is not None:
        raise CaptureFailed(
            f"API server answered HTTP {error.status} for pods/proxy of {request.namespace}/{request.pod} "
            f"({request.target}): {status.get('message') or status.get('reason') or 'no message'}"
        ) from error
    return Response(
        status=int(error.status),
        reason=error.reason or "",
        headers=urllib3.HTTPHeaderDict(error.headers or {}),
        chunks=iter([body]),
    )


def _api_failure(error: ApiException, request: ProfileRequest) -> CaptureError:
    reason = " ".join(str(error.reason or "no reason given").split())
    return CaptureFailed(f"API request for pods/proxy of {request.namespace}/{request.pod} failed: {reason}")

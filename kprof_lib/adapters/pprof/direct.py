"""The direct transport: HTTP(S) straight to the pod's IP and pprof port, for an operator or sidecar
running inside the cluster network. `make_transport("direct")` builds it for the executor.

One urllib3 PoolManager per transport keeps connections to pods alive between captures. It never
retries on its own (a retried CPU capture would silently double its duration; the executor decides
about retries) and never follows redirects (a pprof endpoint does not redirect). One deadline
covers connecting, TLS, the headers and the body (`exchange.watched`): urllib3's own timeouts
bound each socket operation only.

TLS: certificates are verified by default, as Prometheus does when scraping pods. Pods that serve
pprof over https mostly use self-signed certificates, and a pod is reached by its IP, which its
certificate seldom names; for those, `tls_verify=False` is the explicit opt-out, and the
verification error says so. Verification stays the default because a pod IP can be reused by
another pod within moments, and an unverified connection would then accept a profile from it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import urllib3

from kprof_lib.adapters.pprof import exchange, streaming
from kprof_lib.adapters.pprof.deadlines import WATCHDOG, Group
from kprof_lib.execution.ports import CaptureFailed, CaptureTimeout, ProfileRequest, Response

# Pods captured at once are distinct hosts; each host gets its own pool within the manager.
MAX_HOSTS = 512
CONNECTIONS_PER_HOST = 8


class DirectTransport:
    """Fetches `request.scheme://request.pod_ip:request.port/...` itself."""

    name = "direct"

    def __init__(self, *, tls_verify: bool = True) -> None:
        self.tls_verify = tls_verify
        self._group = Group()
        self._pool = exchange.watch_pools(
            urllib3.PoolManager(
                num_pools=MAX_HOSTS,
                maxsize=CONNECTIONS_PER_HOST,
                block=False,
                retries=False,
                cert_reqs="CERT_REQUIRED" if tls_verify else "CERT_NONE",
                # With CERT_NONE, urllib3 would still compare the certificate's names with the IP.
                assert_hostname=None if tls_verify else False,
            )
        )

    @contextmanager
    def open(self, request: ProfileRequest, timeout: float) -> Iterator[Response]:
        deadline = time.monotonic() + timeout
        where = streaming.host_port(request.pod_ip, request.port)
        url = f"{request.scheme}://{where}{streaming.path_and_query(request)}"
        streaming.confine(url, request.base_path.rstrip("/") + "/", request)
        with exchange.watched(deadline, self._group) as watched:
            try:
                response = self._pool.request(
                    "GET",
                    url,
                    headers=streaming.REQUEST_HEADERS,
                    preload_content=False,
                    redirect=False,
                    retries=False,
                    # Each socket operation; the watchdog bounds the whole exchange.
                    timeout=urllib3.Timeout(total=timeout),
                )
            except (urllib3.exceptions.HTTPError, OSError) as error:
                if self._group.cut:
                    raise CaptureFailed(f"cancelled: the process is stopping ({request.target})") from error
                if watched.cut:
                    raise CaptureTimeout(f"timed out after {timeout:g} s waiting for {request.target}") from error
                unverified = "certificate verify failed" in str(error).lower()
                tls_hint = streaming.TLS_HINT if unverified else ""
                raise streaming.request_error(
                    error, where=where, target=request.target, timeout=timeout, tls_hint=tls_hint
                ) from error
            with streaming.streamed_urllib3(response, request, timeout, watched) as streamed:
                yield streamed

    def abort(self) -> None:
        """Cut every capture in flight through this transport now, and any started later."""
        WATCHDOG.cut_group(self._group)

    def close(self) -> None:
        """Close idle pooled connections."""
        self._pool.clear()

"""Transports to pods' pprof endpoints (the execution `Transport` port): "direct" to the pod IP,
"proxy" through the API server's pods/proxy, "portforward" through its pods/portforward. The
runtimes pick one by name with `make_transport`; the executor only calls `open` on it."""

from __future__ import annotations

from typing import Any

from kprof_lib.execution.ports import Transport
from kprof_lib.spec.schemas import TRANSPORTS as TRANSPORT_NAMES


def make_transport(name: str, *, api_client: Any = None, tls_verify: bool = True) -> Transport:
    """The transport called `name`. "proxy" and "portforward" need a kubernetes `ApiClient`;
    `tls_verify` applies to https pod endpoints reached directly or over a port-forward (through
    pods/proxy, the API server makes that connection itself)."""
    # Each transport is imported on use: the kubernetes client, which only the API-server
    # transports need, takes a good part of a second to import.
    if name not in TRANSPORT_NAMES:
        raise ValueError(f"unknown transport {name!r}: expected one of {', '.join(TRANSPORT_NAMES)}")
    if name == "direct":
        from kprof_lib.adapters.pprof.direct import DirectTransport

        return DirectTransport(tls_verify=tls_verify)
    if api_client is None:
        raise ValueError(f"the {name!r} transport reaches pods through the API server and needs an api_client")
    if name == "proxy":
        from kprof_lib.adapters.pprof.proxy import ProxyTransport

        return ProxyTransport(api_client)
    from kprof_lib.adapters.pprof.portforward import PortForwardTransport

    return PortForwardTransport(api_client, tls_verify=tls_verify)

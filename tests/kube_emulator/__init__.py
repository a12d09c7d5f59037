"""A front proxy over HTTP before the tests' real kube-apiserver (tests.support.controlplane) for what
that API server cannot do here: pods/portforward and pods/proxy to loopback pods, injected faults
(errors, slow answers, cut or expired watches), chosen pod metrics, and a request log. The real
`kubernetes` client talks to it unchanged. See README.md in this folder."""

from .faults import Fault, RequestRecord
from .front import KubeFront

__all__ = ["Fault", "KubeFront", "RequestRecord"]

"""A Kubernetes API server emulator over real HTTP for kprof's tests, benchmarks and local runs:
the real `kubernetes` client talks to it (CRUD, selectors, watches with resourceVersion/410/
bookmarks, status subresource, leases, metrics.k8s.io, pods/proxy, pods/portforward), faults can be
injected, and every request is counted. See README.md in this folder for what it serves."""

from .emulator import KubeEmulator
from .faults import Fault, RequestRecord
from .objects import make_pod
from .status import ApiError

__all__ = ["ApiError", "Fault", "KubeEmulator", "RequestRecord", "make_pod"]

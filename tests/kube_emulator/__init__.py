"""A Kubernetes API server emulator over real HTTP for what the real control plane of the tests
cannot do here: pods/portforward, injected faults (errors, slow answers, cut or expired watches)
and a request log for the benchmarks. The real `kubernetes` client talks to it unchanged. See
README.md in this folder for what it serves."""

from .emulator import KubeEmulator
from .faults import Fault, RequestRecord
from .objects import make_pod
from .status import ApiError

__all__ = ["ApiError", "Fault", "KubeEmulator", "RequestRecord", "make_pod"]

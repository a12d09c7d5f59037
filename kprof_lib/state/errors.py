"""The error for a cluster state that is not what the Kubernetes API and metrics-server return.
Raised by `state.cluster.read` (and so by `reconcile`); a `ValueError` listing every problem with its
path, like `SpecError`.
"""

from __future__ import annotations

from typing import NoReturn

from kprof_lib.spec.errors import InputError


class StateError(InputError):
    """A cluster state that is not what the Kubernetes API and metrics-server return."""

    subject = "cluster state"


def raise_at(path: str, message: str) -> NoReturn:
    """Raises a `StateError` with one problem: for checks made where a field is read."""
    raise StateError([{"path": path, "message": message}])

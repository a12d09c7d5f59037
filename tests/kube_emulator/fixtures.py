"""Pytest fixtures for the front of the real API server, registered in tests/conftest.py: a started
front per test (over the session's control plane), a `kubernetes` ApiClient pointed at it, a
kubeconfig file for code that loads its own configuration (the operator, the kprof CLI), and a
fresh namespace: objects live in the session's real API server, so each test keeps to its own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .front import KubeFront

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

    from tests.support.controlplane import ControlPlane


@pytest.fixture
def kube_front(control_plane: ControlPlane) -> Iterator[KubeFront]:
    """A started front, stopped (with every open connection cut) after the test."""
    with KubeFront(control_plane) as front:
        yield front


@pytest.fixture
def kube_api(kube_front: KubeFront) -> Iterator[ApiClient]:
    """A `kubernetes.client.ApiClient` for `kube_front`."""
    client = kube_front.api_client()
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def kubeconfig_path(kube_front: KubeFront, tmp_path: Path) -> Path:
    """A kubeconfig file whose current context is `kube_front`."""
    return kube_front.write_kubeconfig(tmp_path / "kubeconfig")


@pytest.fixture
def kube_namespace(control_plane: ControlPlane) -> str:
    """A namespace of this test's own in the real API server."""
    return control_plane.new_namespace("front")

"""Pytest fixtures for the Kubernetes API emulator, registered in tests/conftest.py: a started
emulator per test, a `kubernetes` ApiClient pointed at it, and a kubeconfig file for code that
loads its own configuration (the operator, the kprof CLI)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes.client import ApiClient

from .emulator import KubeEmulator


@pytest.fixture
def kube_emulator() -> Iterator[KubeEmulator]:
    """A started emulator, stopped (with every open connection cut) after the test."""
    with KubeEmulator() as emulator:
        yield emulator


@pytest.fixture
def kube_api(kube_emulator: KubeEmulator) -> Iterator[ApiClient]:
    """A `kubernetes.client.ApiClient` for `kube_emulator`."""
    client = kube_emulator.api_client()
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def kubeconfig_path(kube_emulator: KubeEmulator, tmp_path: Path) -> Path:
    """A kubeconfig file whose current context is `kube_emulator` (namespace "default")."""
    return kube_emulator.write_kubeconfig(tmp_path / "kubeconfig")

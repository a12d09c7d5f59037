"""The Helm chart installed for real: `helm install` of helm/kprof-operator into the session's control
plane (tests.support.controlplane), once per session. The CRD the other real-cluster tests use comes
from this install, and the operator they run has this release's ServiceAccount and RBAC.

The release enables the proxy transport besides direct (`extraTransports`), so that its ClusterRole
holds every grant the scenarios exercise.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.controlplane import ControlPlane
from tests.support.manifests import REPO, helm

CHART = REPO / "helm" / "kprof-operator"
CRD_NAME = "profilingconfigs.profiling.io"


@dataclass(frozen=True)
class Release:
    name: str
    namespace: str
    # The ServiceAccount, ClusterRole and Role all carry the chart's full name.
    full_name: str
    install_output: str

    @property
    def service_account(self) -> str:
        return self.full_name


def full_name(release: str, chart: str = "kprof-operator") -> str:
    """What the chart's "kprof-operator.fullname" helper makes of a release name."""
    if chart in release:
        return release
    if chart.startswith(f"{release}-"):
        return chart
    return f"{release}-{chart}"


def install(plane: ControlPlane, name: str, namespace: str, *sets: str) -> Release:
    args: list[str | Path] = ["install", name, CHART, "--namespace", namespace, "--create-namespace"]
    args += ["--kubeconfig", plane.kubeconfig]
    for assignment in sets:
        args += ["--set", assignment]
    result = helm(*args)
    release = Release(name, namespace, full_name(name), result.stdout)
    wait_established(plane)
    return release


def wait_established(plane: ControlPlane, timeout: float = 30.0) -> None:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    extensions = client.ApiextensionsV1Api(plane.api())
    deadline = time.monotonic() + timeout
    while True:
        try:
            crd = extensions.read_custom_resource_definition(CRD_NAME)
            if any(c.type == "Established" and c.status == "True" for c in crd.status.conditions or ()):
                return
        except ApiException as error:
            if error.status != 404:
                raise
        if time.monotonic() > deadline:
            raise AssertionError(f"the CRD {CRD_NAME} is not Established after {timeout}s")
        time.sleep(0.2)


@pytest.fixture(scope="session")
def kprof_release(control_plane: ControlPlane) -> Iterator[Release]:
    # Not "kprof" in kprof-system: the kustomize base is applied to the same cluster under those
    # names, and its ClusterRoleBinding would take over the chart's.
    yield install(control_plane, "kprof-chart", "kprof-chart", "extraTransports={proxy}")

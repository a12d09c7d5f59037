"""Installing kprof into a real kube-apiserver (tests.support.controlplane): `helm install` of the
chart and `kubectl apply -k kustomize/base` with the real helm and kubectl. The API server accepts
every object, the CRD becomes Established, `kubectl get pcfg` prints the CRD's printer columns and
`kubectl explain` shows the schema's field documentation, served from the API server's OpenAPI."""

from __future__ import annotations

import re
import time

import pytest
import yaml

from kprof_lib.spec import schemas
from tests.support import chart
from tests.support.manifests import REPO, kubectl

EXAMPLES = REPO / "examples" / "profilingconfigs"


def run_kubectl(control_plane, *args):
    return kubectl("--kubeconfig", control_plane.kubeconfig, *args)


def test_helm_install_creates_every_object_of_the_chart(control_plane, kprof_release):
    from kubernetes import client

    api = control_plane.api()
    name, namespace = kprof_release.full_name, kprof_release.namespace
    assert "STATUS: deployed" in kprof_release.install_output
    assert client.CoreV1Api(api).read_namespaced_service_account(name, namespace)
    assert client.AppsV1Api(api).read_namespaced_deployment(name, namespace).spec.replicas == 1
    rbac = client.RbacAuthorizationV1Api(api)
    # The chart was installed with extraTransports={proxy}: its ClusterRole says so.
    assert ["pods/proxy"] in [rule.resources for rule in rbac.read_cluster_role(name).rules]
    assert rbac.read_namespaced_role(name, namespace).rules
    binding = rbac.read_cluster_role_binding(name)
    assert [(s.kind, s.name, s.namespace) for s in binding.subjects] == [("ServiceAccount", name, namespace)]


def _wait_for_column_output(control_plane, namespace: str) -> str:
    # The CRD's columns are served once the config exists; give the API server a moment.
    deadline = time.monotonic() + 20
    while True:
        out = run_kubectl(control_plane, "get", "pcfg", "-n", namespace).stdout
        if "threshold" in out or time.monotonic() > deadline:
            return out
        time.sleep(0.5)


def test_kubectl_get_pcfg_shows_the_printer_columns(control_plane, kprof_release, tmp_path):
    namespace = control_plane.new_namespace("columns")
    example = yaml.safe_load((EXAMPLES / "threshold.yaml").read_text())
    example["metadata"] = {"name": "threshold", "namespace": namespace}
    (tmp_path / "threshold.yaml").write_text(yaml.safe_dump(example))
    try:
        run_kubectl(control_plane, "apply", "-f", tmp_path / "threshold.yaml")
        out = _wait_for_column_output(control_plane, namespace)
        header, *rows = out.splitlines()
        assert header.split() == ["NAME", "TARGET-NAMESPACE", "CPU%", "MEMORY%", "ACTIVE", "PROFILES", "UPLOADS", "AGE"]
        [row] = rows
        thresholds = example["spec"]["thresholds"]
        cells = row.split()
        # No status yet: Active, Profiles and Uploads are empty, so Age follows the thresholds.
        assert cells[:4] == [
            "threshold",
            example["spec"]["selector"]["namespace"],
            str(thresholds["cpuThresholdPercent"]),
            str(thresholds["memoryThresholdPercent"]),
        ]
        # The category resolves too; "pc" is PriorityClass's short name, which is why kprof's is not.
        assert "threshold" in run_kubectl(control_plane, "get", "profiling", "-n", namespace).stdout
        assert "system-cluster-critical" in run_kubectl(control_plane, "get", "pc").stdout
    finally:
        # Never leave a config with a real bucket where an operator of another test could see it.
        run_kubectl(control_plane, "delete", "-f", tmp_path / "threshold.yaml")


def _explain(control_plane, field: str, timeout: float = 30.0) -> str:
    # The CRD's OpenAPI is published a few seconds after it is Established.
    deadline = time.monotonic() + timeout
    while True:
        result = kubectl("--kubeconfig", control_plane.kubeconfig, "explain", field, check=False)
        if result.returncode == 0 or time.monotonic() > deadline:
            assert result.returncode == 0, result.stderr
            return result.stdout
        time.sleep(1)


def test_kubectl_explain_shows_the_field_documentation(control_plane, kprof_release):
    out = _explain(control_plane, "profilingconfig.spec")
    flat = " ".join(out.split())
    assert "GROUP: profiling.io" in flat and "VERSION: v1alpha1" in flat
    for field, node in schemas.spec_schema()["properties"].items():
        assert re.search(rf"^\s*{field}\s", out, re.MULTILINE), f"{field} missing from kubectl explain:\n{out}"
        first_words = " ".join(node["description"].split()[:6])
        assert first_words in flat, f"{field}: {first_words!r} not in kubectl explain:\n{out}"
    thresholds = " ".join(_explain(control_plane, "profilingconfig.spec.thresholds.cooldownSeconds").split())
    assert "integer" in thresholds


@pytest.fixture(scope="module")
def kustomize_applied(control_plane, kprof_release):
    return run_kubectl(control_plane, "apply", "-k", REPO / "kustomize" / "base")


def test_kubectl_apply_k_of_the_kustomize_base_is_accepted(control_plane, kustomize_applied):
    from kubernetes import client

    out = kustomize_applied.stdout
    for kind in (
        "namespace/kprof-system",
        "serviceaccount/kprof-operator",
        "clusterrole.rbac.authorization.k8s.io/kprof-operator",
        "deployment.apps/kprof-operator",
    ):
        assert kind in out, out
    assert "customresourcedefinition.apiextensions.k8s.io/profilingconfigs.profiling.io" in out
    api = control_plane.api()
    assert client.AppsV1Api(api).read_namespaced_deployment("kprof-operator", "kprof-system")
    chart.wait_established(control_plane)
    # Applying it again changes nothing.
    again = run_kubectl(control_plane, "apply", "-k", REPO / "kustomize" / "base").stdout
    assert all(line.endswith("unchanged") for line in again.splitlines()), again


def test_kustomize_objects_pass_server_side_dry_run_of_every_overlay(control_plane, kustomize_applied):
    for overlay in sorted((REPO / "kustomize" / "overlays").iterdir()):
        result = run_kubectl(control_plane, "apply", "--dry-run=server", "-k", overlay)
        assert "(server dry run)" in result.stdout, result.stdout

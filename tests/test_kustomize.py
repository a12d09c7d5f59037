"""The kustomize base and overlays, rendered by the real `kubectl kustomize`: every object valid for
Kubernetes 1.33 (strict), the RBAC exactly kprof_lib/runtimes/rbac.py for the transport each one
uses, and each overlay doing what it says."""

from __future__ import annotations

import pytest
import yaml

from kprof_lib import __version__
from kprof_lib.runtimes import rbac
from kprof_lib.spec import crd, schemas
from tests.support.manifests import (
    REPO,
    check_pod_wiring,
    env_of,
    find,
    helm_template,
    kustomize,
    one,
    parse_kprof_args,
    validate_object,
)

KUSTOMIZE = REPO / "kustomize"
# Every folder with a kustomization is rendered, so a new overlay is checked without a new test.
TARGETS = sorted(path.parent for path in KUSTOMIZE.rglob("kustomization.yaml"))
# The transports each target's ClusterRole must allow; "direct" unless listed.
TRANSPORTS = {"overlays/proxy-transport": ["proxy"]}
# Mounts beyond /var/lib/kprof and /tmp.
EXTRA_MOUNTS = {"overlays/alertmanager-receiver": {"/etc/kprof/alerts/token"}}
# The flags that size the capture slots; the base passes each explicitly, as the chart does.
SLOT_FLAGS = {"--concurrency", "--cpu-concurrency", "--goroutine-concurrency"}


@pytest.fixture(scope="module", params=TARGETS, ids=lambda p: str(p.relative_to(KUSTOMIZE)))
def rendered(request):
    return str(request.param.relative_to(KUSTOMIZE)), kustomize(request.param)


def render(target: str):
    return kustomize(KUSTOMIZE / target)


def operator(objects):
    [container] = one(objects, "Deployment", "kprof-operator")["spec"]["template"]["spec"]["containers"]
    return container


def test_the_base_and_the_promised_overlays_exist():
    names = {str(path.relative_to(KUSTOMIZE)) for path in TARGETS}
    assert {"base", "overlays/jaeger", "overlays/minio", "overlays/proxy-transport"} <= names


def test_every_object_is_valid(rendered):
    _, objects = rendered
    assert objects
    for obj in objects:
        validate_object(obj)
    check_pod_wiring(objects)


def test_everything_lands_in_kprof_system(rendered):
    _, objects = rendered
    assert one(objects, "Namespace")["metadata"]["name"] == "kprof-system"
    for obj in objects:
        if obj["kind"] not in {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}:
            assert obj["metadata"]["namespace"] == "kprof-system", obj["kind"]


def test_rbac_is_exactly_what_the_operator_calls(rendered):
    target, objects = rendered
    expected = rbac.rules_for(TRANSPORTS.get(target, ["direct"]))
    assert rbac.permissions(one(objects, "ClusterRole")["rules"]) == rbac.permissions(expected[rbac.CLUSTER_ROLE])
    assert rbac.permissions(one(objects, "Role")["rules"]) == rbac.permissions(expected[rbac.NAMESPACE_ROLE])
    subjects = [{"kind": "ServiceAccount", "name": "kprof-operator", "namespace": "kprof-system"}]
    assert one(objects, "ClusterRoleBinding")["subjects"] == subjects
    assert one(objects, "RoleBinding")["subjects"] == subjects
    assert (
        one(objects, "Deployment", "kprof-operator")["spec"]["template"]["spec"]["serviceAccountName"]
        == "kprof-operator"
    )


def test_the_crd_is_the_generated_one(rendered):
    _, objects = rendered
    rendered_crd = one(objects, "CustomResourceDefinition")
    generated = crd.build_crd(schemas.load("profilingconfig"))
    assert rendered_crd["spec"] == generated["spec"]
    assert rendered_crd["metadata"]["name"] == generated["metadata"]["name"]


def test_the_operator_runs_per_the_contract(rendered):
    target, objects = rendered
    container = operator(objects)
    assert container["image"] == f"kprof/kprof:{__version__}"
    parsed = parse_kprof_args(container["args"])
    assert parsed.command == "run"
    assert parsed.transport == TRANSPORTS.get(target, ["direct"])[0]
    assert container["securityContext"]["runAsUser"] == 65532
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert mounts == {"/var/lib/kprof", "/tmp", *EXTRA_MOUNTS.get(target, ())}
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_the_base_passes_the_capture_slots_the_chart_passes_by_default():
    def slots(container):
        return [arg for arg in container["args"] if arg.split("=", 1)[0] in SLOT_FLAGS]

    chart = one(helm_template(REPO / "helm/kprof-operator"), "Deployment", "kprof-operator")
    [chart_container] = chart["spec"]["template"]["spec"]["containers"]
    expected = ["--concurrency=4", "--cpu-concurrency=32", "--goroutine-concurrency=16"]
    assert slots(operator(render("base"))) == slots(chart_container) == expected


def test_the_alertmanager_overlay_serves_the_receiver_with_the_token_of_its_secret():
    objects = render("overlays/alertmanager-receiver")
    container = operator(objects)
    parsed = parse_kprof_args(container["args"])
    assert parsed.alerts_addr == ":8082"
    [mount] = [m for m in container["volumeMounts"] if parsed.alerts_token_file.startswith(m["mountPath"] + "/")]
    pod = one(objects, "Deployment", "kprof-operator")["spec"]["template"]["spec"]
    [volume] = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    file = parsed.alerts_token_file[len(mount["mountPath"]) + 1 :]
    assert volume["secret"]["secretName"] == "kprof-alerts-token"
    assert volume["secret"]["items"] == [{"key": file, "path": file}]
    service = one(objects, "Service", "kprof-operator-alerts")
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [(8082, "alerts")]
    assert {p["name"]: p["containerPort"] for p in container["ports"]}["alerts"] == 8082


def test_the_jaeger_overlay_sends_traces_to_jaeger():
    objects = render("overlays/jaeger")
    service = one(objects, "Service", "jaeger")
    assert {p["port"] for p in service["spec"]["ports"]} == {4317, 4318, 16686}
    env = env_of(operator(objects))
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"] == "http://jaeger.kprof-system.svc:4318"
    assert env["OTEL_EXPORTER_OTLP_PROTOCOL"]["value"] == "http/protobuf"
    assert env["OTEL_TRACES_EXPORTER"]["value"] == "otlp"


def test_the_minio_overlay_wires_credentials_from_its_secret_and_a_valid_config():
    objects = render("overlays/minio")
    secret = one(objects, "Secret")
    env = env_of(operator(objects))
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        reference = env[name]["valueFrom"]["secretKeyRef"]
        assert reference["name"] == secret["metadata"]["name"]
        assert reference["key"] in secret["data"]
    config = one(objects, "ProfilingConfig")
    assert config["spec"]["s3Config"]["endpoint"] == "http://minio.kprof-system.svc:9000"
    one(objects, "Service", "minio")
    bucket_job = one(objects, "Job")
    assert config["spec"]["s3Config"]["bucket"] in " ".join(
        bucket_job["spec"]["template"]["spec"]["containers"][0]["args"]
    )
    # The overlay's config is the example one, so `kprof validate` and the docs cover it.
    example = yaml.safe_load((REPO / "examples/profilingconfigs/s3-compatible.yaml").read_text())
    assert config["spec"] == example["spec"]


def test_only_the_minio_overlay_carries_a_secret():
    for target in TARGETS:
        objects = kustomize(target)
        expected = 1 if target.name == "minio" else 0
        assert len(find(objects, "Secret")) == expected, target

"""The Helm charts, rendered by the real helm binary: the operator chart with default and
non-default values, its values schema, and the sidecar library chart through the example chart
that uses it. Every rendered object must be valid for Kubernetes 1.33 (strict), and the RBAC must
be exactly kprof_lib/runtimes/rbac.py."""

from __future__ import annotations

import base64
import re
import shutil
from pathlib import Path

import pytest
import yaml

from kprof_lib import __version__, validate_spec
from kprof_lib.runtimes import rbac
from kprof_lib.runtimes.operator.settings import Settings
from kprof_lib.spec import crd, schemas
from tests.support.manifests import (
    REPO,
    check_pod_wiring,
    documents,
    env_of,
    find,
    helm,
    helm_template,
    one,
    parse_kprof_args,
    validate_object,
)

OPERATOR_CHART = REPO / "helm/kprof-operator"
SIDECAR_CHART = REPO / "helm/kprof-sidecar"
EXAMPLE_CHART = REPO / "examples/sidecar-chart"
IRSA_ROLE = "arn:aws:iam::123456789012:role/kprof"

# Non-default values worth rendering; each scenario's own assertions are in the tests below.
SCENARIOS = {
    "defaults": [],
    "irsa": [f"serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn={IRSA_ROLE}", "aws.region=eu-west-1"],
    "proxy": ["transport=proxy"],
    "portforward": ["transport=portforward"],
    "all-transports": ["extraTransports={proxy,portforward}"],
    "jaeger": ["tracing.jaeger.enabled=true"],
    "otlp-grpc": ["tracing.otlpEndpoint=http://collector.observability:4317", "tracing.protocol=grpc"],
    "servicemonitor": ["metrics.serviceMonitor.enabled=true", "metrics.serviceMonitor.labels.release=prom"],
    "default-config": ["defaultConfig.enabled=true", "defaultConfig.name=everything"],
    "no-crds": ["crds.install=false"],
    "persistence": ["storage.persistence.enabled=true", "storage.persistence.size=20Gi"],
    "ha": ["replicaCount=2", "leaderElection.leaseName=kprof-ha"],
    "no-leader-election": ["leaderElection.enabled=false"],
    "alerts": ["alerts.enabled=true", "alerts.token.value=s3cr3t"],
    "alerts-own-secret-tls": [
        "alerts.enabled=true",
        "alerts.port=9443",
        "alerts.token.existingSecret=alertmanager-token",
        "alerts.token.secretKey=bearer",
        "alerts.tlsSecret=kprof-alerts-tls",
        "alerts.matchLabels.service=app\\.kubernetes\\.io/name",
        "alerts.podLabel=kubernetes_pod_name",
        "alerts.maxAlerts=5000",
    ],
    "scheduling": [
        "nodeSelector.kubernetes\\.io/os=linux",
        "tolerations[0].key=dedicated,tolerations[0].operator=Exists,tolerations[0].effect=NoSchedule",
        "priorityClassName=system-cluster-critical",
        "podAnnotations.team=platform",
        "extraEnv[0].name=EXTRA,extraEnv[0].value=yes",
        "extraArgs={--retry-period=3}",
        "image.tag=dev,image.pullPolicy=Always",
        "maxProfileBytes=1000000000",
        "concurrency=32",
        "maxInflightBytes=32000000000",
        "insecureSkipTLSVerify=true",
        "logFormat=text,logLevel=debug",
    ],
}


@pytest.fixture(scope="module", params=sorted(SCENARIOS))
def rendered(request):
    return request.param, helm_template(OPERATOR_CHART, SCENARIOS[request.param])


def scenario(name: str):
    return helm_template(OPERATOR_CHART, SCENARIOS[name])


def operator_container(objects):
    deployment = one(objects, "Deployment", "kprof-operator")
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    return container


def args_of(container) -> dict[str, str]:
    """Flags as {name: value}; a flag without a value maps to ""."""
    out = {}
    for arg in container["args"][1:]:
        name, _, value = arg.partition("=")
        out[name] = value
    return out


def cluster_and_namespace_rules(objects):
    return (
        rbac.permissions(one(objects, "ClusterRole")["rules"]),
        rbac.permissions(one(objects, "Role")["rules"]),
    )


def expected_rules(transports):
    rules = rbac.rules_for(transports)
    return rbac.permissions(rules[rbac.CLUSTER_ROLE]), rbac.permissions(rules[rbac.NAMESPACE_ROLE])


# --- the operator chart -------------------------------------------------------------------------


def test_the_operator_chart_lints_strictly():
    result = helm("lint", "--strict", OPERATOR_CHART)
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_the_operator_chart_lints_with_each_scenario(name):
    args = ["lint", "--strict", OPERATOR_CHART]
    for assignment in SCENARIOS[name]:
        args += ["--set", assignment]
    helm(*args)


def test_every_rendered_object_is_valid(rendered):
    name, objects = rendered
    assert objects, name
    for obj in objects:
        validate_object(obj)
    check_pod_wiring(objects)


def test_kprof_accepts_the_operator_arguments(rendered):
    _, objects = rendered
    container = operator_container(objects)
    parsed = parse_kprof_args(container["args"])
    assert parsed.command == "run"
    assert parsed.transport == args_of(container)["--transport"]
    assert parsed.max_profile_bytes == int(args_of(container)["--max-profile-bytes"])


def test_every_object_has_the_standard_labels_and_the_release_namespace(rendered):
    _, objects = rendered
    for obj in objects:
        labels = obj["metadata"].get("labels", {})
        assert labels.get("app.kubernetes.io/name") == "kprof-operator", obj["kind"]
        assert labels.get("app.kubernetes.io/instance") == "kprof"
        assert labels.get("app.kubernetes.io/version") == __version__
        assert labels.get("app.kubernetes.io/managed-by") == "Helm"
        assert labels.get("helm.sh/chart") == "kprof-operator-0.1.0"
        if obj["kind"] not in {"ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}:
            assert obj["metadata"]["namespace"] == "kprof-system", obj["kind"]


def test_the_default_release():
    objects = scenario("defaults")
    kinds = sorted(o["kind"] for o in objects)
    assert kinds == sorted(
        [
            "ServiceAccount",
            "CustomResourceDefinition",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
            "Service",
            "Deployment",
        ]
    )
    container = operator_container(objects)
    assert container["image"] == f"kprof/kprof:{__version__}"
    assert container["args"][0] == "run"
    assert args_of(container) == {
        "--namespace": "$(POD_NAMESPACE)",
        "--leader-elect": "",
        "--lease-name": "kprof-operator",
        "--lease-duration": "15",
        "--renew-deadline": "10",
        "--retry-period": "2",
        "--health-addr": ":8081",
        "--metrics-addr": ":8080",
        "--transport": "direct",
        "--concurrency": "4",
        "--cpu-concurrency": "32",
        "--goroutine-concurrency": "16",
        "--max-profile-bytes": "67108864",
        "--max-inflight-bytes": "268435456",
        "--allowed-destination": "local",
        "--local-dir": "/var/lib/kprof/profiles",
        "--spool-dir": "/var/lib/kprof/spool",
        "--spool-max-bytes": "268435456",
        "--grace-period": "30",
        "--log-level": "info",
        "--log-format": "json",
    }
    assert not any(name.startswith("OTEL_") for name in env_of(container))
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"metrics": 8080, "health": 8081}
    security = container["securityContext"]
    assert security["runAsNonRoot"] is True and security["runAsUser"] == 65532
    assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    pod = one(objects, "Deployment", "kprof-operator")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == 65532
    assert {m["mountPath"] for m in container["volumeMounts"]} == {"/var/lib/kprof", "/tmp"}
    data = next(v for v in pod["volumes"] if v["name"] == "data")
    assert "emptyDir" in data
    service = one(objects, "Service")
    assert [(p["name"], p["port"]) for p in service["spec"]["ports"]] == [("metrics", 8080)]


def test_rbac_is_exactly_what_the_operator_calls(rendered):
    name, objects = rendered
    transports = {
        "proxy": ["proxy"],
        "portforward": ["portforward"],
        "all-transports": ["direct", "proxy", "portforward"],
    }.get(name, ["direct"])
    assert cluster_and_namespace_rules(objects) == expected_rules(transports)
    binding = one(objects, "ClusterRoleBinding")
    account = one(objects, "ServiceAccount")["metadata"]
    assert binding["roleRef"]["name"] == one(objects, "ClusterRole")["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account["name"], "namespace": "kprof-system"}]
    role_binding = one(objects, "RoleBinding")
    assert role_binding["roleRef"]["name"] == one(objects, "Role")["metadata"]["name"]
    assert role_binding["subjects"] == binding["subjects"]
    assert (
        one(objects, "Deployment", "kprof-operator")["spec"]["template"]["spec"]["serviceAccountName"]
        == account["name"]
    )


def test_no_rule_grants_secrets_or_wildcards(rendered):
    _, objects = rendered
    for role in find(objects, "ClusterRole") + find(objects, "Role"):
        for group, resource, verb in rbac.permissions(role["rules"]):
            assert "*" not in (group, resource, verb)
            assert resource != "secrets"


def test_the_crd_is_the_generated_one_kept_on_uninstall(rendered):
    name, objects = rendered
    crds = find(objects, "CustomResourceDefinition")
    if name == "no-crds":
        assert crds == []
        return
    [rendered_crd] = crds
    assert rendered_crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    generated = crd.build_crd(schemas.load("profilingconfig"))
    assert rendered_crd["spec"] == generated["spec"]
    assert rendered_crd["metadata"]["name"] == generated["metadata"]["name"]


def test_irsa_is_one_set():
    objects = scenario("irsa")
    account = one(objects, "ServiceAccount")
    assert account["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": IRSA_ROLE}
    assert env_of(operator_container(objects))["AWS_REGION"]["value"] == "eu-west-1"


@pytest.mark.parametrize("transport", ["proxy", "portforward"])
def test_the_transport_reaches_the_operator(transport):
    assert args_of(operator_container(scenario(transport)))["--transport"] == transport


@pytest.mark.parametrize(("name", "port"), [("jaeger", 4318)])
def test_jaeger_beside_the_operator_receives_its_traces(name, port):
    objects = scenario(name)
    jaeger_service = one(objects, "Service", "kprof-operator-jaeger")
    jaeger = one(objects, "Deployment", "kprof-operator-jaeger")
    assert jaeger["spec"]["template"]["spec"]["containers"][0]["image"].startswith("jaegertracing/all-in-one:")
    assert {p["port"] for p in jaeger_service["spec"]["ports"]} == {4317, 4318, 16686}
    env = env_of(operator_container(objects))
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"] == f"http://kprof-operator-jaeger.kprof-system.svc:{port}"
    assert env["OTEL_EXPORTER_OTLP_PROTOCOL"]["value"] == "http/protobuf"
    assert env["OTEL_TRACES_EXPORTER"]["value"] == "otlp"
    assert env["OTEL_SERVICE_NAME"]["value"] == "kprof-operator"


def test_jaeger_with_grpc_gets_the_grpc_port():
    objects = helm_template(OPERATOR_CHART, ["tracing.jaeger.enabled=true", "tracing.protocol=grpc"])
    env = env_of(operator_container(objects))
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"] == "http://kprof-operator-jaeger.kprof-system.svc:4317"
    assert env["OTEL_EXPORTER_OTLP_PROTOCOL"]["value"] == "grpc"


def test_an_otlp_endpoint_of_ones_own():
    objects = scenario("otlp-grpc")
    env = env_of(operator_container(objects))
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"] == "http://collector.observability:4317"
    assert env["OTEL_EXPORTER_OTLP_PROTOCOL"]["value"] == "grpc"
    assert find(objects, "Deployment", "kprof-operator-jaeger") == []


def test_the_service_monitor_scrapes_the_metrics_service():
    objects = scenario("servicemonitor")
    monitor = one(objects, "ServiceMonitor")
    service = one(objects, "Service")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == [p["name"] for p in service["spec"]["ports"]]
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"


def test_the_default_config_is_a_valid_profilingconfig_created_after_the_crd():
    objects = scenario("default-config")
    config = one(objects, "ProfilingConfig", "everything")
    assert config["metadata"]["namespace"] == "kprof-system"
    assert config["spec"] == {"thresholds": {"cpuThresholdPercent": 80, "memoryThresholdPercent": 90}}
    assert "post-install" in config["metadata"]["annotations"]["helm.sh/hook"]
    validate_object(config)


def test_the_default_config_spec_comes_from_values(tmp_path):
    values = tmp_path / "values.yaml"
    spec = {"onDemand": {"enabled": True, "intervalSeconds": 600}, "profileTypes": ["heap"]}
    values.write_text(yaml.safe_dump({"defaultConfig": {"enabled": True, "spec": spec}}))
    objects = documents(helm("template", "kprof", OPERATOR_CHART, "-n", "kprof-system", "-f", values).stdout)
    assert one(objects, "ProfilingConfig")["spec"] == spec


def test_persistence_keeps_the_spool_on_a_claim():
    objects = scenario("persistence")
    claim = one(objects, "PersistentVolumeClaim")
    assert claim["spec"]["resources"]["requests"]["storage"] == "20Gi"
    deployment = one(objects, "Deployment")
    data = next(v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == "data")
    assert data == {"name": "data", "persistentVolumeClaim": {"claimName": claim["metadata"]["name"]}}
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}


def test_leader_election_settings():
    ha = operator_container(scenario("ha"))
    assert one(scenario("ha"), "Deployment")["spec"]["replicas"] == 2
    assert args_of(ha)["--lease-name"] == "kprof-ha"
    single = args_of(operator_container(scenario("no-leader-election")))
    assert "--no-leader-elect" in single and "--leader-elect" not in single and "--lease-name" not in single


def test_scheduling_and_extras_reach_the_pod():
    objects = scenario("scheduling")
    pod = one(objects, "Deployment")["spec"]["template"]
    assert pod["metadata"]["annotations"] == {"team": "platform"}
    assert pod["spec"]["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["spec"]["tolerations"] == [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}]
    assert pod["spec"]["priorityClassName"] == "system-cluster-critical"
    container = operator_container(objects)
    assert container["image"] == "kprof/kprof:dev" and container["imagePullPolicy"] == "Always"
    assert env_of(container)["EXTRA"] == {"name": "EXTRA", "value": "yes"}
    args = args_of(container)
    # Large numbers must not come out as 1e+09.
    assert args["--max-profile-bytes"] == "1000000000"
    assert args["--concurrency"] == "32"
    assert args["--max-inflight-bytes"] == "32000000000"
    assert args["--insecure-skip-tls-verify"] == ""
    assert "--insecure-skip-tls-verify" not in args_of(operator_container(scenario("defaults")))
    assert args["--retry-period"] == "3"
    assert (args["--log-format"], args["--log-level"]) == ("text", "debug")


def mode_container(objects, mode: str):
    """The one container of the operator's Deployment (mode operator) or of the node agents'
    DaemonSet (mode node)."""
    kind = "Deployment" if mode == "operator" else "DaemonSet"
    [container] = one(objects, kind, "kprof-operator")["spec"]["template"]["spec"]["containers"]
    return container


SLOT_FLAGS = ("--concurrency", "--cpu-concurrency", "--goroutine-concurrency")


@pytest.mark.parametrize("mode", ["operator", "node"])
@pytest.mark.parametrize(
    ("sets", "expected"),
    [
        ([], ("4", "32", "16")),
        (["cpuConcurrency=64", "goroutineConcurrency=1"], ("4", "64", "1")),
        (["concurrency=2", "cpuConcurrency=1", "goroutineConcurrency=1000000"], ("2", "1", "1000000")),
    ],
)
def test_the_capture_slots_reach_the_operator_and_the_node_agents(mode, sets, expected):
    container = mode_container(helm_template(OPERATOR_CHART, [f"mode={mode}", *sets]), mode)
    args = args_of(container)
    assert tuple(args[flag] for flag in SLOT_FLAGS) == expected
    parsed = parse_kprof_args(container["args"])
    assert parsed.command == ("run" if mode == "operator" else "node")
    assert (parsed.concurrency, parsed.cpu_concurrency, parsed.goroutine_concurrency) == tuple(map(int, expected))


@pytest.mark.parametrize("mode", ["operator", "node"])
def test_the_chart_defaults_for_the_capture_slots_are_kprofs_own(mode):
    args = args_of(mode_container(helm_template(OPERATOR_CHART, [f"mode={mode}"]), mode))
    own = Settings()
    assert tuple(args[flag] for flag in SLOT_FLAGS) == tuple(
        str(n) for n in (own.concurrency, own.cpu_concurrency, own.goroutine_concurrency)
    )


@pytest.mark.parametrize("mode", ["operator", "node"])
@pytest.mark.parametrize(
    ("option", "assignment", "field", "reason"),
    [
        ("--set", "cpuConcurrency=0", "/cpuConcurrency", "minimum"),
        ("--set", "cpuConcurrency=-2", "/cpuConcurrency", "minimum"),
        ("--set", "cpuConcurrency=lots", "/cpuConcurrency", "want integer"),
        ("--set-string", "cpuConcurrency=8", "/cpuConcurrency", "want integer"),
        ("--set", "goroutineConcurrency=0", "/goroutineConcurrency", "minimum"),
        ("--set", "goroutineConcurrency=many", "/goroutineConcurrency", "want integer"),
        ("--set-string", "goroutineConcurrency=16", "/goroutineConcurrency", "want integer"),
    ],
)
def test_the_values_schema_refuses_bad_capture_slots_naming_the_value(mode, option, assignment, field, reason):
    result = helm("template", "kprof", OPERATOR_CHART, "--set", f"mode={mode}", option, assignment, check=False)
    assert result.returncode != 0, f"{assignment} was accepted"
    assert "values don't meet the specifications of the schema" in result.stderr
    [line] = [line for line in result.stderr.splitlines() if f"at '{field}'" in line]
    assert reason in line, result.stderr


@pytest.mark.parametrize(
    ("assignment", "field"),
    [
        ("transport=ssh", "/transport"),
        ("extraTransports={carrier-pigeon}", "/extraTransports/0"),
        ("concurrency=-1", "/concurrency"),
        ("concurrency=lots", "/concurrency"),
        ("insecureSkipTLSVerify=maybe", "/insecureSkipTLSVerify"),
        ("image.pullPolicy=Sometimes", "/image/pullPolicy"),
        ("replicaCount=2,leaderElection.enabled=false", "/replicaCount"),
        ("logLevel=trace", "/logLevel"),
        ("metrics.port=70000", "/metrics/port"),
        ("tracing.protocol=zipkin", "/tracing/protocol"),
        ("tracing.otlpEndpoint=collector:4318", "/tracing/otlpEndpoint"),
        ("maxProfileBytes=0", "/maxProfileBytes"),
        ("serviceAccount.create=maybe", "/serviceAccount/create"),
        ("resources.requests.memory=lots", "/resources/requests/memory"),
        ("replicas=3", "replicas"),
        ("alerts.enabled=maybe", "/alerts/enabled"),
        ("alerts.port=70000", "/alerts/port"),
        ("alerts.maxAlerts=0", "/alerts/maxAlerts"),
        ("alerts.podLabel=", "/alerts/podLabel"),
        ("alerts.token.secretKey=a/b", "/alerts/token/secretKey"),
    ],
)
def test_the_values_schema_rejects_bad_values_naming_the_field(assignment, field):
    result = helm("template", "kprof", OPERATOR_CHART, "--set", assignment, check=False)
    assert result.returncode != 0, f"{assignment} was accepted"
    assert "values don't meet the specifications of the schema" in result.stderr
    assert field in result.stderr, result.stderr


def test_the_alert_receiver_is_off_by_default():
    objects = scenario("defaults")
    assert not any(name.startswith("--alerts-") for name in args_of(operator_container(objects)))
    assert find(objects, "Secret") == [] and find(objects, "Service", "kprof-operator-alerts") == []


def mounted_file(objects, flag: str) -> tuple[dict, str]:
    """The volume behind the file a flag names, and the file's name within it."""
    container = operator_container(objects)
    path = args_of(container)[flag]
    [mount] = [m for m in container["volumeMounts"] if path.startswith(m["mountPath"] + "/")]
    assert mount.get("readOnly") is True
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    [volume] = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    return volume, path[len(mount["mountPath"]) + 1 :]


def test_the_alert_receiver_with_the_charts_token_secret():
    objects = scenario("alerts")
    container = operator_container(objects)
    parsed = parse_kprof_args(container["args"])
    assert parsed.alerts_addr == ":8082" and parsed.alerts_tls_cert_file is None
    assert (parsed.alerts_namespace_label, parsed.alerts_pod_label) == ("namespace", "pod")
    secret = one(objects, "Secret", "kprof-operator-alerts-token")
    volume, file = mounted_file(objects, "--alerts-token-file")
    assert volume["secret"]["secretName"] == secret["metadata"]["name"]
    assert volume["secret"]["items"] == [{"key": file, "path": file}]
    assert base64.b64decode(secret["data"][file]) == b"s3cr3t"
    service = one(objects, "Service", "kprof-operator-alerts")
    assert [(p["name"], p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [("alerts", 8082, "alerts")]
    assert {p["name"]: p["containerPort"] for p in container["ports"]}["alerts"] == 8082


def test_the_alert_receiver_with_a_secret_of_ones_own_and_tls():
    objects = scenario("alerts-own-secret-tls")
    assert find(objects, "Secret") == []
    parsed = parse_kprof_args(operator_container(objects)["args"])
    assert parsed.alerts_addr == ":9443"
    assert parsed.alerts_match_labels == [("service", "app.kubernetes.io/name")]
    assert (parsed.alerts_pod_label, parsed.alerts_max) == ("kubernetes_pod_name", 5000)
    volume, file = mounted_file(objects, "--alerts-token-file")
    assert (volume["secret"]["secretName"], file) == ("alertmanager-token", "bearer")
    for flag, name in (("--alerts-tls-cert-file", "tls.crt"), ("--alerts-tls-key-file", "tls.key")):
        volume, file = mounted_file(objects, flag)
        assert (volume["secret"]["secretName"], file) == ("kprof-alerts-tls", name)
    assert one(objects, "Service", "kprof-operator-alerts")["spec"]["ports"][0]["port"] == 9443


def test_the_alert_receiver_needs_a_token():
    result = helm("template", "kprof", OPERATOR_CHART, "--set", "alerts.enabled=true", check=False)
    assert result.returncode != 0
    assert "alerts.enabled needs the bearer token: alerts.token.existingSecret" in result.stderr


def test_the_alert_receiver_is_the_operators_not_the_node_agents():
    sets = ["--set", "alerts.enabled=true", "--set", "alerts.token.value=t", "--set", "mode=node"]
    result = helm("template", "kprof", OPERATOR_CHART, *sets, check=False)
    assert result.returncode != 0
    assert "alerts.enabled needs mode=operator" in result.stderr


def test_notes_show_the_alertmanager_receiver_config():
    result = helm(
        "install", "kprof", OPERATOR_CHART, "-n", "kprof-system", "--dry-run=client", *_sets("alerts-own-secret-tls")
    )
    notes = result.stdout.split("NOTES:", 1)[1]
    url = "https://kprof-operator-alerts.kprof-system.svc:9443/alertmanager/webhook"
    assert f"served on {url}" in notes
    snippet = re.search(r"\n(     receivers:\n.*?)\n\n", notes, re.S)
    assert snippet, notes
    [receiver] = yaml.safe_load(snippet.group(1))["receivers"]
    [webhook] = receiver["webhook_configs"]
    assert webhook["url"] == url and webhook["send_resolved"] is True
    assert webhook["http_config"]["authorization"]["type"] == "Bearer"
    assert "ca_file" in webhook["http_config"]["tls_config"]
    assert "Secret alertmanager-token, key bearer" in notes


def _sets(name: str) -> list[str]:
    return [arg for assignment in SCENARIOS[name] for arg in ("--set", assignment)]


def test_notes_tell_what_to_do_next_with_a_valid_example():
    result = helm("install", "kprof", OPERATOR_CHART, "-n", "kprof-system", "--dry-run=client")
    notes = result.stdout.split("NOTES:", 1)[1]
    for expected in (
        "kubectl -n kprof-system get pods",
        "ProfilingConfig",
        "/var/lib/kprof/profiles",
        "/metrics",
        "jaeger.enabled",
    ):
        assert expected in notes
    example = re.search(r"<<'YAML' \| kubectl apply -f -\n(.*?)\n\s*YAML\n", notes, re.S)
    assert example, notes
    lines = example.group(1).splitlines()
    indent = min(len(line) - len(line.lstrip()) for line in lines if line.strip())
    validate_object(yaml.safe_load("\n".join(line[indent:] for line in lines)))


def test_notes_point_at_jaeger_when_it_is_deployed():
    result = helm(
        "install", "kprof", OPERATOR_CHART, "-n", "obs", "--dry-run=client", "--set", "tracing.jaeger.enabled=true"
    )
    assert "port-forward svc/kprof-operator-jaeger 16686" in result.stdout


def test_the_chart_version_follows_the_package():
    chart = yaml.safe_load((OPERATOR_CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["appVersion"] == __version__


# --- the sidecar library chart ------------------------------------------------------------------


@pytest.fixture(scope="module")
def example_chart(tmp_path_factory) -> Path:
    """The example chart with its dependency built, in a copy of the tree so the checkout stays clean."""
    root = tmp_path_factory.mktemp("charts")
    shutil.copytree(SIDECAR_CHART, root / "helm/kprof-sidecar")
    chart = root / "examples/sidecar-chart"
    shutil.copytree(EXAMPLE_CHART, chart, ignore=shutil.ignore_patterns("charts", "Chart.lock"))
    helm("dependency", "build", chart)
    assert (chart / "charts/kprof-sidecar-0.1.0.tgz").is_file()
    return chart


def sidecar_of(objects):
    pod = one(objects, "Deployment")["spec"]["template"]
    containers = {c["name"]: c for c in pod["spec"]["containers"]}
    return pod, containers["kprof-sidecar"], containers


def test_the_library_chart_lints():
    helm("lint", "--strict", SIDECAR_CHART)
    assert yaml.safe_load((SIDECAR_CHART / "Chart.yaml").read_text())["type"] == "library"


def test_the_library_default_image_is_this_version():
    chart = yaml.safe_load((SIDECAR_CHART / "Chart.yaml").read_text())
    defaults = (SIDECAR_CHART / "templates/_config.tpl").read_text()
    assert chart["appVersion"] == __version__
    assert f'tag: "{__version__}"' in defaults


def test_the_example_chart_lints(example_chart):
    helm("lint", "--strict", example_chart)


def test_the_example_chart_renders_the_sidecar_per_the_contract(example_chart):
    objects = documents(helm("template", "sample", example_chart, "-n", "demo").stdout)
    for obj in objects:
        validate_object(obj)
    check_pod_wiring(objects)
    pod, sidecar, containers = sidecar_of(objects)
    assert pod["spec"]["shareProcessNamespace"] is True
    assert pod["metadata"]["annotations"]["profiling.io/enabled"] == "true"
    assert pod["metadata"]["annotations"]["profiling.io/port"] == "6060"
    parsed = parse_kprof_args(sidecar["args"])
    assert (parsed.command, parsed.app_container, parsed.app_process) == ("sidecar", "app", "sample-app")
    assert parsed.health_addr == f":{sidecar['ports'][0]['containerPort']}"
    env = env_of(sidecar)
    field_refs = {
        name: e["valueFrom"]["fieldRef"]["fieldPath"] for name, e in env.items() if "fieldRef" in e.get("valueFrom", {})
    }
    assert field_refs == {
        "KPROF_POD_NAME": "metadata.name",
        "KPROF_POD_NAMESPACE": "metadata.namespace",
        "KPROF_POD_IP": "status.podIP",
        "KPROF_POD_UID": "metadata.uid",
    }
    resource_refs = {
        name: e["valueFrom"]["resourceFieldRef"]
        for name, e in env.items()
        if "resourceFieldRef" in e.get("valueFrom", {})
    }
    assert resource_refs == {
        "KPROF_APP_CPU_REQUEST": {"containerName": "app", "resource": "requests.cpu", "divisor": "1m"},
        "KPROF_APP_CPU_LIMIT": {"containerName": "app", "resource": "limits.cpu", "divisor": "1m"},
        "KPROF_APP_MEMORY_REQUEST": {"containerName": "app", "resource": "requests.memory", "divisor": "1"},
        "KPROF_APP_MEMORY_LIMIT": {"containerName": "app", "resource": "limits.memory", "divisor": "1"},
    }
    values = {name: e["value"] for name, e in env.items() if "value" in e}
    assert values["KPROF_APP_CONTAINER"] == "app" and "app" in containers
    assert values["KPROF_CONFIG_FILE"] == "/etc/kprof/config.yaml"
    assert values["KPROF_PODINFO_DIR"] == "/etc/kprof/podinfo"
    assert values["KPROF_SPOOL_DIR"] == "/var/lib/kprof/spool"
    assert values["KPROF_LOCAL_DIR"] == "/var/lib/kprof/profiles"
    mounts = {m["mountPath"]: m["name"] for m in sidecar["volumeMounts"]}
    assert set(mounts) == {"/etc/kprof", "/var/lib/kprof", "/tmp"}
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    sources = volumes[mounts["/etc/kprof"]]["projected"]["sources"]
    config_map = one(objects, "ConfigMap")
    assert sources[0]["configMap"] == {
        "name": config_map["metadata"]["name"],
        "items": [{"key": "config.yaml", "path": "config.yaml"}],
    }
    assert sources[1]["downwardAPI"]["items"] == [
        {"path": "podinfo/labels", "fieldRef": {"fieldPath": "metadata.labels"}},
        {"path": "podinfo/annotations", "fieldRef": {"fieldPath": "metadata.annotations"}},
    ]
    assert "emptyDir" in volumes[mounts["/var/lib/kprof"]] and "emptyDir" in volumes[mounts["/tmp"]]
    security = sidecar["securityContext"]
    assert security["runAsUser"] == 65532 and security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]} and security["allowPrivilegeEscalation"] is False
    assert sidecar["resources"] == {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}}
    assert not pod["spec"].get("automountServiceAccountToken", True)
    spec = yaml.safe_load(config_map["data"]["config.yaml"])
    validate_spec(spec)
    assert spec["onDemand"] == {"enabled": True, "intervalSeconds": 600}


def test_the_example_chart_with_other_values(example_chart, tmp_path):
    values = tmp_path / "values.yaml"
    values.write_text(
        yaml.safe_dump(
            {
                "kprof": {
                    # null removes a key of the example's values.yaml (Helm merges values files).
                    "spec": {
                        "thresholds": None,
                        "profileTypes": None,
                        "cpuProfileSeconds": None,
                        "s3Config": {"bucket": "team-profiles"},
                    },
                    "configMapName": "my-kprof-config",
                    "awsRegion": "eu-central-1",
                    "tracing": {"otlpEndpoint": "http://collector.observability:4318"},
                    "storageSizeLimit": "",
                    "resources": {"limits": {"memory": "256Mi"}},
                    "extraEnv": [{"name": "EXTRA", "value": "1"}],
                }
            }
        )
    )
    objects = documents(helm("template", "sample", example_chart, "-f", values).stdout)
    for obj in objects:
        validate_object(obj)
    check_pod_wiring(objects)
    pod, sidecar, _ = sidecar_of(objects)
    config_map = one(objects, "ConfigMap")
    assert config_map["metadata"]["name"] == "my-kprof-config"
    # A spec given replaces the default one: no thresholds sneak in.
    assert yaml.safe_load(config_map["data"]["config.yaml"]) == {
        "onDemand": {"enabled": True, "intervalSeconds": 600},
        "s3Config": {"bucket": "team-profiles"},
    }
    env = env_of(sidecar)
    assert env["AWS_REGION"]["value"] == "eu-central-1"
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"] == "http://collector.observability:4318"
    assert env["EXTRA"]["value"] == "1"
    # Maps other than spec merge with the defaults.
    assert sidecar["resources"] == {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "256Mi"}}
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["kprof-data"]["emptyDir"] == {}
    before = documents(helm("template", "sample", example_chart).stdout)
    checksum = "checksum/kprof-config"
    assert pod["metadata"]["annotations"][checksum] != sidecar_of(before)[0]["metadata"]["annotations"][checksum]


def test_the_container_template_says_what_is_missing(example_chart, tmp_path):
    broken = tmp_path / "chart"
    shutil.copytree(example_chart, broken)
    deployment = broken / "templates/deployment.yaml"
    deployment.write_text(deployment.read_text().replace('"appContainer" "app" ', ""))
    result = helm("template", "sample", broken, check=False)
    assert result.returncode != 0
    assert "pass appContainer" in result.stderr

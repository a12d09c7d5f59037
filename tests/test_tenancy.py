"""A namespaced ProfilingConfig reaches pods of its own namespace and destinations the installer
allows, no further (planning.tenancy, applied by the operator's check runner); the `kprof run`
flags and the chart's values that set what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from kprof_lib.planning import tenancy
from kprof_lib.runtimes import cli
from tests.support.manifests import documents, helm, parse_kprof_args
from tests.support.pods import ENABLED, pod
from tests.test_operator_units import ON_DEMAND, Harness

ON_DEMAND_SPEC = {"onDemand": {"enabled": True, "intervalSeconds": 300}, "profileTypes": ["heap"]}
OPERATOR_CHART = Path(__file__).resolve().parent.parent / "helm/kprof-operator"
S3 = {"bucket": "team-a-profiles", "region": "eu-west-1"}
MINIO = {"bucket": "shared", "endpoint": "http://minio.minio:9000", "region": "us-east-1"}


def pods() -> list[dict]:
    return [pod("app-1", "team-a", annotations=ENABLED), pod("app-1", "team-b", annotations=ENABLED)]


def captured(outcome) -> list[str]:
    return sorted(f"{r.namespace}/{r.pod}" for r in outcome.report.execution.results if r.status == "captured")


def test_a_config_without_a_namespace_selects_only_its_own(tmp_path):
    h = Harness(tmp_path, ON_DEMAND_SPEC, pods(), [], namespace="team-a")

    outcome = h.run(ON_DEMAND)

    assert outcome.result == "ok", outcome.message
    assert captured(outcome) == ["team-a/app-1"]


def test_a_config_naming_another_namespace_is_invalid(tmp_path):
    spec = {**ON_DEMAND_SPEC, "selector": {"namespace": "team-b"}}
    h = Harness(tmp_path, spec, pods(), [], namespace="team-a")

    outcome = h.run(ON_DEMAND)

    assert outcome.result == "invalid"
    valid = h.condition("Valid")
    assert (valid["status"], valid["reason"]) == ("False", "InvalidSpec")
    assert "spec.selector.namespace: 'team-b' is not this config's namespace ('team-a')" in valid["message"]
    [(_, event_type, reason, _message)] = h.events.recorded
    assert (event_type, reason) == ("Warning", "InvalidConfig")


def test_namespaces_the_installer_names_may_select_cluster_wide(tmp_path):
    policy = tenancy.Policy.of(cluster_wide_namespaces=["kprof-system"])
    everywhere = Harness(tmp_path, ON_DEMAND_SPEC, pods(), [], namespace="kprof-system", policy=policy)
    elsewhere = Harness(
        tmp_path, {**ON_DEMAND_SPEC, "selector": {"namespace": "team-b"}}, pods(), [],
        namespace="kprof-system", policy=policy,
    )

    assert captured(everywhere.run(ON_DEMAND)) == ["team-a/app-1", "team-b/app-1"]
    assert captured(elsewhere.run(ON_DEMAND)) == ["team-b/app-1"]


@pytest.mark.parametrize(
    ("s3", "field", "destination"),
    [
        (S3, "spec.s3Config.bucket", "s3://team-a-profiles"),
        (MINIO, "spec.s3Config.endpoint", "http://minio.minio:9000/shared"),
    ],
)
def test_a_destination_the_installer_did_not_allow_is_invalid(tmp_path, s3, field, destination):
    h = Harness(tmp_path, {**ON_DEMAND_SPEC, "s3Config": s3}, pods(), [], namespace="team-a")

    outcome = h.run(ON_DEMAND)

    assert outcome.result == "invalid"
    message = h.condition("Valid")["message"]
    assert f"{field}: destination {destination} is not allowed by the operator (allowed: local)" in message
    assert outcome.report is None, "nothing was captured"


def test_allowed_destinations_are_matched_normalised(tmp_path):
    policy = tenancy.Policy.of(destinations=["s3://team-a-profiles", "HTTP://Minio.minio:9000/shared/"])
    for s3 in (S3, MINIO, {**MINIO, "endpoint": "http://minio.minio:9000/"}):
        h = Harness(tmp_path, {**ON_DEMAND_SPEC, "s3Config": s3}, pods(), [], namespace="team-a", policy=policy)
        assert h.run(ON_DEMAND).result == "ok", s3
    other = Harness(
        tmp_path, {**ON_DEMAND_SPEC, "s3Config": {**S3, "bucket": "team-b-profiles"}}, pods(), [],
        namespace="team-a", policy=policy,
    )
    assert other.run(ON_DEMAND).result == "invalid"
    # Without "local" in the list, the operator's own volume is refused too.
    local = Harness(tmp_path, ON_DEMAND_SPEC, pods(), [], namespace="team-a", policy=policy)
    assert local.run(ON_DEMAND).result == "invalid"
    assert "spec.s3Config: destination local is not allowed" in local.condition("Valid")["message"]


@pytest.mark.parametrize("bad", ["s3://", "s3://a/b", "ftp://x/b", "http://minio:9000", "bucket"])
def test_a_malformed_destination_flag_is_a_usage_error(bad, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.build_parser().parse_args(["run", "--allowed-destination", bad])
    assert exit_.value.code == 2
    assert "--allowed-destination" in capsys.readouterr().err


def test_run_flags_default_to_own_namespace_and_local_only():
    args = cli.build_parser().parse_args(["run"])
    assert (args.cluster_wide_namespaces, args.allowed_destinations) == ([], None)
    args = cli.build_parser().parse_args(
        ["run", "--cluster-wide-namespaces", "kprof-system,ops", "--allowed-destination", "s3://x",
         "--allowed-destination", "local"]
    )
    assert (args.cluster_wide_namespaces, args.allowed_destinations) == (["kprof-system", "ops"], ["s3://x", "local"])


def test_the_chart_passes_the_tenancy_values_as_flags():
    def args(*sets: str) -> list[str]:
        rendered = helm("template", "kprof", OPERATOR_CHART, *[f"--set={s}" for s in sets]).stdout
        [deployment] = [d for d in documents(rendered) if d["kind"] == "Deployment"]
        container_args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        parse_kprof_args(container_args)
        return container_args

    default = args()
    assert "--allowed-destination=local" in default
    assert not any(a.startswith("--cluster-wide-namespaces") for a in default)
    custom = args("tenancy.clusterWideNamespaces={kprof-system,ops}",
                  "tenancy.allowedDestinations={s3://profiles,http://minio.minio:9000/shared}")
    assert "--cluster-wide-namespaces=kprof-system,ops" in custom
    assert "--allowed-destination=s3://profiles" in custom
    assert "--allowed-destination=http://minio.minio:9000/shared" in custom
    assert "--allowed-destination=local" not in custom

"""The operator's optional `pgo` section: its schema and defaults, what a namespaced config may
name, the "pgo" job it schedules, and the runs themselves (`operator.pgojobs.PgoWriter`, as the
operator calls it) writing `<prefix>/pgo/<namespace>/<workload>/default.pgo` and `summary.json`
from captures `kprof capture` stored from the real Go sample app, in a local directory and in
moto's S3, and replacing them on the next run."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from kprof_lib.planning import tenancy
from kprof_lib.profiles import decode
from kprof_lib.runtimes import wiring
from kprof_lib.runtimes.operator.pgojobs import PgoWriter
from kprof_lib.runtimes.operator.scheduling import PGO, JobPlan, Run, plan_jobs
from kprof_lib.spec import validation
from kprof_lib.spec.errors import SpecError
from kprof_lib.spec.model import Pgo
from tests.profiles_support import kprof

WORKLOADS = [{"namespace": "shop", "name": "checkout"}]


def test_pgo_is_off_unless_enabled_and_has_defaults():
    assert validation.validate_spec({"pgo": {"workloads": WORKLOADS}}).pgo is None
    assert validation.validate_spec({}).pgo is None
    spec = validation.validate_spec({"pgo": {"enabled": True, "workloads": WORKLOADS}})
    assert spec.pgo == Pgo((("shop", "checkout"),), interval=86400, days=7, reasons=("on-demand",))
    assert plan_jobs({"pgo": {"enabled": True, "workloads": WORKLOADS, "intervalSeconds": 7200}}) == JobPlan(
        30, None, 7200
    )
    assert plan_jobs({"pgo": {"workloads": WORKLOADS}}) == JobPlan(30, None, None)


def test_bad_pgo_sections_name_the_field():
    with pytest.raises(SpecError) as caught:
        validation.validate_spec(
            {"pgo": {"enabled": True, "workloads": [{"namespace": "shop"}], "days": 0, "reasons": ["whenever"]}}
        )
    paths = {problem["path"] for problem in caught.value.errors}
    assert paths == {"spec.pgo.workloads[0].name", "spec.pgo.days", "spec.pgo.reasons[0]"}
    spec = validation.validate_spec(
        {"pgo": {"enabled": True, "workloads": [*WORKLOADS, {"namespace": "bank", "name": "x"}]}}
    )
    with pytest.raises(SpecError) as caught:
        tenancy.scope(spec, "shop", tenancy.Policy())
    [problem] = caught.value.errors
    assert problem["path"] == "spec.pgo.workloads[1].namespace"
    assert "'bank' is not this config's namespace ('shop')" in problem["message"]
    assert tenancy.scope(spec, "shop", tenancy.Policy.of(["shop"])) is not None


def _config(spec: dict, namespace: str = "local") -> dict:
    return {"metadata": {"namespace": namespace, "name": "pgo", "uid": "u1"}, "spec": spec}


def _run(now: dt.datetime) -> Run:
    return Run("local/pgo", PGO, now, "u1", 1, lambda: False)


def _writer(config: dict, stores: wiring.Stores, policy: tenancy.Policy | None = None) -> PgoWriter:
    return PgoWriter(configs=lambda key: config, stores=stores, is_leader=lambda: True, policy=policy)


def test_pgo_runs_write_and_replace_the_workloads_profile_in_a_local_directory(stored_captures, tmp_path):
    store = stored_captures.copy(tmp_path / "store")
    workload = stored_captures.workload
    workloads = [{"namespace": "local", "name": workload}, {"namespace": "local", "name": "cart"}]
    writer = _writer(_config({"pgo": {"enabled": True, "workloads": workloads}}), wiring.Stores(local_dir=store))
    now = dt.datetime.now(dt.UTC)

    first, missing = writer(_run(now))
    folder = store / "pgo" / "local" / workload
    assert first.uri == (folder / "default.pgo").as_uri() and first.error is None
    merged = decode((folder / "default.pgo").read_bytes())
    assert merged.total(1) > 0
    assert merged.total(1) == sum(decode(p.read_bytes()).total(1) for p in store.glob("local/*/*/cpu.pprof"))
    summary = json.loads((folder / "summary.json").read_text())
    assert (summary["namespace"], summary["workload"], summary["profiles"]) == ("local", workload, 2)
    assert summary["reasons"] == ["on-demand"] and summary["top"][0]["name"]
    assert missing.uri is None and "for namespace local, workload cart" in missing.error
    assert not (store / "pgo" / "local" / "cart").exists()

    # The next run replaces both files (the stores never overwrite a profile, but these are documents).
    later = now + dt.timedelta(hours=1)
    again, _ = writer(_run(later))
    assert again.error is None
    assert json.loads((folder / "summary.json").read_text())["writtenAt"] == later.strftime("%Y-%m-%dT%H:%M:%SZ")
    # A window without captures keeps the last profile.
    empty, _ = writer(_run(now + dt.timedelta(days=30)))
    assert "no CPU captures" in empty.error and (folder / "default.pgo").exists()
    # `kprof ls` lists the captures, not the merged profile's summary.
    listed = kprof("ls", str(store), "-o", "json")
    assert listed.returncode == 0, listed.stderr
    assert len(json.loads(listed.stdout)) == 2


def test_pgo_runs_write_to_the_configs_bucket(stored_captures, s3, s3_bucket):
    cpu_keys = stored_captures.upload(s3, s3_bucket, "prod")
    workload = stored_captures.workload
    spec = {
        "pgo": {"enabled": True, "workloads": [{"namespace": "local", "name": workload}]},
        "s3Config": {"bucket": s3_bucket, "endpoint": s3.endpoint_url, "prefix": "prod"},
    }
    writer = _writer(_config(spec), wiring.Stores(local_dir="/nonexistent"), tenancy.Policy.of(destinations=["*"]))
    now = dt.datetime.now(dt.UTC)
    for _ in range(2):  # the second run replaces the first's objects
        [written] = writer(_run(now))
        assert written.uri == f"s3://{s3_bucket}/prod/pgo/local/{workload}/default.pgo", written.error
        summary = json.loads(s3.body(s3_bucket, f"prod/pgo/local/{workload}/summary.json"))
        assert summary["profiles"] == 2
    merged = decode(s3.body(s3_bucket, f"prod/pgo/local/{workload}/default.pgo"))
    assert merged.total(1) == sum(decode(s3.body(s3_bucket, key)).total(1) for key in cpu_keys) > 0


def test_the_operator_writes_the_profile_a_config_on_the_real_api_server_asks_for(
    control_plane, kprof_release, stored_captures, tmp_path
):
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    from tests.operator_support import OperatorThread, profiling_config, wait_until

    namespace = control_plane.new_namespace("kprof-pgo")
    custom = client.CustomObjectsApi(control_plane.api())
    workload = stored_captures.workload
    spec = {
        "selector": {"namespace": namespace},
        "pgo": {"enabled": True, "workloads": [{"namespace": "local", "name": workload}], "intervalSeconds": 3600},
    }
    # The CRD (the chart's, generated from the schema) carries the section and its limits.
    with pytest.raises(ApiException) as refused:
        bad = {**spec, "pgo": {**spec["pgo"], "days": 0}}
        custom.create_namespaced_custom_object(
            "profiling.io", "v1alpha1", namespace, "profilingconfigs", profiling_config("bad", namespace, bad)
        )
    assert refused.value.status == 422 and "spec.pgo.days" in refused.value.body
    custom.create_namespaced_custom_object(
        "profiling.io", "v1alpha1", namespace, "profilingconfigs", profiling_config("pgo", namespace, spec)
    )
    stored_captures.copy(tmp_path / "profiles")
    runner = OperatorThread(
        control_plane.kubeconfig,
        tmp_path,
        namespace=namespace,
        leader_elect=False,
        cluster_wide_namespaces=(namespace,),
    ).start()
    try:
        profile = tmp_path / "profiles" / "pgo" / "local" / workload / "default.pgo"
        wait_until(lambda: (profile.parent / "summary.json").exists(), 60, "no default.pgo written")
        assert runner.operator.scheduler.jobs(f"{namespace}/pgo")["pgo"]["interval"] == 3600
    finally:
        assert runner.stop()
    cpu = sorted((tmp_path / "profiles" / "local").rglob("cpu.pprof"))
    assert decode(profile.read_bytes()).total(1) == sum(decode(p.read_bytes()).total(1) for p in cpu) > 0
    assert json.loads((profile.parent / "summary.json").read_text())["profiles"] == 2

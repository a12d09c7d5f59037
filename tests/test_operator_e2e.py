"""The operator end to end: the real `kprof run` as a subprocess against the real control plane
(tests.support.controlplane), the real Go sample app as the pods' processes (pod IP 127.0.0.1,
annotation profiling.io/port; their CPU reaches the real metrics-server through the node agent),
moto's S3 server and an OTLP receiver.

One operator run covers several configs at once, each in its own namespace: a threshold breach
in "shop" (S3), on-demand captures every 30 s in "batch" (S3) and an invalid spec in "broken". Its
tests read what that run left behind: S3 objects, status, Events, spans, metrics, the requests the
API server's audit log records. Then the operator is stopped with SIGTERM and started again, and
the cooldown must hold.

The API faults scenario (500s, cut watches, 410 at a chosen moment) runs an in-process `Operator`
through the front of the same control plane (tests/kube_emulator): a real API server cannot be
made to fail that way here.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from kprof_lib.adapters.kube.history import configmap_name
from tests.kube_emulator import Fault
from tests.operator_support import (
    OperatorProcess,
    OperatorThread,
    allow_s3,
    aws_environment,
    condition,
    create_config,
    delete_config,
    events_about,
    history_of,
    lease_holder,
    metric_value,
    profiling_config,
    run_profiled_pod,
    s3_config,
    set_usage,
    status_of,
    tracing_environment,
    wait_until,
)
from tests.support.controlplane import ControlPlane
from tests.support.goapp import GoApp, run_go_tool_pprof
from tests.support.otlp import OTLPReceiver
from tests.support.s3server import S3Server

SHOP_CONFIG = "checkout-threshold"
BATCH_CONFIG = "continuous"
BROKEN_CONFIG = "too-eager"
ON_DEMAND_INTERVAL = 30  # the schema's minimum


@dataclasses.dataclass(frozen=True)
class Request:
    """One request the operator made, from the API server's audit log."""

    verb: str
    path: str
    query: dict[str, str]


def requests_of(plane: ControlPlane, username: str) -> list[Request]:
    made = []
    for event in plane.audit(username):
        parts = urlsplit(event["requestURI"])
        made.append(Request(event["verb"], parts.path, dict(parse_qsl(parts.query))))
    return made


def operator_identity(plane: ControlPlane, namespace: str, path: Path) -> tuple[Path, str]:
    """A ServiceAccount in `namespace` with the chart's ClusterRole (cluster-wide) and its own
    namespace's rights (Lease, history, Events): a kubeconfig with its token, and its username, by
    which the audit log names its requests."""
    from kubernetes import client

    api = plane.api()
    rbac_api = client.RbacAuthorizationV1Api(api)
    client.CoreV1Api(api).create_namespaced_service_account(namespace, {"metadata": {"name": "operator"}})
    subjects = [{"kind": "ServiceAccount", "name": "operator", "namespace": namespace}]
    rbac_api.create_cluster_role_binding(
        {
            "metadata": {"name": f"kprof-e2e-{namespace}"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": subjects,
        }
    )
    return plane.token_kubeconfig(namespace, "operator", path), f"system:serviceaccount:{namespace}:operator"


def decisions(operator: OperatorProcess, pod: str) -> list[dict[str, Any]]:
    """The operator's per-pod decision lines (kprof.check) about `namespace/pod`."""
    return operator.find_logs(lambda r: r.get("logger") == "kprof.check" and r.get("pod") == pod)


# The shared run ---------------------------------------------------------------------------------


@dataclasses.dataclass
class FirstRun:
    plane: ControlPlane
    api: Any
    s3: S3Server
    bucket: str
    receiver: OTLPReceiver
    operator: OperatorProcess
    restarted: OperatorProcess
    metrics_text: str
    exit_code: int
    holder_after_exit: str | None
    shop_objects: list[dict[str, Any]]
    shop_documents: list[dict[str, Any]]
    batch_first: list[dict[str, Any]]
    batch_both: list[dict[str, Any]]
    batch_history: list[dict[str, dict[str, str]]]
    shop_objects_after_restart: list[dict[str, Any]]
    batch_objects_after_restart: list[dict[str, Any]]
    requests: list[Request]
    tmp: Path


def profiles_of(objects: list[dict[str, Any]], suffix: str | tuple[str, ...] = ".pprof") -> list[dict[str, Any]]:
    return [o for o in objects if o["key"].endswith(suffix)]


@pytest.fixture(scope="module")
def first_run(
    control_plane: ControlPlane,
    kprof_release: Any,
    s3_server: S3Server,
    sample_app_binary: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[FirstRun]:
    tmp = tmp_path_factory.mktemp("operator-e2e")
    s3_server.up()
    bucket = s3_server.new_bucket("kprof-e2e")
    with GoApp(sample_app_binary) as shop_app, GoApp(sample_app_binary) as batch_app:
        receiver = OTLPReceiver()
        operators: list[OperatorProcess] = []
        try:
            yield _first_run(control_plane, s3_server, bucket, receiver, shop_app, batch_app, tmp, operators)
        finally:
            for operator in operators:
                operator.close()
            receiver.stop()


def _first_run(plane, s3, bucket, receiver, shop_app, batch_app, tmp, operators) -> FirstRun:
    """The namespaces have fixed names ("shop", "batch", "broken"): no other test of the session's
    control plane uses them. The operator's own namespace (Lease, history) is a fresh one."""
    from kubernetes import client

    api = plane.api()
    core = client.CoreV1Api(api)
    for name in ("shop", "batch", "broken"):
        core.create_namespace({"metadata": {"name": name}})
    operator_namespace = plane.new_namespace("kprof-e2e")
    kubeconfig, username = operator_identity(plane, operator_namespace, tmp / "kubeconfig")
    custom = client.CustomObjectsApi(api)

    def create_config(name: str, namespace: str, spec: dict[str, Any]) -> None:
        custom.create_namespaced_custom_object(
            "profiling.io", "v1alpha1", namespace, "profilingconfigs", profiling_config(name, namespace, spec)
        )

    create_config(
        SHOP_CONFIG,
        "shop",
        {
            "selector": {"namespace": "shop", "labelSelector": {"matchLabels": {"tier": "backend"}}},
            "thresholds": {
                "cpuThresholdPercent": 80,
                "memoryThresholdPercent": 90,
                "checkIntervalSeconds": 10,
                "cooldownSeconds": 600,
            },
            "profileTypes": ["cpu", "heap"],
            "cpuProfileSeconds": 2,
            "s3Config": s3_config(s3, bucket, "prod"),
        },
    )
    create_config(
        BATCH_CONFIG,
        "batch",
        {
            "selector": {"namespace": "batch"},
            "onDemand": {"enabled": True, "intervalSeconds": ON_DEMAND_INTERVAL},
            "profileTypes": ["heap", "goroutine"],
            "s3Config": {**s3_config(s3, bucket, "continuous"), "keyLayout": "service-date"},
        },
    )
    # Valid for the CRD (which refuses what the schema refuses), not for the operator: a label
    # selector value may not hold a space.
    create_config(
        BROKEN_CONFIG,
        "broken",
        {
            "selector": {"labelSelector": {"matchLabels": {"app": "two words"}}},
            "thresholds": {"cpuThresholdPercent": 50},
            "s3Config": s3_config(s3, bucket, "broken"),
        },
    )

    def run_pod(namespace: str, name: str, app: GoApp, labels: dict[str, str], cpu: str) -> None:
        # Memory requests far above the apps' use: only CPU can cross a threshold.
        annotations = {"profiling.io/enabled": "true", "profiling.io/port": str(app.port)}
        requests = {"cpu": cpu, "memory": "64Gi"}
        plane.run_pod(
            namespace, name, port=app.port, pid=app.pid, labels=labels, annotations=annotations, requests=requests
        )

    # The breach is real: the app burns CPU (one core) and holds memory while the operator profiles
    # it; metrics-server reports that process for each of the shop's pods.
    shop_app.load(cpu_seconds=150, workers=1, mem_mib=48, hold=150)
    batch_app.load(cpu_seconds=0.3, workers=1, wait=True)  # metrics-server drops a pod with no CPU time
    # shop: one backend pod over its CPU requests, one under (it asks for 64 cores), one frontend pod
    # (not selected) over.
    run_pod("shop", "checkout-1", shop_app, {"app": "checkout", "tier": "backend"}, "100m")
    run_pod("shop", "checkout-2", shop_app, {"app": "checkout", "tier": "backend"}, "64")
    run_pod("shop", "web-1", shop_app, {"app": "web", "tier": "frontend"}, "100m")
    run_pod("batch", "reports-1", batch_app, {"app": "reports"}, "100m")
    run_pod("broken", "quiet-1", shop_app, {"app": "two words".replace(" ", "-")}, "100m")
    plane.wait_for_metrics_api()

    env = {**aws_environment(tmp), **tracing_environment(receiver, "kprof-operator-e2e")}
    args = ["--namespace", operator_namespace, *allow_s3(s3, bucket)]
    operator = OperatorProcess(kubeconfig, tmp / "first", env=env, args=args, name="first operator")
    operators.append(operator)
    operator.wait_ready()

    def objects(prefix: str, count: int, timeout: float, suffix: str = ".pprof") -> list[dict[str, Any]]:
        """The profiles under `prefix` (or, with another suffix, the captures' documents)."""
        return wait_until(
            lambda: (found := profiles_of(s3.objects(bucket, prefix), suffix)) and len(found) >= count and found,
            timeout,
            lambda: (
                f"{count} object(s) under {prefix} expected, got {s3.objects(bucket, prefix)}:\n{operator.output()}"
            ),
        )

    # metrics-server has a CPU rate after two scrapes, 10 s apart.
    shop_objects = objects("prod/", 2, 90)
    shop_documents = objects("prod/", 2, 90, suffix=("summary.json", "index.html"))
    batch_first = objects("continuous/", 2, 60)
    first_history = history_of(plane, operator_namespace, f"batch/{BATCH_CONFIG}")
    batch_both = objects("continuous/", 4, ON_DEMAND_INTERVAL + 30)
    second_history = history_of(plane, operator_namespace, f"batch/{BATCH_CONFIG}")
    wait_until(
        lambda: condition(status_of(api, "broken", BROKEN_CONFIG), "Valid").get("status") == "False",
        30,
        "the invalid config never got Valid=False",
    )
    metrics_text = operator.get("metrics", "/metrics")[1]
    exit_code = operator.terminate()
    holder_after_exit = lease_holder(api, operator_namespace)

    # Started again with the breach still there: the history it reads says "cooldown".
    restarted = OperatorProcess(
        kubeconfig, tmp / "restarted", env=env, args=["--log-level", "debug", *args], name="restarted operator"
    )
    operators.append(restarted)
    restarted.wait_ready()
    restarted.wait_for_log(
        lambda r: r.get("logger") == "kprof.check" and r.get("pod") == "shop/checkout-1",
        60,
        "a decision about shop/checkout-1 after the restart",
    )
    restarted.wait_for_log(
        lambda r: r.get("action") == "check" and r.get("config") == f"shop/{SHOP_CONFIG}",
        30,
        "the end of the first check after the restart",
    )
    result = FirstRun(
        plane=plane,
        api=api,
        s3=s3,
        bucket=bucket,
        receiver=receiver,
        operator=operator,
        restarted=restarted,
        metrics_text=metrics_text,
        exit_code=exit_code,
        holder_after_exit=holder_after_exit,
        shop_objects=shop_objects,
        shop_documents=shop_documents,
        batch_first=batch_first,
        batch_both=batch_both,
        batch_history=[first_history, second_history],
        shop_objects_after_restart=profiles_of(s3.objects(bucket, "prod/")),
        batch_objects_after_restart=profiles_of(s3.objects(bucket, "continuous/")),
        requests=requests_of(plane, username),
        tmp=tmp,
    )
    restarted.terminate()
    return result


# Threshold breach -------------------------------------------------------------------------------


def test_a_threshold_breach_stores_real_cpu_and_heap_profiles_in_s3(first_run):
    objects = first_run.shop_objects
    assert [o["key"].rsplit("/", 1)[1] for o in objects] == ["cpu.pprof", "heap.pprof"], objects
    for obj in objects:
        namespace_, pod, stamp, _ = obj["key"].split("/")[1:]
        assert (obj["key"].split("/")[0], namespace_, pod) == ("prod", "shop", "checkout-1")
        assert dt.datetime.strptime(stamp, "%Y%m%dT%H%M%S.%fZ")
        profile_type = obj["key"].rsplit("/", 1)[1].removesuffix(".pprof")
        assert obj["metadata"]["namespace"] == "shop"
        assert obj["metadata"]["pod"] == "checkout-1"
        assert obj["metadata"]["service"] == "checkout"
        assert obj["metadata"]["reason"] == "cpu-threshold"
        assert obj["metadata"]["profile-type"] == profile_type
        assert len(obj["metadata"]["trace-id"]) == 32
        assert obj["tags"]["tier"] == "backend"
        assert obj["content_type"] == "application/octet-stream"

    # Real pprof data: the CPU profile shows the load the app was put under.
    cpu_key = objects[0]["key"]
    cpu_file = first_run.tmp / "cpu.pprof"
    cpu_file.write_bytes(first_run.s3.body(first_run.bucket, cpu_key))
    assert gzip.decompress(cpu_file.read_bytes())
    top = run_go_tool_pprof("-top", str(cpu_file))
    assert top.returncode == 0, top.stderr
    assert "main.burnCPU" in top.stdout, top.stdout
    heap_file = first_run.tmp / "heap.pprof"
    heap_file.write_bytes(first_run.s3.body(first_run.bucket, objects[1]["key"]))
    heap_top = run_go_tool_pprof("-top", "-sample_index=inuse_space", str(heap_file))
    assert heap_top.returncode == 0 and "main.allocateHeld" in heap_top.stdout, heap_top.stdout


def test_only_the_selected_pod_over_its_threshold_is_captured(first_run):
    pods = {o["metadata"]["pod"] for o in first_run.shop_objects_after_restart}
    assert pods == {"checkout-1"}, "checkout-2 is under its threshold and web-1 is not selected"
    # The restarted operator logs every decision (debug): the reasons the others were left alone.
    assert {r["reason"] for r in decisions(first_run.restarted, "shop/checkout-2")} == {"below-threshold"}
    assert {r["reason"] for r in decisions(first_run.restarted, "shop/web-1")} == {"label-mismatch"}
    # The label selector went to metrics-server: one LIST per check of the namespace, no GET per pod.
    metric_lists = [r for r in first_run.requests if r.path == "/apis/metrics.k8s.io/v1beta1/namespaces/shop/pods"]
    assert metric_lists and all(r.query.get("labelSelector") == "tier=backend" for r in metric_lists)
    per_pod = [r for r in first_run.requests if r.verb == "get" and "/pods/" in r.path and "/proxy" not in r.path]
    assert per_pod == []


def test_status_counters_and_conditions_move(first_run):
    shop = status_of(first_run.api, "shop", SHOP_CONFIG)
    assert (shop["totalProfiles"], shop["totalUploads"], shop["activePods"]) == (2, 2, 2)
    assert shop["observedGeneration"] == 1
    assert dt.datetime.fromisoformat(shop["lastCheckTime"])
    assert condition(shop, "Ready")["status"] == "True"
    assert condition(shop, "Valid")["status"] == "True"
    # The latest capture, what was hot in it, and where it is.
    last = shop["lastCapture"]
    folder = first_run.shop_objects[0]["key"].rsplit("/", 1)[0] + "/"
    assert (last["pod"], last["reason"], last["uri"]) == ("shop/checkout-1", "cpu-threshold", f"s3://{first_run.bucket}/{folder}")
    assert last["time"] == first_run.shop_objects[0]["metadata"]["captured-at"]
    assert sorted(last["topFunctions"]) == ["cpu", "heap"] and last["topFunctions"]["heap"][0]["name"] == "main.allocateHeld"
    batch = status_of(first_run.api, "batch", BATCH_CONFIG)
    assert (batch["totalProfiles"], batch["totalUploads"], batch["activePods"]) == (4, 4, 1)


def test_events_say_where_profiles_went(first_run):
    events = events_about(first_run.api, "shop", "checkout-1")
    captured = [e for e in events if e.reason == "ProfileCaptured"]
    assert len(captured) == 1 and captured[0].type == "Normal", [(e.reason, e.message) for e in events]
    # What was hot, and the capture's folder: its profiles, summary.json and index.html.
    folder = first_run.shop_objects[0]["key"].rsplit("/", 1)[0] + "/"
    pattern = (
        r"cpu-threshold \(\d+% of request\): \S+ \d+%(, \S+ \d+%)* — "
        + re.escape(f"s3://{first_run.bucket}/{folder} (config shop/{SHOP_CONFIG}; profiles: cpu, heap)")
    )
    assert re.fullmatch(pattern, captured[0].message), captured[0].message
    assert sorted(o["key"] for o in first_run.shop_documents) == [folder + "index.html", folder + "summary.json"]
    summary = json.loads(first_run.s3.body(first_run.bucket, folder + "summary.json"))
    assert summary["capture"]["uri"] == f"s3://{first_run.bucket}/{folder}" and summary["capture"]["usage"]["cpuPercent"]
    assert summary["profiles"]["heap"]["sampleTypes"]["inuse_space"]["topFlat"][0]["name"] == "main.allocateHeld"
    assert captured[0].involved_object.kind == "Pod"
    assert events_about(first_run.api, "shop", "checkout-2") == []


def test_spans_arrive_and_lead_from_the_stored_profile_to_its_trace(first_run):
    receiver = first_run.receiver
    captures = receiver.wait_for(
        lambda s: s.name == "kprof.capture" and s.attributes.get("k8s.pod.name") == "checkout-1", count=2, timeout=15
    )
    check = next(s for s in receiver.by_name("kprof.check") if s.trace_id == captures[0].trace_id)
    assert check.attributes["kprof.config"] == f"shop/{SHOP_CONFIG}"
    assert check.resource["service.name"] == "kprof-operator-e2e"
    children = {s.name for s in receiver.children_of(check)}
    assert {"kprof.metrics", "kprof.capture", "kprof.upload"} <= children
    assert {o["metadata"]["trace-id"] for o in first_run.shop_objects} == {check.trace_id}
    uploads = [s for s in receiver.by_name("kprof.upload") if s.trace_id == check.trace_id]
    assert sorted(s.attributes["url.full"] for s in uploads) == sorted(
        f"s3://{first_run.bucket}/{o['key']}" for o in first_run.shop_objects
    )


def test_metrics_count_checks_captures_and_uploads(first_run):
    text = first_run.metrics_text
    shop = f"shop/{SHOP_CONFIG}"
    assert metric_value(text, "kprof_checks_total", config=shop, result="ok") >= 1
    assert metric_value(text, "kprof_checks_total", config=f"broken/{BROKEN_CONFIG}", result="invalid") >= 1
    assert metric_value(text, "kprof_captures_total", type="cpu", reason="cpu-threshold", result="stored") == 1
    assert metric_value(text, "kprof_captures_total", type="heap", reason="on-demand", result="stored") == 2
    assert metric_value(text, "kprof_uploads_total", result="stored") == 6
    assert metric_value(text, "kprof_capture_duration_seconds_count", type="cpu") == 1
    assert metric_value(text, "kprof_active_pods", config=shop) == 2
    assert metric_value(text, "kprof_threshold_violations_total", config=shop, resource="cpu") >= 1
    assert metric_value(text, "kprof_leader") == 1
    assert "kprof_spool_bytes 0.0" in text
    assert 'kprof_watch_restarts_total{resource="pods"}' in text


def test_logs_are_one_json_line_per_decision_and_action(first_run):
    operator = first_run.operator
    assert operator.other_output == [], "everything the operator prints is a JSON log line"
    [decision] = [r for r in decisions(operator, "shop/checkout-1") if r["action"] == "capture"]
    assert {k: decision[k] for k in ("level", "config", "pod", "action", "reason")} == {
        "level": "info",
        "config": f"shop/{SHOP_CONFIG}",
        "pod": "shop/checkout-1",
        "action": "capture",
        "reason": "cpu-threshold",
    }
    stored = operator.find_logs(lambda r: r.get("action") == "stored" and r.get("pod") == "shop/checkout-1")
    assert sorted(r["profile"] for r in stored) == ["cpu", "heap"]
    assert all({"ts", "level", "logger", "msg"} <= set(r) for r in operator.logs)


# On demand --------------------------------------------------------------------------------------


def test_on_demand_captures_at_its_interval(first_run):
    first, both = first_run.batch_first, first_run.batch_both
    assert len(first) == 2 and len(both) == 4
    for obj in both:
        prefix, _date, service, namespace, pod, leaf = obj["key"].split("/")
        assert (prefix, service, namespace, pod) == ("continuous", "reports", "batch", "reports-1")
        assert obj["metadata"]["reason"] == "on-demand"
        assert leaf.endswith(("-heap.pprof", "-goroutine.pprof"))
    # The history records each run's scheduled time: exactly one interval apart.
    [before], [after] = first_run.batch_history[0].values(), first_run.batch_history[1].values()
    t0 = dt.datetime.fromisoformat(before["lastOnDemandCapture"])
    t1 = dt.datetime.fromisoformat(after["lastOnDemandCapture"])
    assert t1 - t0 == dt.timedelta(seconds=ON_DEMAND_INTERVAL)
    # Two runs, two sets of objects: the second run added to the first, nothing was overwritten.
    assert {o["key"] for o in first} < {o["key"] for o in both}


# Invalid config ---------------------------------------------------------------------------------


def test_an_invalid_config_is_reported_and_the_others_keep_working(first_run):
    status = status_of(first_run.api, "broken", BROKEN_CONFIG)
    valid, ready = condition(status, "Valid"), condition(status, "Ready")
    assert valid["status"] == "False" and valid["reason"] == "InvalidSpec"
    assert "spec.selector.labelSelector" in valid["message"] and "two words" in valid["message"]
    assert ready["status"] == "False"
    [event] = [e for e in events_about(first_run.api, "broken", BROKEN_CONFIG) if e.reason == "InvalidConfig"]
    assert event.type == "Warning" and "spec.selector.labelSelector" in event.message
    assert event.involved_object.kind == "ProfilingConfig"
    # Its pod is over every threshold, yet nothing was captured for it; the other configs worked.
    assert first_run.s3.objects(first_run.bucket, "broken/") == []
    assert first_run.shop_objects and first_run.batch_both


# SIGTERM and restart ----------------------------------------------------------------------------


def test_sigterm_exits_0_and_releases_the_lease(first_run):
    assert first_run.exit_code == 0, first_run.operator.output()
    assert first_run.holder_after_exit == "", "the Lease is handed over at once, not left to expire"
    stopped = first_run.operator.find_logs(lambda r: r.get("action") == "stopped")
    assert stopped and stopped[-1]["clean"] is True


def test_cooldown_and_the_on_demand_interval_hold_across_a_restart(first_run):
    restarted = first_run.restarted
    assert first_run.shop_objects_after_restart == first_run.shop_objects
    assert {r["reason"] for r in decisions(restarted, "shop/checkout-1")} == {"cooldown"}
    # The on-demand job resumes where the history says the pod is due, not at once.
    schedule = restarted.wait_for_log(
        lambda r: (
            r.get("action") == "schedule"
            and r.get("config") == f"batch/{BATCH_CONFIG}"
            and "on-demand" in r.get("jobs", {})
        ),
        5,
        "the on-demand schedule",
    )
    [last] = first_run.batch_history[1].values()
    due = dt.datetime.fromisoformat(last["lastOnDemandCapture"]) + dt.timedelta(seconds=ON_DEMAND_INTERVAL)
    assert dt.datetime.fromisoformat(schedule["jobs"]["on-demand"]["first"]) >= due
    assert len(first_run.batch_objects_after_restart) == len(first_run.batch_both)


def test_sigterm_cuts_the_capture_in_flight_when_the_grace_period_is_over(
    kube_front, control_plane, kprof_release, s3, s3_bucket, go_app, tmp_path
):
    jobs, operator_namespace = control_plane.new_namespace("jobs"), control_plane.new_namespace("kprof-op")
    kubeconfig = kube_front.write_kubeconfig(tmp_path / "kubeconfig")
    spec = {
        "onDemand": {"enabled": True, "intervalSeconds": 300},
        "profileTypes": ["cpu"],
        "cpuProfileSeconds": 30,
        "s3Config": s3_config(s3, s3_bucket, "jobs"),
    }
    create_config(control_plane, "slow-cpu", jobs, spec)
    run_profiled_pod(control_plane, jobs, "worker-1", go_app.port)
    operator = OperatorProcess(
        kubeconfig,
        tmp_path / "op",
        env=aws_environment(tmp_path),
        args=[*allow_s3(s3, s3_bucket), "--grace-period", "1", "--namespace", operator_namespace],
        name="operator",
    )
    try:
        operator.wait_for_log(
            lambda r: r.get("action") == "capture" and r.get("pod") == f"{jobs}/worker-1", 30, "the capture decision"
        )
        time.sleep(1.0)
        sent = time.monotonic()
        exit_code = operator.terminate()
        took = time.monotonic() - sent
        assert exit_code == 0, operator.output()
        # The grace period, the cut, the Lease released: seconds, not the profile's 30.
        assert took < 6.0, f"{took:.1f} s\n{operator.output()}"
        assert s3.objects(s3_bucket, "jobs/") == []
        assert operator.find_logs(lambda r: r.get("reason") == "grace-period-over"), operator.output()
        [stopped] = operator.find_logs(lambda r: r.get("action") == "stopped")
        assert stopped["clean"] is True, operator.output()
        assert lease_holder(control_plane.api(), operator_namespace) == ""
    finally:
        operator.close()
        delete_config(control_plane, "slow-cpu", jobs)


# API faults -------------------------------------------------------------------------------------


def test_the_operator_recovers_from_api_faults_and_misses_nothing(
    kube_front, control_plane, kprof_release, go_app, tmp_path
):
    from kubernetes import client

    faulty, operator_namespace = control_plane.new_namespace("faulty"), control_plane.new_namespace("kprof-op")
    kubeconfig = kube_front.write_kubeconfig(tmp_path / "kubeconfig")
    create_config(
        control_plane, "guard", faulty, {"thresholds": {"checkIntervalSeconds": 10, "cooldownSeconds": 600},
                                         "profileTypes": ["heap"]}
    )
    run_profiled_pod(control_plane, faulty, "before-1", go_app.port)
    set_usage(kube_front, faulty, "before-1", "300m", "10Mi")
    runner = OperatorThread(kubeconfig, tmp_path, leader_elect=False, namespace=operator_namespace)
    profiles = tmp_path / "profiles" / faulty
    key = f"{faulty}/guard"
    try:
        runner.start()
        wait_until(lambda: (profiles / "before-1").exists(), 30, "the capture before the faults")
        # Its history is written after its profiles: the faults must not cut that write (a history
        # not saved means one capture too many, by design).
        wait_until(
            lambda: f"{faulty}/before-1" in history_of(control_plane, operator_namespace, key),
            30,
            "the history of the capture before the faults",
        )

        # The API breaks: every pod LIST and WATCH answers 500, the open watches are cut, the next
        # metrics LIST fails, and the resourceVersions seen so far expire (resuming from one answers
        # 410 Gone).
        outage = kube_front.faults.add(Fault(path=r"^/api/v1/pods$", status=500, count=None))
        kube_front.faults.add(Fault(path=r"^/apis/metrics\.k8s\.io/", status=500, count=1))
        kube_front.stop()
        kube_front.start()
        run_profiled_pod(control_plane, faulty, "during-1", go_app.port)
        set_usage(kube_front, faulty, "during-1", "300m", "10Mi")
        kube_front.compact()
        wait_until(lambda: outage.hits >= 2, 20, "the operator retrying through the outage")
        kube_front.faults.remove(outage)
        # Once back, the first watch is dropped before any event as well.
        kube_front.faults.add(Fault(path=r"^/api/v1/pods$", drop_after_events=0, count=1))

        wait_until(
            lambda: (profiles / "during-1").exists(),
            60,
            lambda: f"the pod created during the outage was never captured:\n{runner.metrics()}",
        )
        metrics = runner.metrics()
        assert metric_value(metrics, "kprof_watch_restarts_total", resource="pods") >= 2
        assert runner.operator.pods.relists >= 1, "the 410 Gone led to a new LIST"
        assert metric_value(metrics, "kprof_checks_total", config=key, result="error") >= 1
        status = wait_until(
            lambda: (
                (s := status_of(control_plane.api(), faulty, "guard"))
                and condition(s, "Ready").get("status") == "True"
                and s
            ),
            30,
            "Ready again after the failed check",
        )
        assert status["totalProfiles"] == 2

        # Deleting the config removes its jobs and its history.
        assert history_of(control_plane, operator_namespace, key)
        delete_config(control_plane, "guard", faulty)
        wait_until(lambda: runner.operator.scheduler.keys().count(key) == 0, 10, "the jobs of the deleted config")
        core = client.CoreV1Api(control_plane.api())
        name = configmap_name(key)
        wait_until(
            lambda: not core.list_namespaced_config_map(operator_namespace, field_selector=f"metadata.name={name}").items,
            10,
            "the history of the deleted config",
        )
    finally:
        runner.stop()


# A destination that cannot take profiles ---------------------------------------------------------


def test_a_bucket_that_does_not_exist_is_reported_in_status_not_at_every_capture(
    kube_front, control_plane, kprof_release, s3, go_app, tmp_path
):
    jobs, operator_namespace = control_plane.new_namespace("jobs"), control_plane.new_namespace("kprof-op")
    kubeconfig = kube_front.write_kubeconfig(tmp_path / "kubeconfig")
    spec = {
        "thresholds": {"checkIntervalSeconds": 10},
        "onDemand": {"enabled": True, "intervalSeconds": 30},
        "profileTypes": ["heap"],
        "s3Config": s3_config(s3, "no-such-bucket", "jobs"),
    }
    create_config(control_plane, "lost", jobs, spec)
    run_profiled_pod(control_plane, jobs, "worker-1", go_app.port)
    runner = OperatorThread(
        kubeconfig,
        tmp_path,
        leader_elect=False,
        namespace=operator_namespace,
        allowed_destinations=(f"{s3.endpoint_url}/no-such-bucket",),
    )
    try:
        runner.start()
        status = wait_until(
            lambda: (
                (s := status_of(control_plane.api(), jobs, "lost"))
                and condition(s, "Ready").get("status") == "False"
                and s
            ),
            30,
            "Ready=False for the missing bucket",
        )
        message = condition(status, "Ready")["message"]
        assert "spec.s3Config.bucket" in message and "the bucket does not exist" in message, message
        assert status.get("totalProfiles", 0) == 0
        # The next checks fail at once too, and nothing is captured into the void.
        wait_until(
            lambda: metric_value(runner.metrics(), "kprof_checks_total", config=f"{jobs}/lost", result="error") >= 2,
            30,
            "a second check",
        )
        assert metric_value(runner.metrics(), "kprof_captures_total", type="heap", reason="on-demand",
                            result="failed") == 0
    finally:
        runner.stop()
        delete_config(control_plane, "lost", jobs)

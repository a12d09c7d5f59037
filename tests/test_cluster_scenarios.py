"""Operator scenarios that need the real control plane's behaviour, not an emulation of it: two
replicas electing one leader on a real Lease and a `kill -9` hand-over; a watch that expires after
etcd compaction (the API server's watch cache off, as a restart of it cuts the watch) and the
relist that follows; the proxy transport through the real API server's pods/proxy to a Go app in
a network namespace of the test's own, and the RBAC grant that transport needs.
"""

from __future__ import annotations

import time

import pytest

from kprof_lib.spec import schemas
from kprof_lib.spec.crd import build_crd
from tests.operator_support import (
    OperatorProcess,
    http_get,
    lease_holder,
    metric_value,
    profiling_config,
    s3_config,
    wait_until,
)
from tests.support import chart, cluster_scenario
from tests.support.cluster_scenario import (
    Run,
    capture_complete,
    captured,
    create_configs,
    delete_configs,
    identity_without,
    new_tag,
    reports_forbidden,
)
from tests.support.controlplane import ControlPlane
from tests.support.netns import NetworkNamespace

LEASE_FLAGS = ("--lease-duration", "6", "--renew-deadline", "4", "--retry-period", "1")
LEASE_DURATION = 6


@pytest.fixture(scope="module")
def workload(control_plane, kprof_release, sample_app_binary, s3_server):
    apps: list = []
    try:
        yield cluster_scenario.start_workload(control_plane, sample_app_binary, s3_server, apps)
    finally:
        for app in apps:
            app.stop()


@pytest.fixture(scope="module")
def chart_kubeconfig(control_plane, kprof_release, tmp_path_factory):
    folder = tmp_path_factory.mktemp("chart-identity")
    return control_plane.token_kubeconfig(kprof_release.namespace, kprof_release.service_account, folder / "sa")


@pytest.mark.parametrize(
    ("line", "refused"),
    [
        ('{"msg": "GET /api/v1/pods: 403 Forbidden"}', True),
        ('{"msg": "pods is forbidden: User cannot list"}', True),
        ('{"msg": "(403)"}', True),
        ('{"msg": "listening", "address": "127.0.0.1:40325"}', False),
        ('{"ts": "2026-12-01T21:43:31.403Z", "msg": "reject"}', False),
        ('{"msg": "took 0.403 s"}', False),
        ('{"msg": "stored", "detail": "s3://kprof-nodes-9f403b2/a", "bytes": 403}', False),
        ('{"msg": "refused", "status": 403}', True),
    ],
)
def test_a_log_line_reports_a_refusal_only_for_a_403_or_forbidden(line, refused):
    assert reports_forbidden(line) is refused


def leaders(replicas) -> list:
    return [r for r in replicas if r.find_logs(lambda x: x.get("action") == "leader-elected")]


def checks_by(replica, config_key: str) -> list:
    return replica.find_logs(lambda r: r.get("logger") == "kprof.check" and r.get("config") == config_key)


def test_two_replicas_capture_once_and_a_kill_9_hands_over(
    control_plane, kprof_release, workload, chart_kubeconfig, tmp_path
):
    lease = f"ha-{new_tag()}"
    replicas = [
        cluster_scenario.operator_process(
            chart_kubeconfig,
            tmp_path / f"replica-{i}",
            workload,
            kprof_release.namespace,
            lease,
            *LEASE_FLAGS,
            "--log-level",
            "debug",
            name=f"replica {i}",
            entrypoint=entrypoint,
        )
        # Both entry points: the `kprof run` script and the image's operator_main.py.
        for i, entrypoint in ((1, "kprof"), (2, "operator_main"))
    ]
    first = Run(new_tag(), replicas[0], workload, kprof_release.namespace)
    second = Run(new_tag(), replicas[1], workload, kprof_release.namespace)
    try:
        create_configs(first)
        wait_until(
            lambda: len(captured(first)) >= len(workload.opted),
            60,
            lambda: "\n".join(r.output() for r in replicas),
            0.5,
        )
        [leader] = leaders(replicas)
        standby = next(r for r in replicas if r is not leader)
        assert checks_by(standby, f"{workload.namespace}/{first.config}") == [], "the standby checked too"
        assert "standing by" in standby.wait_ready()
        assert metric_value(standby.get("metrics", "/metrics")[1], "kprof_leader") == 0
        assert metric_value(leader.get("metrics", "/metrics")[1], "kprof_leader") == 1
        leader.kill()
        killed_at = time.monotonic()
        standby.wait_for_log(lambda r: r.get("action") == "leader-elected", 3 * LEASE_DURATION, "the takeover")
        took_over = time.monotonic() - killed_at
        # A new crossing after the hand-over: the new leader captures it, once.
        create_configs(second)
        wait_until(lambda: len(captured(second)) >= len(workload.opted), 60, standby.output, 0.5)
        # The check after the capture: every pod in cooldown, so nothing is captured twice.
        second_key = f"{workload.namespace}/{second.config}"
        wait_until(
            lambda: {d.get("pod") for d in checks_by(standby, second_key) if d.get("reason") == "cooldown"}
            >= {f"{workload.namespace}/{pod}" for pod in workload.opted},
            30,
            standby.output,
            0.5,
        )
        assert len(captured(first)) == len(captured(second)) == len(workload.opted)
        # The first crossing is in the history the new leader reads: cooldown, no second capture.
        decisions = checks_by(standby, f"{workload.namespace}/{first.config}")
        assert decisions and {d["reason"] for d in decisions} == {"cooldown"}
        assert took_over <= LEASE_DURATION + 2 * 1 + 1, f"takeover took {took_over:.1f}s"
        assert standby.terminate() == 0
    finally:
        for replica in replicas:
            replica.close()
        delete_configs(first)
        delete_configs(second)


def test_sigterm_lets_the_capture_in_progress_finish(
    control_plane, kprof_release, workload, chart_kubeconfig, tmp_path
):
    from kubernetes import client

    tag = new_tag()
    config = f"slow-{tag}"
    spec = {
        "selector": {"namespace": workload.namespace, "labelSelector": {"matchLabels": {"app": "busy"}}},
        "onDemand": {"enabled": True, "intervalSeconds": 300},
        "profileTypes": ["cpu"],
        "cpuProfileSeconds": 4,
        "s3Config": s3_config(workload.s3, workload.bucket, tag),
    }
    custom = client.CustomObjectsApi(control_plane.api())
    group = ("profiling.io", "v1alpha1", workload.namespace, "profilingconfigs")
    custom.create_namespaced_custom_object(*group, profiling_config(config, workload.namespace, spec))
    lease = f"term-{tag}"
    operator = cluster_scenario.operator_process(
        chart_kubeconfig, tmp_path / "op", workload, kprof_release.namespace, lease
    )
    try:
        decision = operator.wait_for_log(
            lambda r: r.get("action") == "capture" and r.get("config") == f"{workload.namespace}/{config}",
            60,
            "a capture decision",
        )
        pod = decision["pod"].split("/")[1]
        # A decision is logged before its fetch starts; the signal must come while the profile is
        # being taken, which only the target itself can tell.
        wait_until(workload.apps[pod].serving_cpu_profile, 15, operator.output, 0.05)
        assert operator.terminate() == 0, operator.output()
        stored = [o for o in workload.s3.objects(workload.bucket, f"{tag}/") if o["key"].endswith(".pprof")]
        assert [o for o in stored if f"/{pod}/" in o["key"]], f"nothing stored for {pod}:\n{operator.output()}"
        assert all(o["key"].endswith("/cpu.pprof") and o["size"] > 0 for o in stored)
        actions = [r.get("action") for r in operator.logs]
        assert actions.index("stored") < actions.index("stopped")
        assert lease_holder(control_plane.api(), kprof_release.namespace, lease) == ""
    finally:
        operator.close()
        custom.delete_namespaced_custom_object(*group, config)


def test_kprof_run_without_leader_election_serves_health_and_metrics(control_plane, kprof_release, tmp_path):
    operator = OperatorProcess(
        control_plane.kubeconfig,
        tmp_path / "op",
        args=["--no-leader-elect", "--namespace", kprof_release.namespace],
        name="kprof run",
    )
    try:
        operator.wait_ready()
        status, body = operator.get("health", "/healthz")
        assert (status, body.strip()) == (200, "ok")
        status, body = operator.get("health", "/readyz")
        assert status == 200 and "leader election off" in body
        status, text = operator.get("metrics", "/metrics")
        assert status == 200 and metric_value(text, "kprof_leader") == 1
        assert http_get(operator.address("metrics") + "/nothing-here")[0] == 404
        assert operator.terminate() == 0
    finally:
        operator.close()


# Watch expiry -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def uncached_plane(tmp_path_factory):
    plane = ControlPlane(tmp_path_factory.mktemp("uncached-plane"), watch_cache=False)
    plane.start()
    try:
        from kubernetes import client

        client.ApiextensionsV1Api(plane.api()).create_custom_resource_definition(
            build_crd(schemas.load("profilingconfig"))
        )
        chart.wait_established(plane)
        yield plane
    finally:
        plane.stop()


def test_watch_expiry_after_compaction_relists_and_a_new_pod_is_captured(
    uncached_plane, sample_app_binary, s3_server, tmp_path
):
    plane = uncached_plane
    apps: list = []
    try:
        workload = cluster_scenario.start_workload(plane, sample_app_binary, s3_server, apps, pods=("busy-1",))
        # The process of the pod added after the relist runs from the start, and the node agent
        # reports it as the kubelet would report a container it runs: by the time its pod is
        # created, metrics-server has scraped it twice (a CPU rate), as for any pod running a while.
        late_app = cluster_scenario.GoApp(sample_app_binary)
        apps.append(late_app)
        late_app.load(cpu_seconds=0.3, workers=1, wait=True)
        assert plane.agent is not None
        plane.agent.add(workload.namespace, "late-1", "app", late_app.pid)
        operator_namespace = plane.new_namespace("operator")
        run = Run(new_tag(), None, workload, operator_namespace)  # type: ignore[arg-type]
        run.operator = cluster_scenario.operator_process(
            plane.kubeconfig,
            tmp_path / "op",
            workload,
            operator_namespace,
            run.lease,
            "--lease-duration",
            "60",
            "--renew-deadline",
            "40",
            "--log-level",
            "debug",
        )
        try:
            create_configs(run)
            wait_until(lambda: capture_complete(run), 60, run.operator.output, 0.5)
            before = len(run.operator.output_lines())
            # More writes, so that etcd's revision passes the last pod event the informer holds...
            plane.new_namespace("bump")
            revision = plane.compact()
            # ...and a restart cuts its watch: resumed from that resourceVersion, it is 410 Gone.
            plane.restart_apiserver()
            expired = wait_until(
                lambda: [
                    line
                    for line in run.operator.output_lines()[before:]
                    if "/api/v1/pods: " in line and "listing again" in line
                ],
                60,
                lambda: f"no relist of pods after compacting to {revision}:\n{run.operator.output()}",
            )
            plane.run_pod(
                workload.namespace,
                "late-1",
                port=late_app.port,
                pid=late_app.pid,
                labels={"app": "busy"},
                annotations={"profiling.io/enabled": "true", "profiling.io/port": str(late_app.port)},
                requests={"cpu": "1", "memory": "1Mi"},
            )
            wait_until(
                lambda: [o for o in captured(run) if "/late-1/" in o["key"]],
                90,
                lambda: f"the pod added after the relist was not captured:\n{run.operator.output()}",
                0.5,
            )
            # The informer's own words for a 410: the resourceVersion it resumed from is gone.
            assert any("410" in line or "too old" in line or "xpired" in line for line in expired), expired
        finally:
            run.operator.close()
            delete_configs(run)
    finally:
        for app in apps:
            app.stop()


# The proxy transport ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def proxied_workload(control_plane, kprof_release, sample_app_binary, s3_server, tmp_path_factory):
    folder = tmp_path_factory.mktemp("netns")
    with NetworkNamespace() as netns:
        app = netns.start_app(sample_app_binary, folder)
        try:
            app.load(cpu_seconds=0.3, workers=1, wait=True)
            namespace = control_plane.new_namespace("proxied")
            control_plane.run_pod(
                namespace,
                "remote-1",
                port=app.port,
                pod_ip=netns.ip,
                pid=app.pid,
                labels={"app": "busy"},
                annotations={"profiling.io/enabled": "true", "profiling.io/port": str(app.port)},
                requests={"cpu": "1", "memory": "1Mi"},
            )
            s3_server.up()
            workload = cluster_scenario.Workload(
                control_plane,
                namespace,
                {"remote-1": app},
                s3_server,
                s3_server.new_bucket("kprof-proxy"),
                opted=("remote-1",),
            )
            control_plane.wait_for_metrics_api()
            wait_until(
                lambda: workload.metrics_ready(["remote-1"]), 60, "metrics for the pod in the network namespace", 1.0
            )
            yield workload
        finally:
            app.stop()


def proxy_run(workload, kubeconfig, tmp_path, operator_namespace):
    return cluster_scenario.scenario(workload, kubeconfig, tmp_path, operator_namespace, "--transport", "proxy")


def test_the_proxy_transport_reaches_the_app_through_pods_proxy(
    proxied_workload, kprof_release, chart_kubeconfig, tmp_path, control_plane
):
    from kubernetes import client

    # The API server proxies to the pod IP in the namespace; the test reaches it the same way.
    answer = control_plane.api().call_api(
        f"/api/v1/namespaces/{proxied_workload.namespace}/pods/remote-1:{proxied_workload.apps['remote-1'].port}/proxy/healthz",
        "GET",
        auth_settings=["BearerToken"],
        _preload_content=False,
        _return_http_data_only=True,
    )
    assert answer.data == b"ok"
    with proxy_run(proxied_workload, chart_kubeconfig, tmp_path, kprof_release.namespace) as run:
        wait_until(lambda: capture_complete(run), 60, run.operator.output, 0.5)
        assert run.forbidden() == []
        [obj] = captured(run)
        assert obj["key"].endswith(["", "remote-1/heap.pprof"][1]) or "remote-1" in obj["key"]
    assert (
        client.CoreV1Api(control_plane.api())
        .read_namespaced_pod("remote-1", proxied_workload.namespace)
        .status.pod_ip.startswith("198.1")
    )


def test_without_pods_proxy_the_proxy_transport_fails_naming_the_permission(
    proxied_workload, control_plane, kprof_release, tmp_path
):
    kubeconfig, namespace = identity_without(
        control_plane, kprof_release, "ClusterRole", ("", "pods/proxy", "get"), tmp_path
    )
    with proxy_run(proxied_workload, kubeconfig, tmp_path, namespace) as run:
        line = wait_until(
            lambda: [line for line in run.operator.output_lines() if "pods/proxy" in line and reports_forbidden(line)],
            60,
            run.operator.output,
            0.5,
        )
        assert not captured(run), line

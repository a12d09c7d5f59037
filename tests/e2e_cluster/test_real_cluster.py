"""The operator's end-to-end scenarios against a real Kubernetes API server: the cluster named by
KPROF_E2E_KUBECONFIG (kind or any kubeconfig) when it is set, otherwise the project's own control
plane (tests.support.controlplane: etcd, kube-apiserver and metrics-server built from their Go
modules), which is what CI runs every time.

With a cluster of your own it needs (docs/OPERATOR.md shows the kind commands): metrics-server
serving metrics.k8s.io; the sample app's image (examples/sample-app) loadable by its nodes, named by
KPROF_E2E_SAMPLE_IMAGE (default kprof/sample-app:latest); the kubeconfig's user may create
namespaces, pods, CRDs and ProfilingConfigs. The operator runs on this machine as `kprof run
--kubeconfig`, reaching the pods through the API server (KPROF_E2E_TRANSPORT, default
portforward, since pod IPs are rarely routable from outside). On the project's control plane there
is no kubelet: the pods' processes are the sample app run on this machine (pod IP 127.0.0.1, the
node agent reports their CPU and memory to metrics-server) and the transport is direct
(port-forward needs a kubelet; tests/test_capture_via_api.py covers it through the front of
tests/kube_emulator). Profiles go to the moto S3 server on
127.0.0.1. Each run works in a namespace of its own (kprof-e2e-<random>), which also holds the
operator's Lease and history; on a cluster of your own it is deleted afterwards.

The same scenarios as tests/test_operator_e2e.py where a real API server allows them: a threshold
breach (real CPU load, real metrics-server figures) stores CPU and heap profiles with the right
key and metadata, moves the status counters and records an Event; an invalid config is reported
while the others work; on-demand captures at its interval; SIGTERM exits 0 and releases the
Lease; the cooldown holds across a restart; of two operators one captures and the other takes
over after a kill without capturing again. API faults (500, dropped watches) cannot be caused on
demand in a real cluster and are covered through the front of tests/kube_emulator only.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kprof_lib.adapters.kube import connection
from kprof_lib.adapters.kube.history import configmap_name
from kprof_lib.spec import schemas
from kprof_lib.spec.crd import build_crd
from tests.operator_support import (
    OperatorProcess,
    allow_s3,
    aws_environment,
    condition,
    events_about,
    s3_config,
    status_of,
    wait_until,
)
from tests.support import chart
from tests.support.goapp import GoApp
from tests.support.s3server import S3Server

pytestmark = pytest.mark.e2e_cluster

# A cluster of your own; without it, the project's control plane.
KUBECONFIG = os.environ.get("KPROF_E2E_KUBECONFIG")
SAMPLE_IMAGE = os.environ.get("KPROF_E2E_SAMPLE_IMAGE", "kprof/sample-app:latest")
TRANSPORT = os.environ.get("KPROF_E2E_TRANSPORT", "portforward")
PPROF_PORT = 6060
ON_DEMAND_INTERVAL = 30
# Real clusters are slower than the project's control plane: pods pull and start, metrics-server scrapes every 15 s.
POD_START_TIMEOUT = 180
METRICS_TIMEOUT = 180


def profiles_of(objects: list[dict]) -> list[dict]:
    """The profiles among stored objects (each capture's summary.json and index.html aside)."""
    return [o for o in objects if o["key"].endswith(".pprof")]


class Cluster:
    """The cluster under test, through the kubernetes client, and the run's own namespace."""

    transport = TRANSPORT
    load_workers = 2

    def __init__(self, kubeconfig: str):
        self.kubeconfig = Path(kubeconfig)
        self.api = connection.api_client(kubeconfig)
        self.core = client.CoreV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)
        self.namespace = f"kprof-e2e-{uuid.uuid4().hex[:6]}"

    def ensure_crd(self) -> None:
        crd = build_crd(schemas.load("profilingconfig"))
        extensions = client.ApiextensionsV1Api(self.api)
        try:
            extensions.create_custom_resource_definition(crd)
        except ApiException as error:
            if error.status != 409:
                raise
        wait_until(
            lambda: _established(extensions.read_custom_resource_definition(crd["metadata"]["name"])),
            60,
            "the ProfilingConfig CRD to be established",
        )

    def create_namespace(self) -> None:
        self.core.create_namespace({"metadata": {"name": self.namespace, "labels": {"kprof-e2e": "true"}}})

    def delete_namespace(self) -> None:
        try:
            self.core.delete_namespace(self.namespace)
        except ApiException as error:
            if error.status != 404:
                raise

    def create_config(self, name: str, spec: dict[str, Any]) -> None:
        body = {
            "apiVersion": "profiling.io/v1alpha1",
            "kind": "ProfilingConfig",
            "metadata": {"name": name, "namespace": self.namespace},
            "spec": spec,
        }
        self.custom.create_namespaced_custom_object(
            "profiling.io", "v1alpha1", self.namespace, "profilingconfigs", body
        )

    def start_app(self, name: str, labels: dict[str, str]) -> None:
        """The sample app as a pod that opts in, requesting 100m CPU and 64Mi memory."""
        self.core.create_namespaced_pod(
            self.namespace,
            {
                "metadata": {
                    "name": name,
                    "labels": labels,
                    "annotations": {"profiling.io/enabled": "true", "profiling.io/port": str(PPROF_PORT)},
                },
                "spec": {
                    "automountServiceAccountToken": False,
                    "containers": [
                        {
                            "name": "app",
                            "image": SAMPLE_IMAGE,
                            "imagePullPolicy": "IfNotPresent",
                            "args": ["-addr", f":{PPROF_PORT}"],
                            "ports": [{"name": "pprof", "containerPort": PPROF_PORT}],
                            "resources": {
                                "requests": {"cpu": "100m", "memory": "64Mi"},
                                "limits": {"cpu": "1", "memory": "256Mi"},
                            },
                            "readinessProbe": {"httpGet": {"path": "/healthz", "port": "pprof"}, "periodSeconds": 2},
                        }
                    ],
                },
            },
        )

    def wait_ready(self, name: str) -> None:
        def ready() -> bool:
            pod = self.core.read_namespaced_pod(name, self.namespace)
            return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or ())

        wait_until(ready, POD_START_TIMEOUT, f"pod {name} to be ready (is {SAMPLE_IMAGE} on the nodes?)", 1.0)

    def load(self, pod: str, cpu_seconds: int, mem_mib: int) -> None:
        """Drive the app's /load through the API server's pods/proxy."""
        response = self.api.call_api(
            f"/api/v1/namespaces/{self.namespace}/pods/{pod}:{PPROF_PORT}/proxy/load",
            "GET",
            query_params=[
                ("cpu", str(cpu_seconds)),
                ("workers", str(self.load_workers)),
                ("mem", str(mem_mib)),
                ("hold", str(cpu_seconds)),
            ],
            auth_settings=["BearerToken"],
            _preload_content=False,
            _return_http_data_only=True,
        )
        response.release_conn()

    def cpu_usage_millicores(self, pod: str) -> float:
        try:
            metrics = self.custom.get_namespaced_custom_object("metrics.k8s.io", "v1beta1", self.namespace, "pods", pod)
        except ApiException:
            return 0.0
        from kprof_lib.state import quantities

        return sum(quantities.parse(c["usage"]["cpu"]) for c in metrics.get("containers", [])) * 1000

    def history(self, config: str) -> dict[str, dict[str, str]]:
        try:
            configmap = self.core.read_namespaced_config_map(
                configmap_name(f"{self.namespace}/{config}"), self.namespace
            )
        except ApiException:
            return {}
        return json.loads((configmap.data or {}).get("history.json") or "{}")

    def lease_holder(self, name: str) -> str | None:
        try:
            lease = client.CoordinationV1Api(self.api).read_namespaced_lease(name, self.namespace)
        except ApiException:
            return None
        return lease.spec.holder_identity


class LocalCluster(Cluster):
    """The project's control plane: no kubelet, so each pod's process is the sample app on this
    machine, put Running at 127.0.0.1 by the test, and loaded directly."""

    transport = "direct"
    # One worker burns a whole core, ten times the 100m requested: enough, on a shared machine.
    load_workers = 1

    def __init__(self, plane: Any, binary: Path):
        super().__init__(str(plane.kubeconfig))
        self.plane = plane
        self.binary = binary
        self.apps: dict[str, GoApp] = {}

    def ensure_crd(self) -> None:
        chart.wait_established(self.plane)  # the session's helm install put it there

    def delete_namespace(self) -> None:
        # Nothing would finish the deletion (no namespace controller): stop the processes instead.
        for app in self.apps.values():
            app.stop()

    def start_app(self, name: str, labels: dict[str, str]) -> None:
        app = GoApp(self.binary)
        self.apps[name] = app
        self.plane.run_pod(
            self.namespace,
            name,
            port=app.port,
            pid=app.pid,
            labels=labels,
            annotations={"profiling.io/enabled": "true", "profiling.io/port": str(app.port)},
        )

    def wait_ready(self, name: str) -> None:
        assert self.apps[name].get("/healthz") == b"ok"

    def load(self, pod: str, cpu_seconds: int, mem_mib: int) -> None:
        self.apps[pod].load(cpu_seconds=cpu_seconds, workers=self.load_workers, mem_mib=mem_mib, hold=cpu_seconds)


def _established(crd: Any) -> bool:
    conditions = (crd.status.conditions if crd.status is not None else None) or ()
    return any(c.type == "Established" and c.status == "True" for c in conditions)


@pytest.fixture(scope="module")
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    if KUBECONFIG:
        target = Cluster(KUBECONFIG)
    else:
        request.getfixturevalue("kprof_release")
        target = LocalCluster(request.getfixturevalue("control_plane"), request.getfixturevalue("sample_app_binary"))
    target.ensure_crd()
    target.create_namespace()
    try:
        yield target
    finally:
        target.delete_namespace()
        target.api.close()


def operator(cluster: Cluster, work: Path, name: str, lease: str, *extra: str) -> OperatorProcess:
    return OperatorProcess(
        cluster.kubeconfig,
        work,
        name=name,
        env=aws_environment(work),
        args=["--namespace", cluster.namespace, "--transport", cluster.transport, "--lease-name", lease, *extra],
    )


# The shared run: threshold, on demand and an invalid config in one operator ------------------------


@pytest.fixture(scope="module")
def shared_run(cluster: Cluster, s3_server: S3Server, tmp_path_factory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("cluster-e2e")
    s3_server.up()
    bucket = s3_server.new_bucket("kprof-cluster")
    ns = cluster.namespace
    cluster.create_config(
        "threshold",
        {
            "selector": {"namespace": ns, "labelSelector": {"matchLabels": {"role": "busy"}}},
            "thresholds": {"cpuThresholdPercent": 80, "checkIntervalSeconds": 10, "cooldownSeconds": 600},
            "profileTypes": ["cpu", "heap"],
            "cpuProfileSeconds": 5,
            "s3Config": s3_config(s3_server, bucket, "threshold"),
        },
    )
    cluster.create_config(
        "continuous",
        {
            "selector": {"namespace": ns, "labelSelector": {"matchLabels": {"role": "steady"}}},
            "onDemand": {"enabled": True, "intervalSeconds": ON_DEMAND_INTERVAL},
            "profileTypes": ["heap"],
            "s3Config": s3_config(s3_server, bucket, "continuous"),
        },
    )
    # Valid for the CRD, not for the operator: the API's selector syntax has no spaces in values.
    cluster.create_config(
        "unusable",
        {
            "selector": {"namespace": ns, "labelSelector": {"matchLabels": {"role": "two words"}}},
            "thresholds": {},
        },
    )
    cluster.start_app("busy-1", {"role": "busy", "app": "busy"})
    cluster.start_app("steady-1", {"role": "steady", "app": "steady"})
    cluster.wait_ready("busy-1")
    cluster.wait_ready("steady-1")
    cluster.load("busy-1", cpu_seconds=240, mem_mib=32)
    # Started before metrics-server has a CPU rate for the load: the on-demand interval runs while
    # metrics-server scrapes, and the threshold check captures once the rate is there.
    first = operator(cluster, tmp / "first", "first operator", "kprof-e2e", *allow_s3(s3_server, bucket))
    try:
        wait_until(
            lambda: cluster.cpu_usage_millicores("busy-1") >= 100,
            METRICS_TIMEOUT,
            "metrics-server to report the load (is metrics-server installed?)",
            2.0,
        )
        threshold = wait_until(
            lambda: len(found := profiles_of(s3_server.objects(bucket, "threshold/"))) >= 2 and found,
            120,
            lambda: f"threshold profiles:\n{first.output()}",
        )
        before = wait_until(lambda: cluster.history("continuous"), 60, "the first on-demand capture")
        after = wait_until(
            lambda: (h := cluster.history("continuous")) != before and h,
            ON_DEMAND_INTERVAL + 60,
            "the second on-demand capture",
        )
        exit_code = first.terminate()
    finally:
        first.close()
    yield {
        "tmp": tmp,
        "bucket": bucket,
        "s3": s3_server,
        "threshold": threshold,
        "on_demand": (before, after),
        "exit_code": exit_code,
        "first": first,
        "holder_after_exit": cluster.lease_holder("kprof-e2e"),
    }


def test_cluster_threshold_breach_stores_cpu_and_heap_profiles(cluster, shared_run):
    objects = shared_run["threshold"]
    assert sorted(o["key"].rsplit("/", 1)[1] for o in objects) == ["cpu.pprof", "heap.pprof"]
    for obj in objects:
        assert obj["key"].startswith(f"threshold/{cluster.namespace}/busy-1/")
        assert obj["metadata"]["reason"] == "cpu-threshold"
        assert obj["metadata"]["pod"] == "busy-1" and obj["metadata"]["namespace"] == cluster.namespace
    status = status_of(cluster.api, cluster.namespace, "threshold")
    assert status["totalProfiles"] == status["totalUploads"] == 2
    assert condition(status, "Ready")["status"] == "True"
    events = [e for e in events_about(cluster.api, cluster.namespace, "busy-1") if e.reason == "ProfileCaptured"]
    assert events and all(f"s3://{shared_run['bucket']}/" in e.message for e in events)


def test_cluster_invalid_config_is_reported_and_the_others_keep_working(cluster, shared_run):
    valid = condition(status_of(cluster.api, cluster.namespace, "unusable"), "Valid")
    assert valid["status"] == "False" and "spec.selector.labelSelector" in valid["message"]
    assert [e for e in events_about(cluster.api, cluster.namespace, "unusable") if e.reason == "InvalidConfig"]
    assert shared_run["threshold"]


def test_cluster_on_demand_captures_at_its_interval(shared_run):
    before, after = shared_run["on_demand"]
    [first], [second] = before.values(), after.values()
    t0 = dt.datetime.fromisoformat(first["lastOnDemandCapture"])
    t1 = dt.datetime.fromisoformat(second["lastOnDemandCapture"])
    assert t1 - t0 == dt.timedelta(seconds=ON_DEMAND_INTERVAL)


def test_cluster_sigterm_exits_0_and_releases_the_lease(shared_run):
    assert shared_run["exit_code"] == 0, shared_run["first"].output()
    assert shared_run["holder_after_exit"] == ""


def test_cluster_cooldown_holds_across_a_restart(cluster, shared_run):
    s3, bucket = shared_run["s3"], shared_run["bucket"]
    stored = profiles_of(s3.objects(bucket, "threshold/"))
    restarted = operator(
        cluster,
        shared_run["tmp"] / "restarted",
        "restarted operator",
        "kprof-e2e",
        "--log-level",
        "debug",
        *allow_s3(s3, bucket),
    )
    try:
        # The threshold config's decision (every config checks: capture-now is on by default).
        decision = restarted.wait_for_log(
            lambda r: (
                r.get("logger") == "kprof.check"
                and r.get("pod") == f"{cluster.namespace}/busy-1"
                and r.get("config") == f"{cluster.namespace}/threshold"
            ),
            90,
            "the threshold config's decision about busy-1",
        )
        assert decision["reason"] == "cooldown"
        assert profiles_of(s3.objects(bucket, "threshold/")) == stored
        assert restarted.terminate() == 0
    finally:
        restarted.close()


def test_cluster_two_operators_one_captures_and_a_kill_hands_over_without_a_second_capture(cluster, shared_run):
    s3, bucket, tmp = shared_run["s3"], shared_run["bucket"], shared_run["tmp"]
    cluster.create_config(
        "replicated",
        {
            "selector": {"namespace": cluster.namespace, "labelSelector": {"matchLabels": {"role": "busy"}}},
            "thresholds": {"cpuThresholdPercent": 80, "checkIntervalSeconds": 10, "cooldownSeconds": 600},
            "profileTypes": ["heap"],
            "s3Config": s3_config(s3, bucket, "replicated"),
        },
    )
    cluster.load("busy-1", cpu_seconds=120, mem_mib=0)
    flags = (
        *("--lease-duration", "6", "--renew-deadline", "4", "--retry-period", "1", "--log-level", "debug"),
        *allow_s3(s3, bucket),
    )
    replicas = [operator(cluster, tmp / f"replica-{i}", f"replica {i}", "kprof-e2e-ha", *flags) for i in (1, 2)]
    try:
        wait_until(lambda: profiles_of(s3.objects(bucket, "replicated/")), 120, "the replicated config's capture")
        leaders = [r for r in replicas if r.find_logs(lambda x: x.get("action") == "leader-elected")]
        assert len(leaders) == 1
        standby = next(r for r in replicas if r is not leaders[0])
        assert standby.find_logs(lambda r: r.get("logger") == "kprof.check") == []
        leaders[0].kill()
        standby.wait_for_log(lambda r: r.get("action") == "leader-elected", 40, "the takeover")
        decision = standby.wait_for_log(
            lambda r: (
                r.get("logger") == "kprof.check"
                and r.get("config") == f"{cluster.namespace}/replicated"
                and r.get("pod") == f"{cluster.namespace}/busy-1"
            ),
            60,
            "the new leader's decision",
        )
        assert decision["reason"] == "cooldown"
        assert len(profiles_of(s3.objects(bucket, "replicated/"))) == 1
        assert standby.terminate() == 0
    finally:
        for replica in replicas:
            replica.close()

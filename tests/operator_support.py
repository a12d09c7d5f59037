"""Helpers for the operator's end-to-end tests and benchmarks: `OperatorProcess` runs the real
`kprof run` as a subprocess and reads its JSON log lines (addresses, decisions); `OperatorThread`
runs an `app.Operator` inside the test process on loopback ports with a private tracer; builders
for ProfilingConfigs and annotated pods in a real control plane, and a control plane of its own for
a benchmark; `wait_until` for bounded polling.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from tests.support.s3server import DUMMY_ACCESS_KEY_ID, DUMMY_SECRET_ACCESS_KEY
from tests.support.s3server import REGION as S3_REGION

if TYPE_CHECKING:
    from tests.kube_emulator import KubeFront
    from tests.support.controlplane import ControlPlane

REPO_ROOT = Path(__file__).resolve().parent.parent
API_VERSION = "profiling.io/v1alpha1"
OPERATOR_NAMESPACE = "kprof-system"

T = TypeVar("T")


def wait_until(probe: Callable[[], T], timeout: float, message: str | Callable[[], str], interval: float = 0.2) -> T:
    """Call `probe` until it returns something truthy and return that; AssertionError with
    `message` (or what it returns) after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(message() if callable(message) else message)
        time.sleep(interval)


# Objects ---------------------------------------------------------------------------------------


def profiling_config(name: str, namespace: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "ProfilingConfig",
        "metadata": {"name": name, "namespace": namespace},
        "spec": dict(spec),
    }


def run_profiled_pod(
    plane: ControlPlane, namespace: str, name: str, port: int, labels: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """A running pod at 127.0.0.1 that opts in, its pprof endpoint on `port`; requests 100m CPU
    and 64Mi memory, so usage of 500m is 500% of requests."""
    return plane.run_pod(
        namespace,
        name,
        port=port,
        labels=dict(labels or {"app": name.rsplit("-", 1)[0]}),
        annotations={"profiling.io/enabled": "true", "profiling.io/port": str(port)},
    )


def set_usage(front: KubeFront, namespace: str, pod: str, cpu: str, memory: str) -> None:
    """What the metrics API reports for the pod's one container ("app")."""
    front.set_pod_metrics(namespace, pod, {"app": {"cpu": cpu, "memory": memory}})


def create_config(plane: ControlPlane, name: str, namespace: str, spec: Mapping[str, Any]) -> None:
    from kubernetes import client

    client.CustomObjectsApi(plane.api()).create_namespaced_custom_object(
        "profiling.io", "v1alpha1", namespace, "profilingconfigs", profiling_config(name, namespace, spec)
    )


def delete_config(plane: ControlPlane, name: str, namespace: str) -> None:
    from kubernetes import client

    client.CustomObjectsApi(plane.api()).delete_namespaced_custom_object(
        "profiling.io", "v1alpha1", namespace, "profilingconfigs", name
    )


def create_pods(plane: ControlPlane, pods: Iterable[dict[str, Any]], threads: int = 8) -> None:
    """Pods as the API server returns them (tests.support.pods), created with their status, a few
    at a time: what the server fills in itself is left out."""
    from concurrent.futures import ThreadPoolExecutor

    from kubernetes import client

    core = client.CoreV1Api(plane.api())

    def create(pod: dict[str, Any]) -> None:
        meta = {k: v for k, v in pod["metadata"].items() if k not in ("uid", "resourceVersion", "creationTimestamp")}
        core.create_namespaced_pod(meta["namespace"], {**pod, "metadata": meta})
        core.patch_namespaced_pod_status(meta["name"], meta["namespace"], {"status": pod["status"]})

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(create, pods))


@contextlib.contextmanager
def bench_control_plane(*namespaces: str, metrics: bool = False) -> Iterator[ControlPlane]:
    """A control plane of a benchmark's own (without metrics-server unless `metrics`: benchmarks
    choose the usage), with the ProfilingConfig CRD and `namespaces` (the operator's among them)
    created."""
    from kubernetes import client

    from kprof_lib.spec import schemas
    from kprof_lib.spec.crd import build_crd
    from tests.support import chart, controlplane

    with controlplane.running(metrics=metrics) as plane:
        crd = build_crd(schemas.load("profilingconfig"))
        client.ApiextensionsV1Api(plane.api()).create_custom_resource_definition(crd)
        chart.wait_established(plane)
        for name in {OPERATOR_NAMESPACE, *namespaces}:
            client.CoreV1Api(plane.api()).create_namespace({"metadata": {"name": name}})
        yield plane


def status_of(api: Any, namespace: str, name: str) -> dict[str, Any]:
    """A ProfilingConfig's status, read over HTTP through the kubernetes client."""
    from kubernetes import client

    obj = client.CustomObjectsApi(api).get_namespaced_custom_object_status(
        "profiling.io", "v1alpha1", namespace, "profilingconfigs", name
    )
    return obj.get("status") or {}


def condition(status: Mapping[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or () if c.get("type") == kind), {})


def events_about(api: Any, namespace: str, name: str) -> list[Any]:
    """Events whose involved object is `namespace/name`, read over HTTP."""
    from kubernetes import client

    listed = client.CoreV1Api(api).list_namespaced_event(namespace)
    return [e for e in listed.items if e.involved_object.name == name]


def history_of(plane: ControlPlane, namespace: str, config_key: str) -> dict[str, dict[str, Any]]:
    """The capture history of config `config_key` ("ns/name"), from its ConfigMap in the operator's
    `namespace`; {} when there is none."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    from kprof_lib.adapters.kube.history import configmap_name

    try:
        configmap = client.CoreV1Api(plane.api()).read_namespaced_config_map(configmap_name(config_key), namespace)
    except ApiException as error:
        if error.status == 404:
            return {}
        raise
    return json.loads((configmap.data or {}).get("history.json") or "{}")


def lease_holder(api: Any, namespace: str, name: str = "kprof-operator") -> str | None:
    """The Lease's holderIdentity ("" once released), None when there is no such Lease."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    try:
        return client.CoordinationV1Api(api).read_namespaced_lease(name, namespace).spec.holder_identity
    except ApiException as error:
        if error.status == 404:
            return None
        raise


def http_get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def metric_value(exposition: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text format (0 when absent)."""
    from prometheus_client.parser import text_string_to_metric_families

    total = 0.0
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def aws_environment(tmp: Path) -> dict[str, str | None]:
    """Dummy credentials for the operator process's default chain, and nothing from the developer."""
    unset = (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "AWS_REGION",
    )
    return {
        **dict.fromkeys(unset),
        "AWS_ACCESS_KEY_ID": DUMMY_ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": DUMMY_SECRET_ACCESS_KEY,
        "AWS_DEFAULT_REGION": S3_REGION,
        "AWS_CONFIG_FILE": str(tmp / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def tracing_environment(receiver: Any, service: str) -> dict[str, str]:
    return {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_SERVICE_NAME": service,
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    }


def s3_config(s3: Any, bucket: str, prefix: str) -> dict[str, str]:
    return {"bucket": bucket, "endpoint": s3.endpoint_url, "region": S3_REGION, "prefix": prefix}


def allow_s3(s3: Any, bucket: str) -> list[str]:
    """The `kprof run` flag that lets configs store in `bucket` of the test's S3 server (the
    operator allows only its local directory unless told)."""
    return ["--allowed-destination", f"{s3.endpoint_url}/{bucket}"]


# The operator as a process ----------------------------------------------------------------------


def kprof_command() -> list[str]:
    """The installed `kprof` script beside this interpreter, else the module."""
    script = Path(sys.executable).with_name("kprof")
    return [str(script)] if script.exists() else [sys.executable, "-m", "kprof_lib.runtimes.cli"]


def _environment(changes: Mapping[str, str | None]) -> dict[str, str]:
    """This process's environment with `changes` applied; None removes a variable."""
    env = dict(os.environ)
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


class OperatorProcess:
    """`kprof run` (or `python operator_main.py`; with `command_name` "node", `kprof node`) in a
    subprocess; stderr's JSON lines are kept in `logs`. Stopped (SIGKILL if need be) by `close()`."""

    def __init__(
        self,
        kubeconfig: Path,
        work_dir: Path,
        *,
        args: Iterable[str] = (),
        env: Mapping[str, str | None] | None = None,
        entrypoint: str = "kprof",
        name: str = "operator",
        command_name: str = "run",
    ):
        self.name = name
        work_dir.mkdir(parents=True, exist_ok=True)
        command = (
            [*kprof_command(), command_name]
            if entrypoint == "kprof"
            else [sys.executable, str(REPO_ROOT / "operator_main.py")]
        )
        command += [
            "--kubeconfig",
            str(kubeconfig),
            "--namespace",
            OPERATOR_NAMESPACE,
            "--health-addr",
            "127.0.0.1:0",
            "--metrics-addr",
            "127.0.0.1:0",
            "--local-dir",
            str(work_dir / "profiles"),
            "--spool-dir",
            str(work_dir / "spool"),
            *args,
        ]
        self.logs: list[dict[str, Any]] = []
        self.other_output: list[str] = []
        self._changed = threading.Condition()
        self.process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_environment(env or {}),
        )
        self._readers = [
            threading.Thread(target=self._read, args=(self.process.stderr,), daemon=True),
            threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            line = line.rstrip("\n")
            with self._changed:
                try:
                    record = json.loads(line)
                    if not isinstance(record, dict):
                        raise ValueError
                    self.logs.append(record)
                except ValueError:
                    self.other_output.append(line)
                self._changed.notify_all()

    def output(self) -> str:
        with self._changed:
            return "\n".join([json.dumps(r) for r in self.logs[-60:]] + self.other_output[-20:])

    def output_lines(self) -> list[str]:
        """Everything it has printed: JSON records (as JSON again) and other lines."""
        with self._changed:
            return [json.dumps(r) for r in self.logs] + list(self.other_output)

    def find_logs(self, predicate: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        with self._changed:
            return [record for record in self.logs if predicate(record)]

    def wait_for_log(self, predicate: Callable[[dict[str, Any]], bool], timeout: float, what: str) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for record in self.logs:
                    if predicate(record):
                        return record
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.process.poll() is not None:
                    break
                self._changed.wait(min(remaining, 0.5))
        raise AssertionError(
            f"{self.name}: no log line for {what} within {timeout}s (exit code {self.process.poll()}):\n{self.output()}"
        )

    def address(self, endpoint: str, timeout: float = 30.0) -> str:
        record = self.wait_for_log(
            lambda r: r.get("action") == "listen" and endpoint in r.get("endpoint", "").split("+"),
            timeout,
            f"the {endpoint} endpoint",
        )
        return f"http://{record['address']}"

    def get(self, endpoint: str, path: str) -> tuple[int, str]:
        return http_get(self.address(endpoint) + path)

    def wait_ready(self, timeout: float = 30.0) -> str:
        def ready() -> str | None:
            status, body = self.get("health", "/readyz")
            return body if status == 200 else None

        return wait_until(ready, timeout, lambda: f"{self.name} not ready:\n{self.output()}")

    def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM, then the exit code."""
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        finally:
            self.close()

    def kill(self) -> None:
        """SIGKILL: no cleanup at all, as when a node dies."""
        self.process.kill()
        self.process.wait(10)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(10)
        for reader in self._readers:
            reader.join(5)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


# The operator in this process -------------------------------------------------------------------


class OperatorThread:
    """An `app.Operator` in the test process, on loopback ports with port 0, tracing to
    `traces_url` through a private provider. `stop()` is the SIGTERM path."""

    def __init__(self, kubeconfig: Path, work_dir: Path, *, traces_url: str | None = None, **settings: Any):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor

        from kprof_lib.runtimes.operator.app import Operator
        from kprof_lib.runtimes.operator.settings import Settings

        self.provider = TracerProvider()
        if traces_url:
            self.provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=traces_url)))
        options = {
            "kubeconfig": str(kubeconfig),
            "namespace": OPERATOR_NAMESPACE,
            "health_addr": "127.0.0.1:0",
            "metrics_addr": "127.0.0.1:0",
            "local_dir": str(work_dir / "profiles"),
            "spool_dir": str(work_dir / "spool"),
            "grace_period": 30.0,
            **settings,
        }
        self.operator = Operator(Settings(**options), tracer_provider=self.provider)
        self._stopped = False

    def start(self) -> OperatorThread:
        self.operator.start()
        return self

    def metrics(self) -> str:
        return self.operator.instruments.exposition().decode()

    def url(self, endpoint: str) -> str:
        return f"http://{self.operator.addresses[endpoint]}"

    def stop(self) -> bool:
        if self._stopped:
            return True
        self._stopped = True
        try:
            return self.operator.stop()
        finally:
            self.provider.shutdown()

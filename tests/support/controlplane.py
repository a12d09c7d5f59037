"""A real Kubernetes control plane for the tests: etcd and kube-apiserver built from their Go modules
(scripts/build-tools puts them in .tools/bin), metrics-server behind the aggregation layer, and a
fake Node whose "kubelet" (tests.support.nodeagent) reports the real processes behind test pods.

What a full cluster would add and this one does not, and how the tests make up for it:
- no scheduler or kubelet: pods are created with `spec.nodeName` set and moved to Running with a
  pod IP through the `pods/status` subresource (`run_pod`); deleting one takes gracePeriodSeconds=0;
- no controller-manager: no default ServiceAccounts, so the ServiceAccount admission plugin is off
  (a pod without a `default` ServiceAccount would otherwise be refused); namespaces stay Terminating
  once deleted, so every test works in a namespace of its own and leaves it;
- no kube-proxy: nothing may make the API server dial a ClusterIP. metrics-server is reached through
  an ExternalName Service naming 127.0.0.1 (Endpoints refuse loopback addresses).
Authentication: the test is `admin` (client certificate, group system:masters); the operator gets a
ServiceAccount token from the TokenRequest API (`token_kubeconfig`). Authorization is RBAC only.

`control_plane` is the session fixture; `ControlPlane(work_dir, watch_cache=False).start()` gives a
second one for a scenario that needs other API server flags. `python -m tests.support.controlplane`
(scripts/dev-cluster) runs one for a person.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import pki
from tests.support.net import free_port
from tests.support.nodeagent import NodeAgent

REPO_ROOT = Path(__file__).resolve().parents[2]
TOOLS_BIN = REPO_ROOT / ".tools" / "bin"
NODE_NAME = "kprof-test-node"
# Never dialled: with no kube-proxy nothing listens on a ClusterIP, and the API server is told not to.
SERVICE_CIDR = "10.96.0.0/24"
METRICS_API = "v1beta1.metrics.k8s.io"
START_TIMEOUT = 90.0


class ControlPlaneError(RuntimeError):
    pass


def tool(name: str) -> Path:
    path = TOOLS_BIN / name
    if not os.access(path, os.X_OK):
        raise ControlPlaneError(f"{path} is missing: run scripts/build-tools (make test does)")
    return path


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def _terminate_with_parent() -> None:
    """In the child before exec: Linux's PR_SET_PDEATHSIG, SIGTERM when the parent exits."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


class _Process:
    """One program of the control plane, its output in a log file that failures quote."""

    def __init__(self, name: str, args: list[str], log: Path):
        self.name = name
        self.log = log
        self._file = log.open("wb")
        # A session of its own, so that a Ctrl-C meant for pytest does not reach it before cleanup;
        # and SIGTERM when this process dies, however it dies, so that nothing outlives the run.
        self.process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=self._file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_terminate_with_parent,
        )

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace").splitlines()
        return f"--- last lines of {self.log} ---\n" + "\n".join(text[-lines:])

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise ControlPlaneError(f"{self.name} exited with {self.process.returncode}\n{self.tail()}")

    def kill(self) -> None:
        """SIGKILL: no graceful shutdown at all."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)
        self._file.close()

    def stop(self, timeout: float = 15.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._file.close()


class ControlPlane:
    """etcd + kube-apiserver (+ metrics-server and a fake Node) on loopback, with files in `work_dir`."""

    def __init__(self, work_dir: Path, *, watch_cache: bool = True, metrics: bool = True):
        self.work = work_dir
        self.watch_cache = watch_cache
        self.with_metrics = metrics
        self.processes: list[_Process] = []
        self.agent: NodeAgent | None = None
        # Nodes added by `add_node`, each with its kubelet stand-in.
        self.nodes: dict[str, NodeAgent] = {}
        self.etcd_url = ""
        self.server = ""
        self.kubeconfig = work_dir / "admin.kubeconfig"
        self.audit_log = work_dir / "audit.log"
        self._api: Any = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> ControlPlane:
        self.work.mkdir(parents=True, exist_ok=True)
        try:
            self._make_pki()
            self._start_etcd()
            self._start_apiserver()
            if self.with_metrics:
                self._start_metrics()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self._api is not None:
            self._api.close()
            self._api = None
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()
        if self.agent is not None:
            self.agent.close()
            self.agent = None
        for agent in self.nodes.values():
            agent.close()
        self.nodes.clear()

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _make_pki(self) -> None:
        pki_dir = self.work / "pki"
        pki_dir.mkdir(exist_ok=True)
        self.ca = pki.Authority(pki_dir, "cluster")
        self.serving = self.ca.issue("apiserver", "kube-apiserver", server=True)
        self.admin = self.ca.issue("admin", "admin", organization="system:masters", client=True)
        # The aggregation layer's own CA, apart from the cluster's: metrics-server trusts only it for
        # the X-Remote-User headers the API server sends.
        self.front_proxy_ca = pki.Authority(pki_dir, "front-proxy")
        self.front_proxy = self.front_proxy_ca.issue("front-proxy-client", "front-proxy-client", client=True)
        self.service_account_keys = pki.service_account_keys(pki_dir)

    def _start_etcd(self) -> None:
        client_port, peer_port = free_port(), free_port()
        self.etcd_url = f"http://127.0.0.1:{client_port}"
        peer = f"http://127.0.0.1:{peer_port}"
        etcd = _Process(
            "etcd",
            [
                str(tool("etcd")),
                "--name=kprof-test",
                f"--data-dir={self.work / 'etcd'}",
                f"--listen-client-urls={self.etcd_url}",
                f"--advertise-client-urls={self.etcd_url}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=kprof-test={peer}",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
            self.work / "etcd.log",
        )
        self.processes.append(etcd)
        self._wait(etcd, lambda: self._etcd_post("/v3/kv/range", {"key": base64.b64encode(b"/").decode()}))

    def _start_apiserver(self, port: int | None = None) -> None:
        port = port or free_port()
        self.server = f"https://127.0.0.1:{port}"
        args = [
            str(tool("kube-apiserver")),
            f"--etcd-servers={self.etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={port}",
            f"--cert-dir={self.work / 'apiserver-certs'}",
            f"--tls-cert-file={self.serving.cert}",
            f"--tls-private-key-file={self.serving.key}",
            f"--client-ca-file={self.ca.cert}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            # Loopback Endpoints for the `kubernetes` Service would fail validation; nothing needs them.
            "--endpoint-reconciler-type=none",
            "--allow-privileged=true",
            "--disable-admission-plugins=ServiceAccount",
            "--authorization-mode=RBAC",
            "--service-account-issuer=https://kubernetes.default.svc",
            f"--service-account-key-file={self.service_account_keys.cert}",
            f"--service-account-signing-key-file={self.service_account_keys.key}",
            f"--requestheader-client-ca-file={self.front_proxy_ca.cert}",
            "--requestheader-allowed-names=front-proxy-client",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--proxy-client-cert-file={self.front_proxy.cert}",
            f"--proxy-client-key-file={self.front_proxy.key}",
            # Compaction only when a test asks for it (compact()).
            "--etcd-compaction-interval=0",
            "--profiling=false",
            # What ServiceAccounts do, request by request: the RBAC tests compare it with the grants.
            f"--audit-policy-file={self._audit_policy()}",
            f"--audit-log-path={self.audit_log}",
            "--audit-log-format=json",
        ]
        if not self.watch_cache:
            args.append("--watch-cache=false")
        apiserver = _Process("kube-apiserver", args, self.work / f"kube-apiserver-{len(self.processes)}.log")
        self.processes.append(apiserver)
        self._write_admin_kubeconfig()
        self._wait(apiserver, lambda: self._get("/readyz") == 200)

    def _audit_policy(self) -> Path:
        path = self.work / "audit-policy.yaml"
        policy = {
            "apiVersion": "audit.k8s.io/v1",
            "kind": "Policy",
            "omitStages": ["RequestReceived"],
            "rules": [{"level": "Metadata", "userGroups": ["system:serviceaccounts"]}, {"level": "None"}],
        }
        path.write_text(yaml.safe_dump(policy))
        return path

    def audit(self, username: str) -> list[dict[str, Any]]:
        """The audit events (ResponseComplete and Panic stages) of requests made as `username`."""
        events = []
        if self.audit_log.exists():
            for line in self.audit_log.read_text().splitlines():
                event = json.loads(line)
                if event.get("user", {}).get("username") == username and event.get("stage") != "ResponseStarted":
                    events.append(event)
        return events

    def _start_metrics(self) -> None:
        from kubernetes import client

        self.agent = NodeAgent()
        self._create_node(NODE_NAME, self.agent)
        core = client.CoreV1Api(self.api())
        port = free_port()
        metrics = _Process(
            "metrics-server",
            [
                str(tool("metrics-server")),
                "--bind-address=127.0.0.1",
                f"--secure-port={port}",
                f"--cert-dir={self.work / 'metrics-server-certs'}",
                f"--kubeconfig={self.kubeconfig}",
                f"--authentication-kubeconfig={self.kubeconfig}",
                f"--authorization-kubeconfig={self.kubeconfig}",
                "--kubelet-preferred-address-types=InternalIP",
                "--kubelet-use-node-status-port",
                "--deprecated-kubelet-completely-insecure=true",
                # The shortest resolution it accepts; it must be at least the timeout / 0.9.
                "--metric-resolution=10s",
                "--kubelet-request-timeout=5s",
            ],
            self.work / "metrics-server.log",
        )
        self.processes.append(metrics)
        # Endpoints refuse 127.0.0.1; an ExternalName Service may name it, and the aggregator dials
        # that name directly (no ClusterIP involved).
        core.create_namespaced_service(
            "kube-system",
            {
                "metadata": {"name": "metrics-server"},
                "spec": {"type": "ExternalName", "externalName": "127.0.0.1", "ports": [{"port": port}]},
            },
        )
        client.ApiregistrationV1Api(self.api()).create_api_service(
            {
                "metadata": {"name": METRICS_API},
                "spec": {
                    "group": "metrics.k8s.io",
                    "version": "v1beta1",
                    "service": {"namespace": "kube-system", "name": "metrics-server", "port": port},
                    "insecureSkipTLSVerify": True,
                    "groupPriorityMinimum": 100,
                    "versionPriority": 100,
                },
            }
        )

    def _create_node(self, name: str, agent: NodeAgent) -> None:
        from kubernetes import client

        core = client.CoreV1Api(self.api())
        core.create_node({"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}})
        core.patch_node_status(
            name,
            {
                "status": {
                    "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                    "daemonEndpoints": {"kubeletEndpoint": {"Port": agent.port}},
                    "conditions": [
                        {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "test node agent"}
                    ],
                }
            },
        )

    def add_node(self, name: str) -> NodeAgent:
        """A further Node whose kubelet stand-in authorizes its callers as a kubelet does (token and
        SubjectAccessReview of get on nodes/metrics): the node agents' RBAC is tested against it.
        metrics-server, which sends no token, cannot read it; nothing that uses metrics-server puts
        pods there."""
        agent = self.nodes[name] = NodeAgent(self.api(), name)
        self._create_node(name, agent)
        return agent

    def remove_node(self, name: str) -> None:
        from kubernetes import client

        agent = self.nodes.pop(name, None)
        if agent is not None:
            agent.close()
        with contextlib.suppress(Exception):
            client.CoreV1Api(self.api()).delete_node(name)

    def restart_apiserver(self) -> None:
        """Kills kube-apiserver and starts it again on the same port and etcd, cutting every
        connection (watches included) as a crash of the server would. (A SIGTERM would wait out
        the open watches: with an operator watching, it had not exited after 15 s.)"""
        [old] = [p for p in self.processes if p.name == "kube-apiserver"]
        old.kill()
        self.processes.remove(old)
        self._start_apiserver(int(self.server.rsplit(":", 1)[1]))

    def wait_for_metrics_api(self, timeout: float = 60.0) -> None:
        """Until the APIService is Available (metrics-server up and trusted by the aggregator)."""
        from kubernetes import client

        registration = client.ApiregistrationV1Api(self.api())

        def available() -> bool:
            service = registration.read_api_service(METRICS_API)
            return any(c.type == "Available" and c.status == "True" for c in service.status.conditions or ())

        metrics = next(p for p in self.processes if p.name == "metrics-server")
        self._wait(metrics, available, timeout)

    def _wait(self, process: _Process, probe: Any, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            process.check_alive()
            try:
                if probe():
                    return
            except Exception as error:  # not up yet: refused connections, 503s
                last = error
            time.sleep(0.25)
        raise ControlPlaneError(f"{process.name} not ready within {timeout}s (last: {last!r})\n{process.tail()}")

    # -- access ----------------------------------------------------------------------------

    def _ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca.cert))
        context.load_cert_chain(str(self.admin.cert), str(self.admin.key))
        return context

    def _get(self, path: str) -> int:
        try:
            with urllib.request.urlopen(self.server + path, context=self._ssl_context(), timeout=5) as answer:
                return answer.status
        except urllib.error.HTTPError as error:
            return error.code

    def _etcd_post(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        request = urllib.request.Request(
            self.etcd_url + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        with opener.open(request, timeout=10) as answer:
            return json.loads(answer.read())

    def _write_admin_kubeconfig(self) -> None:
        self._write_kubeconfig(
            self.kubeconfig,
            "admin",
            {"client-certificate-data": _b64(self.admin.cert), "client-key-data": _b64(self.admin.key)},
        )

    def _write_kubeconfig(self, path: Path, user: str, credentials: Mapping[str, str]) -> Path:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "kprof-test",
                    "cluster": {"server": self.server, "certificate-authority-data": _b64(self.ca.cert)},
                }
            ],
            "users": [{"name": user, "user": dict(credentials)}],
            "contexts": [{"name": user, "context": {"cluster": "kprof-test", "user": user}}],
            "current-context": user,
        }
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        return path

    def api(self) -> Any:
        """A `kubernetes.client.ApiClient` as admin (kept; closed by stop())."""
        if self._api is None:
            from kubernetes import config

            self._api = config.new_client_from_config(str(self.kubeconfig))
        return self._api

    def token_kubeconfig(self, namespace: str, service_account: str, path: Path, seconds: int = 3600) -> Path:
        """A kubeconfig holding a token of `namespace/service_account` from the TokenRequest API:
        requests made with it are that ServiceAccount's, authorized by RBAC alone."""
        from kubernetes import client

        answer = client.CoreV1Api(self.api()).create_namespaced_service_account_token(
            service_account,
            namespace,
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": seconds}},
        )
        return self._write_kubeconfig(path, f"{namespace}-{service_account}", {"token": answer.status.token})

    def compact(self) -> int:
        """Compacts etcd up to its current revision (physically) and returns that revision: a watch
        from an older resourceVersion that etcd serves gets 410 Gone."""
        revision = int(self._etcd_post("/v3/kv/range", {"key": base64.b64encode(b"/").decode()})["header"]["revision"])
        self._etcd_post("/v3/kv/compaction", {"revision": str(revision), "physical": True})
        return revision

    # -- objects ---------------------------------------------------------------------------

    def new_namespace(self, prefix: str = "kprof-test") -> str:
        from kubernetes import client

        name = f"{prefix}-{uuid.uuid4().hex[:6]}"
        client.CoreV1Api(self.api()).create_namespace({"metadata": {"name": name}})
        return name

    def run_pod(
        self,
        namespace: str,
        name: str,
        *,
        port: int,
        pod_ip: str = "127.0.0.1",
        pid: int | None = None,
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
        requests: Mapping[str, str] | None = None,
        limits: Mapping[str, str] | None = None,
        node: str = NODE_NAME,
    ) -> dict[str, Any]:
        """A pod of one container "app" on the test Node (or `node`, one of `add_node`'s), Running at
        `pod_ip` as a kubelet would report it; with `pid`, that node's kubelet stand-in reports that
        process's CPU and memory as the pod's. `limits`: the container's limits (none by default)."""
        from kubernetes import client

        core = client.CoreV1Api(self.api())
        core.create_namespaced_pod(
            namespace,
            {
                "metadata": {"name": name, "labels": dict(labels or {}), "annotations": dict(annotations or {})},
                "spec": {
                    "nodeName": node,
                    "automountServiceAccountToken": False,
                    "containers": [
                        {
                            "name": "app",
                            "image": "kprof/sample-app:test",
                            "ports": [{"name": "pprof", "containerPort": port}],
                            "resources": {
                                "requests": dict(requests or {"cpu": "100m", "memory": "64Mi"}),
                                **({"limits": dict(limits)} if limits else {}),
                            },
                        }
                    ],
                },
            },
        )
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        pod = core.patch_namespaced_pod_status(
            name,
            namespace,
            {
                "status": {
                    "phase": "Running",
                    "hostIP": "127.0.0.1",
                    "podIP": pod_ip,
                    "podIPs": [{"ip": pod_ip}],
                    "startTime": now,
                    "conditions": [
                        {"type": t, "status": "True", "lastTransitionTime": now}
                        for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
                    ],
                    "containerStatuses": [
                        {
                            "name": "app",
                            "ready": True,
                            "started": True,
                            "restartCount": 0,
                            "image": "kprof/sample-app:test",
                            "imageID": "",
                            "state": {"running": {"startedAt": now}},
                        }
                    ],
                }
            },
        )
        agent = self.nodes.get(node, self.agent if node == NODE_NAME else None)
        if pid is not None and agent is not None:
            agent.add(namespace, name, "app", pid)
        return self.api().sanitize_for_serialization(pod)

    def store_pods(self, pods: Iterable[Mapping[str, Any]], batch: int = 128, timeout: float = 600.0) -> int:
        """Writes pods (as the API server returns them, tests.support.pods) straight into etcd, as
        JSON under the API server's own keys, `batch` to a transaction (etcd's default cap on
        operations in one): the API server reads JSON from storage as well as its own protobuf,
        and its watch cache sees them come as it sees any write. For benchmarks of 100,000 pods:
        the create path (admission, validation, a status patch) takes ~18 s per 1,000 here.
        No admission or validation runs, so the pods must be valid. Returns how many were written,
        once the API server's watch cache has caught up with them (before that, a paged LIST
        may answer 504 "Too large resource version")."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        written, revision = 0, 0
        operations: list[dict[str, Any]] = []

        def commit() -> int:
            if not operations:
                return revision
            answer = self._etcd_post("/v3/kv/txn", {"success": operations})
            operations.clear()
            return int(answer["header"]["revision"])

        for pod in pods:
            metadata = {k: v for k, v in pod["metadata"].items() if k != "resourceVersion"}
            document = json.dumps({**pod, "apiVersion": "v1", "kind": "Pod", "metadata": metadata})
            key = f"/registry/pods/{metadata['namespace']}/{metadata['name']}"
            operations.append(
                {
                    "requestPut": {
                        "key": base64.b64encode(key.encode()).decode(),
                        "value": base64.b64encode(document.encode()).decode(),
                    }
                }
            )
            written += 1
            if len(operations) >= batch:
                revision = commit()
        revision = commit()
        core = client.CoreV1Api(self.api())
        deadline = time.monotonic() + timeout
        while True:
            try:
                core.list_pod_for_all_namespaces(
                    limit=1, resource_version=str(revision), resource_version_match="NotOlderThan"
                )
                return written
            except ApiException as error:
                if error.status != 504 or time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def delete_pod(self, namespace: str, name: str) -> None:
        from kubernetes import client

        for agent in [self.agent, *self.nodes.values()]:
            if agent is not None:
                agent.remove(namespace, name)
        # No kubelet confirms a graceful deletion: without 0 the pod would wait out its grace period.
        client.CoreV1Api(self.api()).delete_namespaced_pod(name, namespace, grace_period_seconds=0)


@contextlib.contextmanager
def running(work_dir: Path | None = None, **options: Any) -> Iterator[ControlPlane]:
    """A started control plane in `work_dir` (a temporary folder removed afterwards if None)."""
    owned = work_dir is None
    folder = Path(tempfile.mkdtemp(prefix="kprof-cp-")) if work_dir is None else work_dir
    plane = ControlPlane(folder, **options)
    try:
        yield plane.start()
    finally:
        plane.stop()
        if owned:
            shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    with running(tmp_path_factory.mktemp("control-plane")) as plane:
        yield plane


def main(argv: list[str] | None = None) -> int:
    """scripts/dev-cluster: the same control plane for a person, until Ctrl-C."""
    import argparse
    import threading

    parser = argparse.ArgumentParser(prog="scripts/dev-cluster", description=main.__doc__)
    parser.add_argument(
        "--dir", type=Path, help="where its files go (default: a new temporary folder, removed at exit)"
    )
    parser.add_argument("--no-crd", action="store_true", help="do not create the ProfilingConfig CRD")
    options = parser.parse_args(argv)
    stop = threading.Event()
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, lambda *_: stop.set())
    with running(options.dir) as plane:
        if not options.no_crd:
            from kubernetes import client

            from kprof_lib.spec import schemas
            from kprof_lib.spec.crd import build_crd

            client.ApiextensionsV1Api(plane.api()).create_custom_resource_definition(
                build_crd(schemas.load("profilingconfig"))
            )
        print(f"kube-apiserver {plane.server} (etcd {plane.etcd_url}); files in {plane.work}")
        print(f"export KUBECONFIG={plane.kubeconfig}")
        print(f"node {NODE_NAME}: its kubelet stand-in serves 127.0.0.1:{plane.agent.port if plane.agent else '-'}")
        print("metrics.k8s.io is served once metrics-server has scraped twice (about 20 s). Ctrl-C stops it all.")
        sys.stdout.flush()
        stop.wait()
        print("stopping ...")
    return 0


if __name__ == "__main__":
    sys.exit(main())

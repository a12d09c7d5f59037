"""Builders for realistic objects to seed the emulator with: `make_pod` returns a v1 Pod shaped like
what kube-apiserver serves for a scheduled, running pod (spec, conditions, container statuses,
QoS class). Used by tests and benchmarks through `tests.kube_emulator.make_pod`."""

from __future__ import annotations

import copy
import hashlib
from typing import Any

_STARTED = "2024-01-01T00:00:00Z"


def _qos_class(containers: list[dict[str, Any]]) -> str:
    resources = [c.get("resources") or {} for c in containers]
    if not any(r.get("requests") or r.get("limits") for r in resources):
        return "BestEffort"
    guaranteed = all(
        (r.get("limits") or {}).get(name)
        and (r.get("requests") or {}).get(name, r["limits"][name]) == r["limits"][name]
        for r in resources
        for name in ("cpu", "memory")
    )
    return "Guaranteed" if guaranteed else "Burstable"


def make_pod(
    name: str,
    namespace: str = "default",
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    pod_ip: str | None = "127.0.0.1",
    phase: str = "Running",
    containers: list[dict[str, Any]] | None = None,
    node_name: str = "node-1",
) -> dict[str, Any]:
    """A v1 Pod as JSON. `containers` are v1 Container dicts (name, resources, ports, ...); image and
    the usual defaults are filled in. A Running pod is Ready with running container statuses."""
    if containers is None:
        containers = [{"name": "app", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]
    digest = hashlib.sha256(f"{namespace}/{name}".encode()).hexdigest()
    full_containers = []
    statuses = []
    running = phase == "Running"
    for container in containers:
        spec = copy.deepcopy(container)
        spec.setdefault("image", f"registry.example.com/{spec['name']}:1.0")
        spec.setdefault("imagePullPolicy", "IfNotPresent")
        spec.setdefault("resources", {})
        spec.setdefault("terminationMessagePath", "/dev/termination-log")
        spec.setdefault("terminationMessagePolicy", "File")
        full_containers.append(spec)
        status: dict[str, Any] = {
            "name": spec["name"],
            "image": spec["image"],
            "imageID": f"{spec['image']}@sha256:{digest}",
            "ready": running,
            "restartCount": 0,
            "started": running,
        }
        if running:
            status["containerID"] = f"containerd://{digest}"
            status["state"] = {"running": {"startedAt": _STARTED}}
        else:
            status["state"] = {"waiting": {"reason": "ContainerCreating"}}
        statuses.append(status)
    ready = "True" if running else "False"
    pod_status: dict[str, Any] = {
        "phase": phase,
        "conditions": [
            {"type": "Initialized", "status": "True", "lastTransitionTime": _STARTED},
            {"type": "Ready", "status": ready, "lastTransitionTime": _STARTED},
            {"type": "ContainersReady", "status": ready, "lastTransitionTime": _STARTED},
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": _STARTED},
        ],
        "hostIP": "127.0.0.1",
        "startTime": _STARTED,
        "containerStatuses": statuses,
        "qosClass": _qos_class(full_containers),
    }
    if pod_ip:
        pod_status["podIP"] = pod_ip
        pod_status["podIPs"] = [{"ip": pod_ip}]
    metadata: dict[str, Any] = {"name": name, "namespace": namespace, "labels": dict(labels or {})}
    if annotations:
        metadata["annotations"] = dict(annotations)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {
            "containers": full_containers,
            "dnsPolicy": "ClusterFirst",
            "enableServiceLinks": True,
            "nodeName": node_name,
            "preemptionPolicy": "PreemptLowerPriority",
            "priority": 0,
            "restartPolicy": "Always",
            "schedulerName": "default-scheduler",
            "securityContext": {},
            "serviceAccountName": "default",
            "terminationGracePeriodSeconds": 30,
            "tolerations": [
                {
                    "key": "node.kubernetes.io/not-ready",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                },
                {
                    "key": "node.kubernetes.io/unreachable",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                },
            ],
        },
        "status": pod_status,
    }

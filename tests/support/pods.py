"""Realistic Kubernetes objects for tests, examples and benchmarks: v1 Pods shaped like what the API
server returns (about 4 KB of JSON each, with the fields a Deployment's pod really carries), and
metrics.k8s.io PodMetrics shaped like what metrics-server returns."""

from __future__ import annotations

import hashlib
from typing import Any

ENABLED = {"profiling.io/enabled": "true"}


def _hash(text: str, length: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def pod(
    name: str,
    namespace: str = "default",
    *,
    app: str | None = None,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    phase: str = "Running",
    pod_ip: str | None = "10.244.1.17",
    containers: list[dict[str, Any]] | None = None,
    init_containers: list[dict[str, Any]] | None = None,
    owner_replicaset: str | None = None,
) -> dict[str, Any]:
    """A v1 Pod as `kubectl get pod -o json` prints it. `containers` items are {name, requests, limits}."""
    uid = f"{_hash(namespace + name, 8)}-{_hash(name, 4)}-4{_hash(name + 'a', 3)}-8{_hash(name + 'b', 3)}-{_hash(name + 'c', 12)}"
    template_hash = _hash(app or name, 10)
    token_volume = "kube-api-access-" + _hash(name, 5)
    all_labels = {"pod-template-hash": template_hash}
    if app:
        all_labels["app.kubernetes.io/name"] = app
    all_labels.update(labels or {})
    containers = (
        containers
        if containers is not None
        else [
            {"name": "app", "requests": {"cpu": "250m", "memory": "128Mi"}, "limits": {"cpu": "1", "memory": "256Mi"}}
        ]
    )
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "uid": uid,
        "resourceVersion": str(int(_hash(name, 6), 16)),
        "creationTimestamp": "2026-11-20T08:00:00Z",
        "generateName": name.rsplit("-", 1)[0] + "-",
        "labels": all_labels,
        "annotations": {"kubectl.kubernetes.io/restartedAt": "2026-11-20T07:59:00Z", **(annotations or {})},
    }
    if owner_replicaset:
        metadata["ownerReferences"] = [
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": owner_replicaset,
                "uid": f"{_hash(owner_replicaset, 8)}-0000-4000-8000-{_hash(owner_replicaset, 12)}",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {
            "containers": [_container(c, token_volume) for c in containers],
            **({"initContainers": [_container(c, token_volume) for c in init_containers]} if init_containers else {}),
            "dnsPolicy": "ClusterFirst",
            "enableServiceLinks": True,
            "nodeName": "worker-1",
            "preemptionPolicy": "PreemptLowerPriority",
            "priority": 0,
            "restartPolicy": "Always",
            "schedulerName": "default-scheduler",
            "securityContext": {"runAsNonRoot": True, "runAsUser": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
            "serviceAccount": "default",
            "serviceAccountName": "default",
            "terminationGracePeriodSeconds": 30,
            "tolerations": [
                {
                    "effect": "NoExecute",
                    "key": "node.kubernetes.io/not-ready",
                    "operator": "Exists",
                    "tolerationSeconds": 300,
                },
                {
                    "effect": "NoExecute",
                    "key": "node.kubernetes.io/unreachable",
                    "operator": "Exists",
                    "tolerationSeconds": 300,
                },
            ],
            "volumes": [
                {
                    "name": token_volume,
                    "projected": {
                        "defaultMode": 420,
                        "sources": [
                            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                            {"configMap": {"items": [{"key": "ca.crt", "path": "ca.crt"}], "name": "kube-root-ca.crt"}},
                            {
                                "downwardAPI": {
                                    "items": [
                                        {
                                            "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                                            "path": "namespace",
                                        }
                                    ]
                                }
                            },
                        ],
                    },
                }
            ],
        },
        "status": _status(phase, pod_ip, containers),
    }


def _container(spec: dict[str, Any], token_volume: str) -> dict[str, Any]:
    resources = {}
    if spec.get("requests"):
        resources["requests"] = spec["requests"]
    if spec.get("limits"):
        resources["limits"] = spec["limits"]
    container = {
        "name": spec["name"],
        "image": f"registry.example.com/{spec['name']}:1.4.2",
        "imagePullPolicy": "IfNotPresent",
        "ports": [
            {"containerPort": 8080, "name": "http", "protocol": "TCP"},
            {"containerPort": 6060, "name": "pprof", "protocol": "TCP"},
        ],
        "env": [
            {"name": "GOMAXPROCS", "value": "2"},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}},
        ],
        "readinessProbe": {
            "httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP"},
            "periodSeconds": 10,
            "failureThreshold": 3,
            "successThreshold": 1,
            "timeoutSeconds": 1,
        },
        "resources": resources,
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
        },
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "volumeMounts": [
            {"mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "name": token_volume, "readOnly": True}
        ],
    }
    if "restartPolicy" in spec:
        container["restartPolicy"] = spec["restartPolicy"]
    return container


def _status(phase: str, pod_ip: str | None, containers: list[dict[str, Any]]) -> dict[str, Any]:
    status: dict[str, Any] = {
        "phase": phase,
        "hostIP": "172.18.0.3",
        "qosClass": "Burstable",
        "startTime": "2026-11-20T08:00:00Z",
        "conditions": [
            {"type": t, "status": "True", "lastProbeTime": None, "lastTransitionTime": "2026-11-20T08:00:05Z"}
            for t in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")
        ],
        "containerStatuses": [
            {
                "name": c["name"],
                "ready": phase == "Running",
                "restartCount": 0,
                "started": phase == "Running",
                "image": f"registry.example.com/{c['name']}:1.4.2",
                "imageID": f"registry.example.com/{c['name']}@sha256:{_hash(c['name'], 64)}",
                "containerID": f"containerd://{_hash(c['name'] + 'x', 64)}",
                "state": {"running": {"startedAt": "2026-11-20T08:00:03Z"}}
                if phase == "Running"
                else {"waiting": {"reason": "ContainerCreating"}},
            }
            for c in containers
        ],
    }
    if pod_ip:
        status["podIP"] = pod_ip
        status["podIPs"] = [{"ip": pod_ip}]
    return status


def pod_metrics(
    name: str, namespace: str = "default", usage: dict[str, dict[str, str]] | None = None
) -> dict[str, Any]:
    """A metrics.k8s.io/v1beta1 PodMetrics; `usage` maps container name to {cpu, memory}."""
    usage = usage if usage is not None else {"app": {"cpu": "125000000n", "memory": "64Mi"}}
    return {
        "kind": "PodMetrics",
        "apiVersion": "metrics.k8s.io/v1beta1",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "creationTimestamp": "2026-11-25T10:00:00Z",
            "labels": {"app.kubernetes.io/name": name.rsplit("-", 2)[0]},
        },
        "timestamp": "2026-11-25T09:59:45Z",
        "window": "15.009s",
        "containers": [{"name": c, "usage": u} for c, u in usage.items()],
    }

"""A pod as reconcile reads it: `PodDigest`, one compact record of the fields that decide about it.

A cluster state's `pods` may hold three forms, mixed:
- v1 Pods as the API returns them (`kubectl get pods -A -o json`), read by `from_pod`: metadata and
  status at once, the containers' quantities only when a check measures the pod;
- digests in JSON, `{"kind": "PodDigest", ...}` (schemas/cluster_state.schema.json,
  `$defs/podDigest`: requests and limits summed into numbers already), read by `from_json`, every
  field checked and named by its path;
- `PodDigest` objects, made once per watch event by the operator's pod cache (`from_pod`, its
  containers read at once) and trusted as they are: the pod was checked when it was digested.

A digest takes less than half the memory of the pod slimmed to the same fields as JSON (490 vs
1,118 bytes a pod for 10,000 realistic pods, by tracemalloc; what pods share stored once), which is
what lets one replica hold 100,000 pods.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

from kprof_lib.spec.errors import Problem
from kprof_lib.state import naming, optin, quantities
from kprof_lib.state.errors import StateError, raise_at

KIND = "PodDigest"


class Container(NamedTuple):
    """A container whose usage counts (a regular container, or an init container with
    `restartPolicy: Always`): what its usage is measured against, per resource (the request, else
    the limit; None: neither), and its memory limit (None: none)."""

    name: str
    cpu: float | None
    memory: float | None
    memory_limit: float | None


class PodDigest:
    """One pod, reduced to what reconcile decides with. `containers` is None only for a v1 Pod read
    by `from_pod` without its containers; `containers_of(path)` reads them then."""

    __slots__ = (
        "annotations",
        "containers",
        "key",
        "labels",
        "name",
        "namespace",
        "pod_ip",
        "resource_version",
        "running",
        "service",
        "source",
        "uid",
    )

    def __init__(
        self,
        namespace: str,
        name: str,
        *,
        uid: str | None = None,
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
        running: bool = False,
        pod_ip: str | None = None,
        service: str | None = None,
        containers: tuple[Container, ...] | None = (),
        resource_version: str | None = None,
        source: Mapping[str, Any] | None = None,
    ) -> None:
        self.namespace = namespace
        self.name = name
        # "namespace/pod", the pod's key in the capture history: made once, as the digest is, not
        # at every check that looks the pod up.
        self.key = f"{namespace}/{name}"
        self.uid = uid
        self.labels: Mapping[str, str] = labels or _EMPTY
        self.annotations: Mapping[str, str] = annotations or _EMPTY
        self.running = running  # phase Running, not being deleted
        self.pod_ip = pod_ip
        self.service = service if service is not None else name
        self.containers = containers
        self.resource_version = resource_version
        self.source = source  # the v1 Pod, while its containers are still to be read

    @property
    def enabled(self) -> bool:
        return optin.is_enabled(self.annotations)

    def containers_of(self, path: str) -> tuple[Container, ...]:
        """The counted containers; read from the v1 Pod at `path` if not yet (`StateError` naming
        the field of a malformed one)."""
        if self.containers is None:
            assert self.source is not None
            self.containers = _containers(self.source, path)
            self.source = None
        return self.containers

    def to_json(self) -> dict[str, Any]:
        """The digest as JSON (`$defs/podDigest`); its containers read if they were not."""
        out: dict[str, Any] = {"kind": KIND, "namespace": self.namespace, "name": self.name}
        if self.uid is not None:
            out["uid"] = self.uid
        if self.labels:
            out["labels"] = dict(self.labels)
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        out.update(running=self.running, service=self.service)
        if self.pod_ip is not None:
            out["podIP"] = self.pod_ip
        out["containers"] = [
            {"name": c.name, "cpu": c.cpu, "memory": c.memory, "memoryLimit": c.memory_limit}
            for c in self.containers_of("pod")
        ]
        return out

    def __repr__(self) -> str:
        return f"PodDigest({self.namespace}/{self.name})"


_EMPTY: Mapping[str, str] = {}


def from_pod(pod: Mapping[str, Any], path: str) -> PodDigest:
    """The digest of a v1 Pod whose metadata `cluster.read` checked (name, namespace, string maps);
    its containers are read by `containers_of`, when the pod is measured."""
    metadata = pod["metadata"]
    status = pod.get("status") or {}
    if not isinstance(status, Mapping):
        raise_at(f"{path}.status", "must be an object")
    pod_ip = status.get("podIP") or None
    if pod_ip is not None and not isinstance(pod_ip, str):
        raise_at(f"{path}.status.podIP", "must be a string")
    return PodDigest(
        metadata["namespace"],
        metadata["name"],
        uid=metadata.get("uid"),
        labels=metadata.get("labels"),
        annotations=metadata.get("annotations"),
        running=status.get("phase") == "Running" and not metadata.get("deletionTimestamp"),
        pod_ip=pod_ip,
        service=naming.service_name(metadata),
        containers=None,
        resource_version=metadata.get("resourceVersion"),
        source=pod,
    )


def _containers(pod: Mapping[str, Any], path: str) -> tuple[Container, ...]:
    spec = pod.get("spec") or {}
    if not isinstance(spec, Mapping):
        raise_at(f"{path}.spec", "must be an object (a Pod's spec)")
    found = []
    for group in ("containers", "initContainers"):
        containers = spec.get(group) or []
        if not isinstance(containers, list):
            raise_at(f"{path}.spec.{group}", "must be a list of containers")
        for index, container in enumerate(containers):
            where = f"{path}.spec.{group}[{index}]"
            if not isinstance(container, Mapping) or not isinstance(container.get("name"), str):
                raise_at(where, "must be a container with a name")
            if group == "initContainers" and container.get("restartPolicy") != "Always":
                continue
            found.append(_container(container, where))
    return tuple(found)


def _container(container: Mapping[str, Any], path: str) -> Container:
    resources = container.get("resources") or {}
    requests = resources.get("requests") or {} if isinstance(resources, Mapping) else None
    limits = resources.get("limits") or {} if isinstance(resources, Mapping) else None
    if not isinstance(requests, Mapping) or not isinstance(limits, Mapping):
        raise_at(f"{path}.resources", "must hold requests and limits objects")
    bases: list[float | None] = []
    for resource in ("cpu", "memory"):
        if resource in requests:
            bases.append(quantities.parse_at(requests[resource], f"{path}.resources.requests.{resource}"))
        elif resource in limits:
            bases.append(quantities.parse_at(limits[resource], f"{path}.resources.limits.{resource}"))
        else:
            bases.append(None)
    limit = quantities.parse_at(limits["memory"], f"{path}.resources.limits.memory") if "memory" in limits else None
    return Container(container["name"], bases[0], bases[1], limit)


def from_json(item: Mapping[str, Any], path: str) -> PodDigest:
    """A digest given as JSON; `StateError` listing every bad field with its path."""
    problems: list[Problem] = []

    def problem(field: str, message: str) -> None:
        problems.append({"path": f"{path}.{field}", "message": message})

    for field in ("namespace", "name"):
        if not isinstance(item.get(field), str) or not item[field]:
            problem(field, "is required (a non-empty string)")
    for field in ("uid", "podIP", "service"):
        if item.get(field) is not None and not isinstance(item[field], str):
            problem(field, "must be a string")
    for field in ("labels", "annotations"):
        mapping = item.get(field)
        if mapping is not None and not is_string_map(mapping):
            problem(field, "must map strings to strings")
    running = item.get("running", False)
    if not isinstance(running, bool):
        problem("running", "must be true or false")
    containers = []
    raw = item.get("containers", [])
    if not isinstance(raw, list):
        problem("containers", "must be a list of {name, cpu, memory, memoryLimit}")
        raw = []
    for index, container in enumerate(raw):
        where = f"containers[{index}]"
        if not isinstance(container, Mapping) or not isinstance(container.get("name"), str):
            problem(where, "must be an object with a name")
            continue
        numbers = []
        for field in ("cpu", "memory", "memoryLimit"):
            number = container.get(field)
            if number is not None and (
                isinstance(number, bool) or not isinstance(number, (int, float)) or not 0 <= number < math.inf
            ):
                problem(f"{where}.{field}", "must be a number >= 0 (cores, bytes) or null")
                number = None
            numbers.append(None if number is None else float(number))
        containers.append(Container(container["name"], *numbers))
    if problems:
        raise StateError(problems)
    return PodDigest(
        item["namespace"],
        item["name"],
        uid=item.get("uid"),
        labels=item.get("labels"),
        annotations=item.get("annotations"),
        running=running,
        pod_ip=item.get("podIP") or None,
        service=item.get("service"),
        containers=tuple(containers),
    )


def is_string_map(value: Any) -> bool:
    return isinstance(value, Mapping) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())

"""A pod's CPU and memory usage as percentages of its requests (or limits where no request is set).

Usage comes from its PodMetrics; containers are matched by name. A container with neither a request
nor a limit for a resource is left out of both sums for that resource. Regular containers count, and
so do init containers with `restartPolicy: Always` (native sidecars, which run beside the app).
The same sums in cores and bytes are the pod's sample for the triggers' windows, and, when asked,
the memory limit they run into (time-to-OOM): the sum of the counted containers' memory limits,
None unless every one of them has one.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from kprof_lib.state import cluster


class Usage(NamedTuple):
    matched: bool  # at least one container of the pod has metrics
    cpu_percent: float | None  # None: nothing to measure against
    memory_percent: float | None
    cpu_cores: float | None = None  # the same sums, raw
    memory_bytes: float | None = None
    memory_limit: float | None = None  # only with with_limit=True


NO_METRICS = Usage(False, None, None)


def measure(
    pod: dict[str, Any], pod_path: str, metrics: dict[str, Any] | None, metrics_path: str, *, with_limit: bool = False
) -> Usage:
    """The pod's usage (with `with_limit`, its memory limit too); `StateError` naming the path of a
    malformed container or quantity."""
    if metrics is None:
        return NO_METRICS
    used = {
        container["name"]: (index, container.get("usage") or {})
        for index, container in enumerate(metrics["containers"])
    }
    cpu_used = cpu_base = memory_used = memory_base = memory_limit = 0.0
    cpu_counted = memory_counted = matched = False
    limited = with_limit
    for container, container_path in _running_containers(pod, pod_path):
        entry = used.get(container["name"])
        if entry is None:
            continue
        matched = True
        index, usage = entry
        resources = container.get("resources") or {}
        requests = resources.get("requests") or {} if isinstance(resources, dict) else None
        limits = resources.get("limits") or {} if isinstance(resources, dict) else None
        if not isinstance(requests, dict) or not isinstance(limits, dict):
            cluster.raise_state_error(f"{container_path}.resources", "must hold requests and limits objects")
        for resource in ("cpu", "memory"):
            if resource in requests:
                base_path, base_raw = f"{container_path}.resources.requests.{resource}", requests[resource]
            elif resource in limits:
                base_path, base_raw = f"{container_path}.resources.limits.{resource}", limits[resource]
            else:
                continue
            if resource not in usage:
                continue
            base = cluster.quantity(base_raw, base_path)
            if base <= 0:
                continue
            value = cluster.quantity(usage[resource], f"{metrics_path}.containers[{index}].usage.{resource}")
            if resource == "cpu":
                cpu_used, cpu_base, cpu_counted = cpu_used + value, cpu_base + base, True
            else:
                memory_used, memory_base, memory_counted = memory_used + value, memory_base + base, True
                if limited and "memory" in limits:
                    memory_limit += cluster.quantity(limits["memory"], f"{container_path}.resources.limits.memory")
                else:
                    limited = False
    if not matched:
        return NO_METRICS
    return Usage(
        True,
        100.0 * cpu_used / cpu_base if cpu_counted else None,
        100.0 * memory_used / memory_base if memory_counted else None,
        cpu_used if cpu_counted else None,
        memory_used if memory_counted else None,
        memory_limit if limited and memory_counted and memory_limit > 0 else None,
    )


def _running_containers(pod: dict[str, Any], pod_path: str):
    spec = pod.get("spec") or {}
    if not isinstance(spec, dict):
        cluster.raise_state_error(f"{pod_path}.spec", "must be an object (a Pod's spec)")
    for group in ("containers", "initContainers"):
        containers = spec.get(group) or []
        if not isinstance(containers, list):
            cluster.raise_state_error(f"{pod_path}.spec.{group}", "must be a list of containers")
        for index, container in enumerate(containers):
            path = f"{pod_path}.spec.{group}[{index}]"
            if not isinstance(container, dict) or not isinstance(container.get("name"), str):
                cluster.raise_state_error(path, "must be a container with a name")
            if group == "initContainers" and container.get("restartPolicy") != "Always":
                continue
            yield container, path

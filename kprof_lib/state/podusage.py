"""A PodMetrics as reconcile reads it: `PodUsage`, a pod's name and each container's usage in numbers.

A cluster state's `podMetrics` may hold PodMetrics as metrics-server returns them (quantity
strings, read by `usage_at` when a check measures the pod, every bad field named by its path) and
`PodUsage` records, trusted as they are. The operator's metrics reader makes the records with
`usage_of` as each PodMetrics of a LIST is decoded, while it is fresh in memory; what it cannot read
stays a PodMetrics, for reconcile to name the problem. The numbers are those `quantities` gives for
the strings, so both forms decide alike.

A record also holds its containers' names and summed figures (`record` computes them): a pod whose
counted containers are those same containers, in that order, is measured from the sums at once
(`planning.usage.measure`) instead of container by container.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from kprof_lib.state import quantities
from kprof_lib.state.errors import StateError

# (container name, CPU cores or None, memory bytes or None); None: that usage was not reported.
ContainerUsage = tuple[str, float | None, float | None]


class PodUsage(NamedTuple):
    namespace: str
    name: str
    containers: tuple[ContainerUsage, ...]
    # The containers' names in order, and their CPU and memory summed in that order (None: some
    # container did not report it). Made by `record`; a record without them is measured container
    # by container.
    names: tuple[str, ...] = ()
    cpu: float | None = None
    memory: float | None = None


def record(namespace: str, name: str, containers: tuple[ContainerUsage, ...]) -> PodUsage:
    """The PodUsage of these containers, with their names and sums."""
    cpu: float | None = 0.0
    memory: float | None = 0.0
    for _, cpu_used, memory_used in containers:
        cpu = None if cpu is None or cpu_used is None else cpu + cpu_used
        memory = None if memory is None or memory_used is None else memory + memory_used
    return PodUsage(namespace, name, containers, tuple([container[0] for container in containers]), cpu, memory)


def usage_at(item: Mapping[str, Any], path: str) -> PodUsage:
    """The usage of a PodMetrics whose metadata and containers' shape `cluster.read` checked, without
    the sums (a check measures it container by container); `StateError` naming the path of a
    quantity that is not one."""
    metadata = item["metadata"]
    containers = []
    for index, container in enumerate(item["containers"]):
        usage = container.get("usage") or _NONE
        figures = [container["name"]]
        for resource in ("cpu", "memory"):
            value = usage.get(resource)
            if value is None and resource not in usage:
                figures.append(None)
                continue
            # The forms metrics-server writes are read without the memo: figures do not repeat.
            number = quantities.whole(value) if type(value) is str else None
            if number is None:
                number = quantities.parse_at(value, f"{path}.containers[{index}].usage.{resource}")
            figures.append(number)
        containers.append(tuple(figures))
    return PodUsage(metadata["namespace"], metadata["name"], tuple(containers))


def usage_of(item: Any) -> PodUsage | Any:
    """The `record` of a PodMetrics as it is read; anything else (no name, a bad quantity), unchanged."""
    if type(item) is not dict:
        return item
    usage = _usual(item)
    if usage is not None:
        return usage
    metadata, containers = item.get("metadata"), item.get("containers")
    if (
        type(metadata) is not dict
        or type(metadata.get("name")) is not str
        or type(metadata.get("namespace")) is not str
        or not metadata["name"]
        or not metadata["namespace"]
        or type(containers) is not list
        or not all(
            type(c) is dict and type(c.get("name")) is str and type(c.get("usage", _NONE)) is dict for c in containers
        )
    ):
        return item
    try:
        found = usage_at(item, "")
    except StateError:
        return item
    return record(found.namespace, found.name, found.containers)


def _usual(item: dict[str, Any]) -> PodUsage | None:
    """A PodMetrics as metrics-server writes every one (names, both figures of every container in
    integer form) read in one pass; None for anything else, which `usage_of` reads with care."""
    try:
        metadata = item["metadata"]
        namespace, name = metadata["namespace"], metadata["name"]
        whole = quantities.whole
        containers = tuple(
            [(c["name"], whole(c["usage"]["cpu"]), whole(c["usage"]["memory"])) for c in item["containers"]]
        )
    except (KeyError, TypeError, AttributeError):  # a field missing, or not of its type
        return None
    if type(namespace) is not str or type(name) is not str or not namespace or not name:
        return None
    cpu_sum = memory_sum = 0.0  # summed in order, as `record` does
    for container_name, cpu, memory in containers:
        if type(container_name) is not str or cpu is None or memory is None:
            return None
        cpu_sum += cpu
        memory_sum += memory
    names = tuple([container[0] for container in containers])
    return tuple.__new__(PodUsage, (namespace, name, containers, names, cpu_sum, memory_sum))


_NONE: Mapping[str, Any] = {}

"""A pod's CPU and memory usage as percentages of its requests (or limits where no request is set).

Usage comes from its PodUsage (or its PodMetrics, read into one here); containers are matched by
name. A container with neither a request nor a limit for a resource is left out of both sums for
that resource. Regular containers count, and so do init containers with `restartPolicy: Always`
(native sidecars, which run beside the app).
The same sums in cores and bytes are the pod's sample for the triggers' windows, and, when asked,
the memory limit they run into (time-to-OOM): the sum of the counted containers' memory limits,
None unless every one of them has one.

Most pods are measured at once: when every counted container has a base for both resources and the
PodUsage reports exactly those containers, in that order, with both figures, its sums over its
bases (`Bases`, worked out once for the containers that replicas share) are the same numbers the
container-by-container sums give, added in the same order.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from kprof_lib.state import digest, podusage


class Usage(NamedTuple):
    matched: bool  # at least one container of the pod has metrics
    cpu_percent: float | None  # None: nothing to measure against
    memory_percent: float | None
    cpu_cores: float | None = None  # the same sums, raw
    memory_bytes: float | None = None
    memory_limit: float | None = None  # only with with_limit=True


NO_METRICS = Usage(False, None, None)


class Bases(NamedTuple):
    """What a pod's counted containers are measured against, summed in order: their names, CPU and
    memory bases, and memory limits (None unless every one has one above zero)."""

    names: tuple[str, ...]
    cpu: float
    memory: float
    memory_limit: float | None


def bases(containers: tuple[digest.Container, ...]) -> Bases | None:
    """The containers' summed bases; None when one has no base for a resource (or is zero), or two
    share a name: those pods are measured container by container."""
    names = tuple([container.name for container in containers])
    if not containers or len(set(names)) != len(names):
        return None
    cpu = memory = limit = 0.0
    limited = True
    for _, cpu_of, memory_of, memory_limit_of in containers:
        if not cpu_of or not memory_of:
            return None
        cpu += cpu_of
        memory += memory_of
        if memory_limit_of is None:
            limited = False
        else:
            limit += memory_limit_of
    return Bases(names, cpu, memory, limit if limited and limit > 0 else None)


def measure(
    pod: digest.PodDigest,
    index: int,
    metrics: podusage.PodUsage | dict[str, Any] | None,
    metrics_path: str,
    *,
    with_limit: bool = False,
    summed: Bases | None = None,
) -> Usage:
    """The usage of the pod at `pods[index]` (with `with_limit`, its memory limit too) from its
    PodUsage or PodMetrics (at `metrics_path`); `StateError` naming the path of a malformed container
    or quantity. `summed`: the pod's `bases`, if it has them."""
    if metrics is None:
        return NO_METRICS
    if not isinstance(metrics, podusage.PodUsage):
        metrics = podusage.usage_at(metrics, metrics_path)
    if summed is not None and metrics.names == summed.names:
        cpu_used, memory_used = metrics.cpu, metrics.memory
        if cpu_used is not None and memory_used is not None:
            return tuple.__new__(
                Usage,
                (
                    True,
                    100.0 * cpu_used / summed.cpu,
                    100.0 * memory_used / summed.memory,
                    cpu_used,
                    memory_used,
                    summed.memory_limit if with_limit else None,
                ),
            )
    reported = metrics.containers
    containers = pod.containers if pod.containers is not None else pod.containers_of(f"pods[{index}]")
    cpu_used = cpu_base = memory_used = memory_base = memory_limit = 0.0
    cpu_counted = memory_counted = matched = False
    limited = with_limit
    for name, cpu_of, memory_of, memory_limit_of in containers:
        # Pods have one to a few containers: a scan costs less than building a map per pod.
        for found in reported:
            if found[0] == name:
                break
        else:
            continue
        matched = True
        _, cpu, memory = found
        if cpu_of and cpu is not None:
            cpu_used += cpu
            cpu_base += cpu_of
            cpu_counted = True
        if memory_of and memory is not None:
            memory_used += memory
            memory_base += memory_of
            memory_counted = True
            if limited and memory_limit_of is not None:
                memory_limit += memory_limit_of
            else:
                limited = False
    if not matched:
        return NO_METRICS
    # Every field, to tuple.__new__: the named tuple's own __new__ costs twice as much per pod.
    return tuple.__new__(
        Usage,
        (
            True,
            100.0 * cpu_used / cpu_base if cpu_counted else None,
            100.0 * memory_used / memory_base if memory_counted else None,
            cpu_used if cpu_counted else None,
            memory_used if memory_counted else None,
            memory_limit if limited and memory_counted and memory_limit > 0 else None,
        ),
    )

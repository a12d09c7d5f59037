"""Reads and checks a cluster state: `now`, pods, PodMetrics and capture history.

The shape is documented by schemas/cluster_state.schema.json. Checking 10,000 pods against that
schema would cost more than deciding about them, so this module checks by hand the fields reconcile
reads, where it reads them: pod metadata for every pod (selection needs it), containers, status
and quantities only for pods that pass selection. Every problem names its path (`pods[3].metadata`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

from kprof_lib.spec.errors import Problem
from kprof_lib.state import quantities
from kprof_lib.state.errors import StateError

THRESHOLD_KEY = "lastThresholdCapture"
ON_DEMAND_KEY = "lastOnDemandCapture"
# A pod's part in its workload's healthy baseline: when kprof last took a baseline capture of it,
# when it last had a healthy capture (and the JSON reference to that capture), and the workload
# (the service name) both belong to.
BASELINE_KEY = "lastBaselineCapture"
HEALTHY_TIME_KEY = "lastHealthyCapture"
HEALTHY_KEY = "healthyCapture"
WORKLOAD_KEY = "workload"
# A run of failed captures: when the last one failed, and when the first of the run did (the
# backoff grows with the run's length; see planning.cadence.retry_due).
FAILED_KEY = "lastFailedCapture"
FAILING_SINCE_KEY = "failingSince"
TIME_KEYS = (THRESHOLD_KEY, ON_DEMAND_KEY, BASELINE_KEY, HEALTHY_TIME_KEY, FAILED_KEY, FAILING_SINCE_KEY)


@dataclass(frozen=True)
class History:
    last_threshold: dt.datetime | None = None
    last_on_demand: dt.datetime | None = None
    last_baseline: dt.datetime | None = None  # the later of its baseline and healthy captures
    workload: str | None = None
    last_failed: dt.datetime | None = None
    failing_since: dt.datetime | None = None


@dataclass
class ClusterState:
    now: dt.datetime
    now_text: str
    pods: list[dict[str, Any]]
    metrics: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    metrics_paths: dict[tuple[str, str], str] = field(default_factory=dict)
    history: dict[str, History] = field(default_factory=dict)


def parse_time(value: Any) -> dt.datetime:
    """An RFC 3339 timestamp with a zone; `ValueError` otherwise."""
    if not isinstance(value, str):
        raise ValueError(f"must be an RFC 3339 timestamp string, not {type(value).__name__}")
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an RFC 3339 timestamp") from None
    if parsed.tzinfo is None or ("T" not in value.upper() and " " not in value):
        raise ValueError(f"{value!r} is not an RFC 3339 timestamp with a zone (e.g. 2026-01-02T03:04:05Z)")
    return parsed


def format_time(moment: dt.datetime) -> str:
    """`moment` as the API writes times: RFC 3339 in UTC, whole seconds (2026-01-02T03:04:05Z)."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def read(cluster_state: Any) -> ClusterState:
    """The checked cluster state; `StateError` listing every problem found."""
    problems: list[Problem] = []
    if not isinstance(cluster_state, Mapping):
        raise StateError([{"path": "(cluster state)", "message": "must be an object with now and pods"}])

    now = None
    if "now" not in cluster_state:
        problems.append({"path": "now", "message": "is required"})
    else:
        try:
            now = parse_time(cluster_state["now"])
        except ValueError as error:
            problems.append({"path": "now", "message": str(error)})

    pods: list[dict[str, Any]] = []
    if "pods" not in cluster_state:
        problems.append({"path": "pods", "message": "is required"})
    else:
        pods = _items(cluster_state["pods"], "pods", problems)
        _check_pods(pods, problems)

    metrics, metrics_paths = _read_metrics(cluster_state.get("podMetrics"), problems)
    history = _read_history(cluster_state.get("history"), problems)
    if problems:
        raise StateError(problems)
    assert now is not None
    return ClusterState(now, cluster_state["now"], pods, metrics, metrics_paths, history)


def _items(value: Any, path: str, problems: list[Problem]) -> list[Any]:
    """A list, or a List object's items (what `kubectl get -o json` prints)."""
    if isinstance(value, list):
        return value
    if isinstance(value, Mapping) and isinstance(value.get("items"), list):
        return value["items"]
    problems.append({"path": path, "message": "must be a list or a List object with items"})
    return []


def _check_pods(pods: list[Any], problems: list[Problem]) -> None:
    seen: dict[tuple[str, str], int] = {}
    for index, pod in enumerate(pods):
        path = f"pods[{index}]"
        metadata = pod.get("metadata") if isinstance(pod, Mapping) else None
        if not isinstance(metadata, Mapping):
            problems.append({"path": f"{path}.metadata", "message": "is required (a Pod object with metadata)"})
            continue
        name, namespace = metadata.get("name"), metadata.get("namespace")
        if not isinstance(name, str) or not name:
            problems.append({"path": f"{path}.metadata.name", "message": "is required"})
        if not isinstance(namespace, str) or not namespace:
            problems.append({"path": f"{path}.metadata.namespace", "message": "is required"})
        for key in ("labels", "annotations"):
            mapping = metadata.get(key)
            if mapping is not None and not _is_string_map(mapping):
                problems.append({"path": f"{path}.metadata.{key}", "message": "must map strings to strings"})
        if isinstance(name, str) and isinstance(namespace, str):
            first = seen.setdefault((namespace, name), index)
            if first != index:
                problems.append({"path": path, "message": f"duplicates pods[{first}] ({namespace}/{name})"})


def _is_string_map(value: Any) -> bool:
    return isinstance(value, Mapping) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())


def _read_metrics(value: Any, problems: list[Problem]):
    metrics: dict[tuple[str, str], dict[str, Any]] = {}
    paths: dict[tuple[str, str], str] = {}
    if value is None:
        return metrics, paths
    for index, item in enumerate(_items(value, "podMetrics", problems)):
        path = f"podMetrics[{index}]"
        metadata = item.get("metadata") if isinstance(item, Mapping) else None
        if not isinstance(metadata, Mapping) or not all(
            isinstance(metadata.get(k), str) and metadata.get(k) for k in ("name", "namespace")
        ):
            problems.append({"path": f"{path}.metadata", "message": "needs name and namespace"})
            continue
        containers = item.get("containers")
        if not isinstance(containers, list) or not all(
            isinstance(c, Mapping) and isinstance(c.get("name"), str) and isinstance(c.get("usage", {}), Mapping)
            for c in containers
        ):
            problems.append({"path": f"{path}.containers", "message": "must be a list of {name, usage}"})
            continue
        key = (metadata["namespace"], metadata["name"])
        if key in metrics:
            problems.append({"path": path, "message": f"duplicates {paths[key]} ({key[0]}/{key[1]})"})
            continue
        metrics[key], paths[key] = item, path
    return metrics, paths


def _read_history(value: Any, problems: list[Problem]) -> dict[str, History]:
    history: dict[str, History] = {}
    if value is None:
        return history
    if not isinstance(value, Mapping):
        problems.append({"path": "history", "message": "must be an object keyed namespace/pod"})
        return history
    for key, entry in value.items():
        path = f"history[{key!r}]"
        if not isinstance(key, str) or key.count("/") != 1 or not all(key.split("/")):
            problems.append({"path": path, "message": "keys must be namespace/pod"})
            continue
        if entry is None:
            continue
        if not isinstance(entry, Mapping):
            problems.append({"path": path, "message": f"must be an object with {THRESHOLD_KEY} and {ON_DEMAND_KEY}"})
            continue
        times = {}
        for field_name in TIME_KEYS:
            raw = entry.get(field_name)
            if raw is None:
                continue
            try:
                times[field_name] = parse_time(raw)
            except ValueError as error:
                problems.append({"path": f"{path}.{field_name}", "message": str(error)})
        baselines = [t for t in (times.get(BASELINE_KEY), times.get(HEALTHY_TIME_KEY)) if t is not None]
        workload = entry.get(WORKLOAD_KEY)
        history[key] = History(
            last_threshold=times.get(THRESHOLD_KEY),
            last_on_demand=times.get(ON_DEMAND_KEY),
            last_baseline=max(baselines) if baselines else None,
            workload=workload if isinstance(workload, str) else None,
            last_failed=times.get(FAILED_KEY),
            failing_since=times.get(FAILING_SINCE_KEY),
        )
    return history


def raise_state_error(path: str, message: str) -> NoReturn:
    """Raises a `StateError` with one problem: for checks made where a field is read."""
    raise StateError([{"path": path, "message": message}])


def quantity(value: Any, path: str) -> float:
    """A quantity read from the cluster state; `StateError` naming `path` if it is not one."""
    try:
        return quantities.parse(value)
    except (ValueError, TypeError) as error:
        raise StateError([{"path": path, "message": str(error)}]) from None

"""Reads and checks a cluster state: `now`, pods, PodMetrics, capture history, and what the triggers
read (each pod's window of recent samples, goroutine counts, firing alerts).

The shape is documented by schemas/cluster_state.schema.json. Checking 10,000 pods against that
schema would cost more than deciding about them, so this module checks by hand the fields reconcile
reads, where it reads them: every pod becomes a `digest.PodDigest` (a v1 Pod's metadata and status
checked at once, its containers and quantities only when a check measures it), a pod's window and
goroutine count are checked only when a trigger reads them. Every problem names its path
(`pods[3].metadata`).
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import operator
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from kprof_lib.spec.errors import Problem
from kprof_lib.state import digest, podusage
from kprof_lib.state.errors import StateError, raise_at

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
# The triggers' families (spec.triggers): when each last captured the pod; the last
# profiling.io/capture-now value served (one capture per value); the alert fingerprints served.
SPIKE_KEY = "lastSpikeCapture"
OOM_KEY = "lastOomCapture"
ALERT_KEY = "lastAlertCapture"
REQUESTED_KEY = "lastRequestedCapture"
CAPTURE_NOW_KEY = "captureNowValue"
FINGERPRINTS_KEY = "alertFingerprints"
MAX_FINGERPRINTS = 20  # served fingerprints kept per pod, newest last
TIME_KEYS = (
    THRESHOLD_KEY,
    ON_DEMAND_KEY,
    BASELINE_KEY,
    SPIKE_KEY,
    OOM_KEY,
    ALERT_KEY,
    REQUESTED_KEY,
    HEALTHY_TIME_KEY,
    FAILED_KEY,
    FAILING_SINCE_KEY,
)

# At most this many samples per pod in `usageWindow` (the schema's maxItems; spec.triggers.windowSamples
# is at most as many).
MAX_WINDOW_SAMPLES = 120


class History(NamedTuple):  # a named tuple: one is read per pod with history, at every check
    last_threshold: dt.datetime | None = None
    last_on_demand: dt.datetime | None = None
    last_baseline: dt.datetime | None = None  # the later of its baseline and healthy captures
    workload: str | None = None
    last_failed: dt.datetime | None = None
    failing_since: dt.datetime | None = None
    last_spike: dt.datetime | None = None
    last_oom: dt.datetime | None = None
    last_alert: dt.datetime | None = None
    last_requested: dt.datetime | None = None
    capture_now_value: str | None = None
    alert_fingerprints: tuple[str, ...] = ()

    def capture_times(self) -> set[dt.datetime]:
        """When the pod was captured, as far as the history tells (the last of each family, the last
        failed attempt), each time once: for the per-config rate limit."""
        times = (
            self.last_threshold,
            self.last_on_demand,
            self.last_baseline,
            self.last_spike,
            self.last_oom,
            self.last_alert,
            self.last_requested,
            self.last_failed,
        )
        return {moment for moment in times if moment is not None}


# Where each history key goes among History's fields (a baseline and a healthy capture both go to
# last_baseline, which keeps the later).
_TIME_SLOTS = {
    key: History._fields.index(name)
    for key, name in (
        (THRESHOLD_KEY, "last_threshold"),
        (ON_DEMAND_KEY, "last_on_demand"),
        (BASELINE_KEY, "last_baseline"),
        (HEALTHY_TIME_KEY, "last_baseline"),
        (FAILED_KEY, "last_failed"),
        (FAILING_SINCE_KEY, "failing_since"),
        (SPIKE_KEY, "last_spike"),
        (OOM_KEY, "last_oom"),
        (ALERT_KEY, "last_alert"),
        (REQUESTED_KEY, "last_requested"),
    )
}
assert set(_TIME_SLOTS) == set(TIME_KEYS)
_WORKLOAD_SLOT = History._fields.index("workload")
_CAPTURE_NOW_SLOT = History._fields.index("capture_now_value")
_FINGERPRINTS_SLOT = History._fields.index("alert_fingerprints")
_NO_FIELDS = tuple(History())


class Sample(NamedTuple):
    """One earlier check's measurement of a pod: seconds before `now` (negative) and the values
    (None: not measured)."""

    offset: float
    cpu_cores: float | None
    memory_bytes: float | None
    goroutines: int | None


@dataclass(frozen=True)
class Alert:
    """A firing alert the operator's receiver holds: it names a namespace and a pod, or labels."""

    fingerprint: str
    alertname: str
    namespace: str
    pod: str | None
    match_labels: tuple[tuple[str, str], ...]
    starts_at: dt.datetime

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether a pod of the alert's namespace with `labels` is one the alert names by labels."""
        return bool(self.match_labels) and all(labels.get(key) == value for key, value in self.match_labels)


@dataclass
class ClusterState:
    now: dt.datetime
    now_text: str
    pods: list[digest.PodDigest]
    metrics: dict[tuple[str, str], podusage.PodUsage | dict[str, Any]] = field(default_factory=dict)
    # Each PodMetrics' path, for the problems found where it is read (a PodUsage may have none:
    # nothing in it can be wrong).
    metrics_paths: dict[tuple[str, str], str] = field(default_factory=dict)
    history: dict[str, History] = field(default_factory=dict)
    # "namespace/pod" -> its samples as given; checked by `window()` when a trigger reads them.
    usage_window: Mapping[str, Any] = field(default_factory=dict)
    # "namespace/pod" -> the goroutine count read at this check; checked by `goroutine_count()`.
    goroutines: Mapping[str, Any] = field(default_factory=dict)
    alerts: tuple[Alert, ...] = ()

    def window(self, key: str, size: int) -> list[Sample]:
        """The pod's last `size` samples taken before `now`, oldest first; `StateError` naming the
        path of a malformed one."""
        samples = self.usage_window.get(key)
        if samples is None:
            return []
        path = f"usageWindow[{key!r}]"
        if not isinstance(samples, list):
            raise_at(path, "must be a list of samples, oldest first")
        if len(samples) > MAX_WINDOW_SAMPLES:
            raise_at(path, f"holds {len(samples)} samples; at most {MAX_WINDOW_SAMPLES}")
        found: list[Sample] = []
        for index in range(len(samples) - 1, -1, -1):  # newest first, up to `size` before now
            if len(found) == size:
                break
            sample = _sample(samples[index], f"{path}[{index}]", self.now)
            if sample.offset < 0:
                found.append(sample)
        found.reverse()
        return found

    def goroutine_count(self, key: str) -> int | None:
        """The pod's goroutine count read at this check; None: not read."""
        count = self.goroutines.get(key)
        if count is not None and (type(count) is not int or count < 0):
            raise_at(f"goroutines[{key!r}]", f"must be a whole number of goroutines >= 0, not {count!r}")
        return count


def parse_time(value: Any) -> dt.datetime:
    """An RFC 3339 timestamp with a zone; `ValueError` otherwise."""
    if not isinstance(value, str):
        raise ValueError(f"must be an RFC 3339 timestamp string, not {type(value).__name__}")
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an RFC 3339 timestamp") from None
    if parsed.tzinfo is None or ("T" not in value and "t" not in value and " " not in value):
        raise ValueError(f"{value!r} is not an RFC 3339 timestamp with a zone (e.g. 2026-01-02T03:04:05Z)")
    return parsed


# Memoised: the times a plan's messages give (cooldowns until, failures at) are those of the
# history, whose entries share the few `now`s of the checks that captured.
@functools.lru_cache(maxsize=4096)
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

    pods: list[digest.PodDigest] = []
    if "pods" not in cluster_state:
        problems.append({"path": "pods", "message": "is required"})
    else:
        pods = _read_pods(_items(cluster_state["pods"], "pods", problems), problems)

    metrics, metrics_paths = _read_metrics(cluster_state.get("podMetrics"), problems)
    history = _read_history(cluster_state.get("history"), problems)
    usage_window = _keyed(cluster_state.get("usageWindow"), "usageWindow", problems)
    goroutines = _keyed(cluster_state.get("goroutines"), "goroutines", problems)
    alerts = _read_alerts(cluster_state.get("alerts"), problems)
    if problems:
        raise StateError(problems)
    assert now is not None
    return ClusterState(
        now, cluster_state["now"], pods, metrics, metrics_paths, history, usage_window, goroutines, alerts
    )


def _items(value: Any, path: str, problems: list[Problem]) -> list[Any]:
    """A list, or a List object's items (what `kubectl get -o json` prints)."""
    if isinstance(value, list):
        return value
    if isinstance(value, Mapping) and isinstance(value.get("items"), list):
        return value["items"]
    problems.append({"path": path, "message": "must be a list or a List object with items"})
    return []


def _read_pods(items: list[Any], problems: list[Problem]) -> list[digest.PodDigest]:
    """Every pod as a digest: v1 Pods (metadata checked here, the rest where it is read), digests
    in JSON (checked whole) and `PodDigest` objects (trusted)."""
    # map() over C-level callables: the whole list is looked at without a bytecode step per pod.
    if set(map(type, items)) <= _DIGEST_TYPE and len(items) == len(set(map(_POD_KEY, items))):
        return list(items)  # the pod cache's digests, each pod once: nothing to check
    pods: list[digest.PodDigest] = []
    seen: dict[tuple[str, str], int] = {}
    for index, pod in enumerate(items):
        path = f"pods[{index}]"
        if type(pod) is not digest.PodDigest:
            pod = _read_pod(pod, path, problems)  # None: its problems are listed
            if pod is None:
                continue
        first = seen.setdefault((pod.namespace, pod.name), index)
        if first != index:
            problems.append({"path": path, "message": f"duplicates pods[{first}] ({pod.namespace}/{pod.name})"})
            continue
        pods.append(pod)
    return pods


def _read_pod(pod: Any, path: str, problems: list[Problem]) -> digest.PodDigest | None:
    try:
        if isinstance(pod, Mapping) and pod.get("kind") == digest.KIND:
            return digest.from_json(pod, path)
        metadata = pod.get("metadata") if isinstance(pod, Mapping) else None
        if not isinstance(metadata, Mapping):
            problems.append({"path": f"{path}.metadata", "message": "is required (a Pod object with metadata)"})
            return None
        found = len(problems)
        name, namespace = metadata.get("name"), metadata.get("namespace")
        if not isinstance(name, str) or not name:
            problems.append({"path": f"{path}.metadata.name", "message": "is required"})
        if not isinstance(namespace, str) or not namespace:
            problems.append({"path": f"{path}.metadata.namespace", "message": "is required"})
        for key in ("labels", "annotations"):
            mapping = metadata.get(key)
            if mapping is not None and not digest.is_string_map(mapping):
                problems.append({"path": f"{path}.metadata.{key}", "message": "must map strings to strings"})
        return digest.from_pod(pod, path) if len(problems) == found else None
    except StateError as error:
        problems.extend(error.errors)
        return None


def _read_metrics(value: Any, problems: list[Problem]):
    metrics: dict[tuple[str, str], podusage.PodUsage | dict[str, Any]] = {}
    paths: dict[tuple[str, str], str] = {}
    if value is None:
        return metrics, paths
    items = _items(value, "podMetrics", problems)
    if set(map(type, items)) <= _USAGE_TYPE:
        metrics = dict(zip(map(_NAMESPACE_AND_NAME, items), items, strict=True))
        if len(metrics) == len(items):
            return metrics, paths  # what the operator's reader gives, each pod once: nothing to check
        metrics = {}
    for index, item in enumerate(items):
        if type(item) is podusage.PodUsage:  # trusted: made by usage_of from a checked PodMetrics
            key = (item.namespace, item.name)
        else:
            # `type(...) is dict` first: what json.loads gives, tested without the Mapping ABC's cost.
            metadata = item.get("metadata") if type(item) is dict or isinstance(item, Mapping) else None
            name = namespace = None
            if type(metadata) is dict or isinstance(metadata, Mapping):
                name, namespace = metadata.get("name"), metadata.get("namespace")
            if type(name) is not str or type(namespace) is not str or not name or not namespace:
                problems.append({"path": f"podMetrics[{index}].metadata", "message": "needs name and namespace"})
                continue
            containers = item.get("containers")
            if type(containers) is not list or not all(map(_is_usage, containers)):
                message = "must be a list of {name, usage}"
                problems.append({"path": f"podMetrics[{index}].containers", "message": message})
                continue
            key = (namespace, name)
        if key in metrics:
            message = f"duplicates {paths[key]} ({key[0]}/{key[1]})"
            problems.append({"path": f"podMetrics[{index}]", "message": message})
            continue
        metrics[key], paths[key] = item, f"podMetrics[{index}]"
    return metrics, paths


_DIGEST_TYPE = frozenset({digest.PodDigest})
_USAGE_TYPE = frozenset({podusage.PodUsage})
_NAMESPACE_AND_NAME = operator.attrgetter("namespace", "name")  # of a PodUsage
_POD_KEY = operator.attrgetter("key")  # of a PodDigest: "namespace/pod"


def _is_usage(container: Any) -> bool:
    """A PodMetrics container: {name, usage}."""
    if type(container) is not dict and not isinstance(container, Mapping):
        return False
    usage = container.get("usage", _NO_USAGE)
    return type(container.get("name")) is str and (type(usage) is dict or isinstance(usage, Mapping))


_NO_USAGE: Mapping[str, Any] = {}


def _read_history(value: Any, problems: list[Problem]) -> dict[str, History]:
    history: dict[str, History] = {}
    if value is None:
        return history
    if not isinstance(value, Mapping):
        problems.append({"path": "history", "message": "must be an object keyed namespace/pod"})
        return history
    # The executor records the plan's `now` for every pod a check captured: a history holds few
    # distinct times, each parsed once.
    parsed: dict[str, dt.datetime] = {}
    for key, entry in value.items():
        # Exactly one "/", with a namespace before it and a pod after it.
        if not isinstance(key, str) or key.count("/") != 1 or key[0] == "/" or key[-1] == "/":
            problems.append({"path": f"history[{key!r}]", "message": "keys must be namespace/pod"})
            continue
        if entry is None:
            continue
        if type(entry) is not dict and not isinstance(entry, Mapping):
            message = f"must be an object with {THRESHOLD_KEY} and {ON_DEMAND_KEY}"
            problems.append({"path": f"history[{key!r}]", "message": message})
            continue
        fields: list[Any] = list(_NO_FIELDS)  # History's, by position; paths are made for a problem only
        for field_name, raw in entry.items():  # an entry holds a few of the many keys
            slot = _TIME_SLOTS.get(field_name)
            if slot is None or raw is None:
                continue
            moment = parsed.get(raw) if type(raw) is str else None
            if moment is None:
                try:
                    moment = parse_time(raw)
                except ValueError as error:
                    problems.append({"path": f"history[{key!r}].{field_name}", "message": str(error)})
                    continue
                parsed[raw] = moment
            if fields[slot] is None or moment > fields[slot]:  # of a baseline and a healthy capture, the later
                fields[slot] = moment
        workload = entry.get(WORKLOAD_KEY)
        if isinstance(workload, str):
            fields[_WORKLOAD_SLOT] = workload
        capture_now = entry.get(CAPTURE_NOW_KEY)
        if capture_now is not None:
            if isinstance(capture_now, str):
                fields[_CAPTURE_NOW_SLOT] = capture_now
            else:
                problems.append({"path": f"history[{key!r}].{CAPTURE_NOW_KEY}", "message": "must be a string"})
        fingerprints = entry.get(FINGERPRINTS_KEY)
        if fingerprints:
            if isinstance(fingerprints, list) and all(isinstance(f, str) for f in fingerprints):
                fields[_FINGERPRINTS_SLOT] = tuple(fingerprints[-MAX_FINGERPRINTS:])
            else:
                message = "must be a list of strings"
                problems.append({"path": f"history[{key!r}].{FINGERPRINTS_KEY}", "message": message})
        # tuple.__new__ skips the named tuple's generated __new__ (its argument binding): the
        # fields are all there, in order.
        history[key] = tuple.__new__(History, fields)
    return history


def _keyed(value: Any, path: str, problems: list[Problem]) -> Mapping[str, Any]:
    """An object keyed "namespace/pod" whose values are checked where they are read."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        problems.append({"path": path, "message": "must be an object keyed namespace/pod"})
        return {}
    return value


def _sample(value: Any, path: str, now: dt.datetime) -> Sample:
    if not isinstance(value, Mapping):
        raise_at(path, "must be an object with time, cpuCores, memoryBytes, goroutines")
    try:
        offset = (parse_time(value.get("time")) - now).total_seconds()
    except ValueError as error:
        raise_at(f"{path}.time", str(error))
    cpu, memory, goroutines = (value.get(name) for name in ("cpuCores", "memoryBytes", "goroutines"))
    for name, number, kinds in (("cpuCores", cpu, (int, float)), ("memoryBytes", memory, (int, float))):
        if number is not None and (
            isinstance(number, bool) or not isinstance(number, kinds) or not 0 <= number < math.inf
        ):
            raise_at(f"{path}.{name}", "must be a number >= 0 or null")
    if goroutines is not None and (type(goroutines) is not int or goroutines < 0):
        raise_at(f"{path}.goroutines", "must be a whole number >= 0 or null")
    return Sample(offset, cpu, memory, goroutines)


def _read_alerts(value: Any, problems: list[Problem]) -> tuple[Alert, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        problems.append({"path": "alerts", "message": "must be a list of firing alerts"})
        return ()
    alerts = []
    for index, item in enumerate(value):
        path = f"alerts[{index}]"
        if not isinstance(item, Mapping):
            problems.append({"path": path, "message": "must be an object (fingerprint, alertname, namespace, ...)"})
            continue
        found = len(problems)
        for name in ("fingerprint", "alertname", "namespace"):
            if not isinstance(item.get(name), str) or not item[name]:
                problems.append({"path": f"{path}.{name}", "message": "is required (a non-empty string)"})
        pod = item.get("pod")
        if pod is not None and (not isinstance(pod, str) or not pod):
            problems.append({"path": f"{path}.pod", "message": "must be a non-empty string"})
        labels = item.get("matchLabels") or {}
        if not digest.is_string_map(labels):
            problems.append({"path": f"{path}.matchLabels", "message": "must map strings to strings"})
        starts_at = None
        try:
            starts_at = parse_time(item.get("startsAt"))
        except ValueError as error:
            problems.append({"path": f"{path}.startsAt", "message": str(error)})
        if len(problems) == found:
            assert starts_at is not None
            alerts.append(
                Alert(
                    item["fingerprint"],
                    item["alertname"],
                    item["namespace"],
                    pod,
                    tuple(sorted(labels.items())),
                    starts_at,
                )
            )
    return tuple(alerts)

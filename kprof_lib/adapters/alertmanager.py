"""Alertmanager's webhook notification (payload version "4") read and checked, and its firing
alerts turned into entries of the cluster state's `alerts` (schemas/cluster_state.schema.json)
through a label mapping. The operator's receiver (`runtimes.operator.alertreceiver`) hands it a
request body; nothing here does I/O.

A body that is not a version-4 notification is refused whole (`PayloadError`, every problem
with its path, e.g. `alerts[1].startsAt: 'soon' is not an RFC 3339 timestamp`), so a bad
delivery changes nothing. A well-formed notification may still hold alerts kprof cannot use (no
namespace label, no pod named): those are `ignored`, each with the reason, and the others kept.
Resolved alerts never trigger anything; their fingerprints are given so the receiver can forget
them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kprof_lib.spec.errors import Problem
from kprof_lib.state import cluster

VERSION = "4"
FIRING = "firing"
RESOLVED = "resolved"
STATUSES = (FIRING, RESOLVED)
# An alert's name goes into object metadata and Event messages; a fingerprint into the capture
# history, once per capture. Alertmanager's own are 16 hex digits, Prometheus' names short words.
MAX_FINGERPRINT_CHARS = 128
MAX_ALERTNAME_CHARS = 256
ALERTNAME_LABEL = "alertname"


@dataclass(frozen=True)
class LabelMapping:
    """Which alert labels name the pod: `namespace` (required), then `pod`, else the workload:
    each (alert label, pod label) pair of `match_labels` says the alert's value of the first must
    equal the pod's value of the second (e.g. alert label `service` to pod label
    `app.kubernetes.io/name`)."""

    namespace: str = "namespace"
    pod: str = "pod"
    match_labels: tuple[tuple[str, str], ...] = ()

    def describe(self) -> str:
        workload = ", ".join(f"{alert}={pod}" for alert, pod in self.match_labels) or "none"
        return f"namespace label {self.namespace!r}, pod label {self.pod!r}, workload labels: {workload}"


@dataclass(frozen=True)
class Alert:
    """One firing alert, as the cluster state's `alerts` holds it. A pod matches when its namespace
    is `namespace` and its name is `pod`, or (no `pod`) it carries every `match_labels` pair."""

    fingerprint: str
    alertname: str
    namespace: str
    starts_at: str  # RFC 3339, UTC, whole seconds
    pod: str | None = None
    match_labels: Mapping[str, str] = field(default_factory=dict)

    def to_state(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "fingerprint": self.fingerprint,
            "alertname": self.alertname,
            "namespace": self.namespace,
            "startsAt": self.starts_at,
        }
        if self.pod is not None:
            entry["pod"] = self.pod
        else:
            entry["matchLabels"] = dict(self.match_labels)
        return entry


@dataclass(frozen=True)
class Notification:
    """What one delivery says: the firing alerts kprof can use, the fingerprints of resolved ones,
    and why each other firing alert was ignored."""

    firing: tuple[Alert, ...]
    resolved: tuple[str, ...]
    ignored: tuple[str, ...]


class PayloadError(ValueError):
    """The body is not a version-4 webhook notification; `problems` name each field."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("; ".join(f"{p['path']}: {p['message']}" for p in problems))


def parse(body: bytes, mapping: LabelMapping) -> Notification:
    """The notification in `body`; `PayloadError` listing every problem when it is not one."""
    try:
        text = body.decode("utf-8")  # as Alertmanager sends it; json.loads would guess UTF-16 too
    except UnicodeDecodeError:
        raise PayloadError([{"path": "(body)", "message": "is not UTF-8 text"}]) from None
    try:
        document = json.loads(text)
    except ValueError as error:
        raise PayloadError([{"path": "(body)", "message": f"is not JSON: {error}"}]) from None
    if not isinstance(document, dict):
        raise PayloadError([{"path": "(body)", "message": "must be a JSON object (Alertmanager's webhook payload)"}])
    problems: list[Problem] = []
    version = document.get("version")
    if version != VERSION:
        shown = "missing" if version is None else f"not {json.dumps(version)}"
        problems.append({"path": "version", "message": f'must be "{VERSION}" (the webhook payload version), {shown}'})
    _check_status(document.get("status"), "status", problems)
    for name in ("receiver", "groupKey", "externalURL"):
        if name in document and not isinstance(document[name], str):
            problems.append({"path": name, "message": "must be a string"})
    for name in ("groupLabels", "commonLabels", "commonAnnotations"):
        if name in document and not _is_string_map(document[name]):
            problems.append({"path": name, "message": "must map strings to strings"})
    truncated = document.get("truncatedAlerts", 0)
    if not isinstance(truncated, int) or isinstance(truncated, bool) or truncated < 0:
        problems.append({"path": "truncatedAlerts", "message": "must be a whole number, 0 or more"})
    alerts = document.get("alerts")
    checked: list[tuple[int, dict[str, Any]]] = []
    if not isinstance(alerts, list):
        problems.append({"path": "alerts", "message": "is required: a list of alerts"})
    else:
        for index, alert in enumerate(alerts):
            if _check_alert(alert, f"alerts[{index}]", problems):
                checked.append((index, alert))
    if problems:
        raise PayloadError(problems)

    firing: list[Alert] = []
    resolved: list[str] = []
    ignored: list[str] = []
    for index, alert in checked:
        if alert["status"] == RESOLVED:
            resolved.append(alert["fingerprint"])
            continue
        mapped = _mapped(alert, mapping)
        if isinstance(mapped, Alert):
            firing.append(mapped)
        else:
            ignored.append(f"alerts[{index}] ({alert['labels'].get(ALERTNAME_LABEL, 'no alertname')}): {mapped}")
    return Notification(tuple(firing), tuple(resolved), tuple(ignored))


def _check_status(value: Any, path: str, problems: list[Problem]) -> bool:
    if value not in STATUSES:
        shown = "missing" if value is None else f"not {json.dumps(value)}"
        problems.append({"path": path, "message": f'must be "firing" or "resolved", {shown}'})
        return False
    return True


def _check_alert(alert: Any, path: str, problems: list[Problem]) -> bool:
    if not isinstance(alert, dict):
        problems.append({"path": path, "message": "must be an object"})
        return False
    before = len(problems)
    _check_status(alert.get("status"), f"{path}.status", problems)
    if not isinstance(alert.get("labels"), dict) or not _is_string_map(alert["labels"]):
        problems.append({"path": f"{path}.labels", "message": "is required: a map of strings to strings"})
    if "annotations" in alert and not _is_string_map(alert["annotations"]):
        problems.append({"path": f"{path}.annotations", "message": "must map strings to strings"})
    fingerprint = alert.get("fingerprint")
    if not isinstance(fingerprint, str) or not fingerprint.strip():
        problems.append({"path": f"{path}.fingerprint", "message": "is required: a non-empty string"})
    elif len(fingerprint) > MAX_FINGERPRINT_CHARS:
        problems.append(
            {"path": f"{path}.fingerprint", "message": f"is longer than {MAX_FINGERPRINT_CHARS} characters"}
        )
    for name, required in (("startsAt", True), ("endsAt", False)):
        if name not in alert and not required:
            continue
        try:
            cluster.parse_time(alert.get(name))
        except ValueError as error:
            problems.append({"path": f"{path}.{name}", "message": "is required" if name not in alert else str(error)})
    if "generatorURL" in alert and not isinstance(alert["generatorURL"], str):
        problems.append({"path": f"{path}.generatorURL", "message": "must be a string"})
    return len(problems) == before


def _mapped(alert: dict[str, Any], mapping: LabelMapping) -> Alert | str:
    """The alert as kprof keeps it, or why it cannot be used."""
    labels: dict[str, str] = alert["labels"]
    alertname = labels.get(ALERTNAME_LABEL, "")
    if not alertname:
        return f"no {ALERTNAME_LABEL!r} label"
    if len(alertname) > MAX_ALERTNAME_CHARS:
        return f"its {ALERTNAME_LABEL!r} label is longer than {MAX_ALERTNAME_CHARS} characters"
    namespace = labels.get(mapping.namespace, "")
    if not namespace:
        return f"no namespace label {mapping.namespace!r}"
    starts_at = cluster.format_time(cluster.parse_time(alert["startsAt"]))
    pod = labels.get(mapping.pod, "")
    if pod:
        # A named pod is the most precise: the workload labels would widen it to its siblings.
        return Alert(alert["fingerprint"], alertname, namespace, starts_at, pod=pod)
    match = {
        pod_label: labels[alert_label] for alert_label, pod_label in mapping.match_labels if labels.get(alert_label)
    }
    if not match:
        workload = ", ".join(repr(alert_label) for alert_label, _ in mapping.match_labels)
        return f"names no pod: no pod label {mapping.pod!r}" + (f" and none of {workload}" if workload else "")
    return Alert(alert["fingerprint"], alertname, namespace, starts_at, match_labels=match)


def _is_string_map(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())


def parse_match_label(text: str) -> tuple[str, str]:
    """`ALERT_LABEL=POD_LABEL` (or `LABEL`, the same name on both sides); ValueError otherwise."""
    alert_label, sep, pod_label = text.partition("=")
    alert_label, pod_label = alert_label.strip(), (pod_label.strip() if sep else alert_label.strip())
    if not alert_label or not pod_label:
        raise ValueError(f"{text!r} is not ALERT_LABEL=POD_LABEL (e.g. service=app.kubernetes.io/name)")
    return alert_label, pod_label

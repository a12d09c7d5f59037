"""The sidecar's view of its own pod, from the downward API: identity and the app container's
requests and limits from environment variables, labels and annotations from a downwardAPI volume
(files that Kubernetes rewrites when they change), and the pieces of a one-pod cluster state built
from them: a v1 Pod and a metrics.k8s.io PodMetrics, shaped as the API server and metrics-server
return them, so the sidecar and local mode hand `reconcile` what the operator does.

Environment (set by the kprof-sidecar Helm library chart; see docs/SIDECAR.md):
    KPROF_POD_NAME, KPROF_POD_NAMESPACE, KPROF_POD_IP, KPROF_POD_UID
    KPROF_APP_CONTAINER
    KPROF_APP_CPU_REQUEST, KPROF_APP_CPU_LIMIT         millicores (resourceFieldRef, divisor 1m)
    KPROF_APP_MEMORY_REQUEST, KPROF_APP_MEMORY_LIMIT   bytes (divisor 1)
The volume's files (`labels`, `annotations`) hold one `key="value"` line per entry, the value
quoted the way Go's strconv.Quote does it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_APP_CONTAINER = "app"

_LINE = re.compile(r'^(?P<key>[^=]+)="(?P<value>(?:[^"\\]|\\.)*)"\s*$')
_SIMPLE_ESCAPES = dict(zip("abfnrtv\\\"'", "\a\b\f\n\r\t\v\\\"'", strict=True))


class PodInfoError(ValueError):
    """A downward API value that cannot be read (the message names it)."""


@dataclass(frozen=True)
class Resources:
    """The app container's requests and limits: CPU in millicores, memory in bytes. None: not set."""

    cpu_request_millis: int | None = None
    cpu_limit_millis: int | None = None
    memory_request_bytes: int | None = None
    memory_limit_bytes: int | None = None

    def to_container_resources(self) -> dict[str, dict[str, str]]:
        """As a container's `resources`. A request of 0 is what the downward API reports for a
        request that is not set, so it is left out (the limit is then the baseline, as for a pod)."""
        requests: dict[str, str] = {}
        limits: dict[str, str] = {}
        for target, name, value, unit in (
            (requests, "cpu", self.cpu_request_millis, "m"),
            (limits, "cpu", self.cpu_limit_millis, "m"),
            (requests, "memory", self.memory_request_bytes, ""),
            (limits, "memory", self.memory_limit_bytes, ""),
        ):
            if value:
                target[name] = f"{value}{unit}"
        return {key: value for key, value in (("requests", requests), ("limits", limits)) if value}


@dataclass(frozen=True)
class PodIdentity:
    name: str
    namespace: str
    uid: str = ""
    ip: str = ""
    app_container: str = DEFAULT_APP_CONTAINER
    resources: Resources = field(default_factory=Resources)


def identity_from_env(env: Mapping[str, str], *, app_container: str | None = None) -> PodIdentity:
    """The pod's identity from KPROF_* variables; `PodInfoError` naming what is missing or wrong."""
    missing = [name for name in ("KPROF_POD_NAME", "KPROF_POD_NAMESPACE") if not env.get(name, "").strip()]
    if missing:
        raise PodInfoError(
            f"{' and '.join(missing)} must be set (downward API fieldRef metadata.name / metadata.namespace)"
        )
    return PodIdentity(
        name=env["KPROF_POD_NAME"].strip(),
        namespace=env["KPROF_POD_NAMESPACE"].strip(),
        uid=env.get("KPROF_POD_UID", "").strip(),
        ip=env.get("KPROF_POD_IP", "").strip(),
        app_container=app_container or env.get("KPROF_APP_CONTAINER", "").strip() or DEFAULT_APP_CONTAINER,
        resources=Resources(
            cpu_request_millis=_whole_number(env, "KPROF_APP_CPU_REQUEST"),
            cpu_limit_millis=_whole_number(env, "KPROF_APP_CPU_LIMIT"),
            memory_request_bytes=_whole_number(env, "KPROF_APP_MEMORY_REQUEST"),
            memory_limit_bytes=_whole_number(env, "KPROF_APP_MEMORY_LIMIT"),
        ),
    )


def _whole_number(env: Mapping[str, str], name: str) -> int | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    if not raw.isdigit():
        raise PodInfoError(
            f"{name}={raw!r}: expected a whole number (resourceFieldRef with divisor {'1m' if 'CPU' in name else '1'})"
        )
    return int(raw)


def parse_downward_file(text: str, source: str = "downward API file") -> dict[str, str]:
    """The `key="value"` lines of a downwardAPI volume file (labels, annotations) as a dict."""
    entries: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        match = _LINE.match(line)
        if match is None:
            raise PodInfoError(f'{source}, line {number}: expected key="value", got {line[:80]!r}')
        try:
            entries[match["key"]] = unquote_go(match["value"])
        except ValueError as error:
            raise PodInfoError(f"{source}, line {number}: {error}") from None
    return entries


def read_downward_file(path: Path) -> dict[str, str] | None:
    """The entries of one file of the volume; None when the file does not exist."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    return parse_downward_file(text, str(path))


def unquote_go(body: str) -> str:
    """The string a Go quoted literal (without its quotes) stands for: \\n \\t \\" \\\\ \\xHH
    \\OOO \\uHHHH \\UHHHHHHHH and the rest of strconv.Quote's escapes. \\x and octal escapes are
    bytes; the result is decoded as UTF-8 (bad bytes become U+FFFD, as Go would print them)."""
    out = bytearray()
    index = 0
    while index < len(body):
        char = body[index]
        if char != "\\":
            out += char.encode()
            index += 1
            continue
        kind = body[index + 1 : index + 2]
        if kind in _SIMPLE_ESCAPES:
            out += _SIMPLE_ESCAPES[kind].encode()
            index += 2
        elif kind in ("x", "u", "U"):
            width = {"x": 2, "u": 4, "U": 8}[kind]
            digits = body[index + 2 : index + 2 + width]
            if len(digits) != width or not all(c in "0123456789abcdefABCDEF" for c in digits):
                raise ValueError(f"bad escape \\{kind}{digits} in {body[:80]!r}")
            value = int(digits, 16)
            out += bytes([value]) if kind == "x" else chr(value).encode(errors="replace")
            index += 2 + width
        elif kind and kind in "01234567":
            digits = body[index + 1 : index + 4]
            if len(digits) != 3 or not all(c in "01234567" for c in digits) or int(digits, 8) > 255:
                raise ValueError(f"bad octal escape \\{digits} in {body[:80]!r}")
            out.append(int(digits, 8))
            index += 4
        else:
            raise ValueError(f"unknown escape \\{kind} in {body[:80]!r}")
    return out.decode("utf-8", errors="replace")


def pod_document(
    identity: PodIdentity,
    *,
    labels: Mapping[str, str],
    annotations: Mapping[str, str],
    address: str,
    resources: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A running v1 Pod with the app container. `address` is where the runtime reaches the app
    (127.0.0.1 from a sidecar): it stands as the pod IP, which is what the executor connects to."""
    metadata: dict[str, Any] = {
        "name": identity.name,
        "namespace": identity.namespace,
        "labels": dict(labels),
        "annotations": dict(annotations),
    }
    if identity.uid:
        metadata["uid"] = identity.uid
    container_resources = dict(resources) if resources is not None else identity.resources.to_container_resources()
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {"containers": [{"name": identity.app_container, "resources": container_resources}]},
        "status": {"phase": "Running", "podIP": address, "podIPs": [{"ip": address}]},
    }


def pod_metrics(
    identity: PodIdentity,
    *,
    cpu_cores: float | None,
    memory_bytes: int | None,
    timestamp: str,
    window_seconds: float | None,
) -> dict[str, Any]:
    """A PodMetrics for the app container, in metrics-server's units (CPU in nanocores, memory in
    Ki). A usage that is not known (CPU before its first window) is left out, as a resource with
    no usage is by metrics-server."""
    usage: dict[str, str] = {}
    if cpu_cores is not None:
        usage["cpu"] = f"{max(0, round(cpu_cores * 1e9))}n"
    if memory_bytes is not None:
        usage["memory"] = f"{max(0, memory_bytes) // 1024}Ki"
    return {
        "kind": "PodMetrics",
        "apiVersion": "metrics.k8s.io/v1beta1",
        "metadata": {"name": identity.name, "namespace": identity.namespace},
        "timestamp": timestamp,
        "window": f"{window_seconds:.3f}s" if window_seconds is not None else "0s",
        "containers": [{"name": identity.app_container, "usage": usage}],
    }

"""Plans for a one-shot capture (`kprof capture`): one pod, or one pprof address, captured now
whether or not a ProfilingConfig would. The plan has the same shape as reconcile's, so the same
executor carries it out and stores profiles under the same key layouts."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from kprof_lib.planning.plan import CAPTURE, ON_DEMAND, Plan, PodDecision, Usage
from kprof_lib.spec import validation
from kprof_lib.spec.errors import SpecError
from kprof_lib.spec.model import Spec
from kprof_lib.state import naming, optin

LOCAL_NAMESPACE = "local"


def plan_for_pod(pod: dict[str, Any], spec: Any, now: str) -> Plan:
    """A plan that captures `pod` (a v1 Pod) now: its endpoint from its annotations, opted in or not.
    `spec` supplies profileTypes, cpuProfileSeconds and s3Config. `ValueError` if the pod cannot be reached."""
    spec = validation.validate_spec(spec)
    metadata = pod.get("metadata") or {}
    status = pod.get("status") or {}
    where = f"{metadata.get('namespace')}/{metadata.get('name')}"
    if status.get("phase") != "Running" or not status.get("podIP"):
        raise ValueError(f"pod {where} is not running with an IP (phase {status.get('phase')!r})")
    endpoint = optin.endpoint(metadata.get("annotations") or {})
    if isinstance(endpoint, str):
        raise ValueError(f"pod {where}: {endpoint}")
    return _plan(
        spec,
        now,
        namespace=metadata["namespace"],
        pod=metadata["name"],
        uid=metadata.get("uid"),
        pod_ip=status["podIP"],
        endpoint=endpoint,
        service=naming.service_name(metadata),
        labels=dict(metadata.get("labels") or {}),
    )


def plan_for_url(url: str, spec: Any, now: str) -> Plan:
    """A plan that captures the pprof endpoint at `url` (e.g. http://127.0.0.1:6060, path defaults
    to /debug/pprof). Stored under namespace "local" and pod "<host>-<port>"."""
    spec = validation.validate_spec(spec)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SpecError([{"path": "url", "message": f"{url!r} is not an http(s) URL such as http://127.0.0.1:6060"}])
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise SpecError([{"path": "url", "message": f"{url!r} has an invalid port"}]) from None
    path = parts.path.rstrip("/") or optin.DEFAULT_PATH
    name = re.sub(r"[^A-Za-z0-9.-]", "-", f"{parts.hostname}-{port}")
    endpoint = optin.Endpoint(parts.scheme, port, path)
    return _plan(spec, now, namespace=LOCAL_NAMESPACE, pod=name, pod_ip=parts.hostname, endpoint=endpoint, service=name)


def _plan(spec: Spec, now: str, **pod: Any) -> Plan:
    """The plan capturing one pod now; `pod` holds the `PodDecision` fields that name and reach it."""
    decision = PodDecision(
        action=CAPTURE,
        reason=ON_DEMAND,
        reasons=(ON_DEMAND,),
        profile_types=spec.profile_types,
        cpu_profile_seconds=spec.cpu_profile_seconds,
        observed=Usage(),
        **pod,
    )
    return Plan(now=now, spec=spec, results=(decision,), active_pods=1)

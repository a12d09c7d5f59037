"""Who may make the operator do what: the scope of a namespaced ProfilingConfig and the destinations
its profiles may go to. Pure; the operator's check runner applies it to every validated spec.

As the Prometheus Operator does for PodMonitors, a ProfilingConfig selects pods in its own
namespace. Only configs in namespaces the installer names (`Policy.cluster_wide_namespaces`) may
select another namespace or every namespace. The operator writes with its own credentials, so the
destination (S3 bucket and endpoint, or the operator's local volume) must be one the installer
allows (`Policy.destinations`); the default allows the chart's own default destination, the local
volume. A config that asks for more is invalid (`SpecError` naming the field), never quietly
narrowed: its author sees `Valid=False` and why.

Destinations are written as `local` (the operator's local directory), `s3://BUCKET` (the AWS
endpoint of the config's region), `ENDPOINT/BUCKET` for an S3-compatible endpoint, e.g.
`http://minio.minio:9000/profiles`, or `*` for any destination.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from kprof_lib.spec.errors import Problem, SpecError
from kprof_lib.spec.model import Spec

LOCAL = "local"
ANY = "*"


@dataclass(frozen=True)
class Policy:
    """What the installer allows: namespaces whose configs may select cluster-wide, and destinations."""

    cluster_wide_namespaces: frozenset[str] = frozenset()
    destinations: frozenset[str] = frozenset({LOCAL})

    @classmethod
    def of(cls, cluster_wide_namespaces: Iterable[str] = (), destinations: Iterable[str] | None = None) -> Policy:
        """A policy from flag values; destinations are normalised (see `destination_of`)."""
        allowed = frozenset(normalise(d) for d in destinations) if destinations is not None else frozenset({LOCAL})
        return cls(frozenset(cluster_wide_namespaces), allowed)

    def allows_destination(self, destination: str) -> bool:
        return ANY in self.destinations or destination in self.destinations


def normalise(destination: str) -> str:
    """A destination as `Policy` compares it: `ENDPOINT/BUCKET` with the endpoint's scheme and host
    lower-cased and no trailing slash; `local`, `*` and `s3://BUCKET` unchanged. `ValueError` for
    anything else."""
    text = destination.strip()
    if text in (LOCAL, ANY):
        return text
    if text.startswith("s3://"):
        bucket = text.removeprefix("s3://").strip("/")
        if not bucket or "/" in bucket:
            raise ValueError(f"destination {destination!r}: s3:// must be followed by a bucket name only")
        return f"s3://{bucket}"
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"destination {destination!r} is none of: local, s3://BUCKET, http(s)://ENDPOINT/BUCKET, *")
    path = parts.path.strip("/")
    if not path or "/" in path:
        raise ValueError(f"destination {destination!r}: name the bucket after the endpoint (ENDPOINT/BUCKET)")
    return f"{parts.scheme}://{parts.netloc.lower()}/{path}"


def destination_of(spec: Mapping[str, Any]) -> str:
    """Where a validated spec's profiles go, written as `Policy.destinations` are."""
    s3 = spec.get("s3Config")
    if not s3:
        return LOCAL
    endpoint = s3.get("endpoint")
    if not endpoint:
        return f"s3://{s3['bucket']}"
    parts = urlsplit(endpoint)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{parts.path.rstrip('/')}/{s3['bucket']}"


def scope(spec: Spec, namespace: str, policy: Policy) -> Spec:
    """`spec` (validated) of a config in `namespace`, limited to what `policy` allows: without
    permission, no `selector.namespace` means the config's own namespace. `SpecError` naming the
    field when the spec asks for another namespace or a destination the policy does not allow."""
    problems: list[Problem] = []
    selector = dict(spec.get("selector") or {})
    wanted = selector.get("namespace")
    cluster_wide = namespace in policy.cluster_wide_namespaces
    if wanted is not None and wanted != namespace and not cluster_wide:
        message = (
            f"{wanted!r} is not this config's namespace ({namespace!r}); the operator lets only "
            f"configs in {_listed(policy.cluster_wide_namespaces)} select other namespaces"
        )
        problems.append({"path": "spec.selector.namespace", "message": message})
    for index, workload in enumerate((spec.get("pgo") or {}).get("workloads", [])):
        if workload["namespace"] != namespace and not cluster_wide:
            message = (
                f"{workload['namespace']!r} is not this config's namespace ({namespace!r}); the operator lets only "
                f"configs in {_listed(policy.cluster_wide_namespaces)} write profiles of other namespaces"
            )
            problems.append({"path": f"spec.pgo.workloads[{index}].namespace", "message": message})
    destination = destination_of(spec)
    if not policy.allows_destination(destination):
        field = "spec.s3Config.endpoint" if (spec.get("s3Config") or {}).get("endpoint") else "spec.s3Config.bucket"
        allowed = ", ".join(sorted(policy.destinations)) or "none"
        message = f"destination {destination} is not allowed by the operator (allowed: {allowed})"
        problems.append({"path": field if destination != LOCAL else "spec.s3Config", "message": message})
    if problems:
        raise SpecError(problems)
    if wanted is None and not cluster_wide:
        selector["namespace"] = namespace
        return Spec({**spec.data, "selector": selector})
    return spec


def _listed(namespaces: frozenset[str]) -> str:
    return "the namespaces " + ", ".join(sorted(namespaces)) if namespaces else "no namespace"

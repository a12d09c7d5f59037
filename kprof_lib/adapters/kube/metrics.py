"""PodMetrics from metrics-server (the `metrics.k8s.io/v1beta1` API), the operator's
`MetricsSource`: one LIST per namespace a ProfilingConfig selects (or one cluster-wide LIST), with
the label selector pushed to the server, never a GET per pod. Each PodMetrics is cut to what
reconcile reads as soon as it is decoded, so a cluster-wide list of 100,000 never exists whole: a
`PodUsage` (name, namespace, each container's usage in numbers, read while the item is fresh in
memory), or, for one that is not well-formed, the PodMetrics slimmed, for reconcile to report.
Failures come out as `MetricsUnavailable` naming the API path and status, so a check that cannot
see usage says why.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import urllib3
from kubernetes.client import ApiClient

from kprof_lib.adapters.kube import errors
from kprof_lib.adapters.kube.reads import get_list
from kprof_lib.state.podusage import PodUsage, usage_of

METRICS_API = "/apis/metrics.k8s.io/v1beta1"


class MetricsUnavailable(RuntimeError):
    """PodMetrics could not be read; `path` and `status` (0 when no answer came) say where and how."""

    def __init__(self, message: str, *, path: str, status: int) -> None:
        super().__init__(message)
        self.path = path
        self.status = status


class MetricsServer:
    """Reads PodMetrics through the API server's aggregation layer."""

    def __init__(self, api_client: ApiClient, *, timeout: float = 30.0) -> None:
        self._api = api_client
        self._timeout = timeout

    def pod_metrics(
        self,
        namespace: str | None,
        label_selector: str | None,
        wanted: Callable[[tuple[str, str]], bool] | None = None,
    ) -> list[PodUsage | dict[str, Any]]:
        """The PodMetrics of `namespace` (None: every namespace) whose pod labels match
        `label_selector` (the API's selector syntax; None or "" matches all); with `wanted`, only
        those of the pods it says yes to ((namespace, name)), the others dropped as they are read.
        Items without a name and namespace are kept, for reconcile to report."""
        path = f"{METRICS_API}/pods" if namespace is None else f"{METRICS_API}/namespaces/{namespace}/pods"
        query = [("labelSelector", label_selector)] if label_selector else []
        items: list[Any] = []

        def keep(item: Any) -> None:
            metadata = item.get("metadata") if isinstance(item, dict) else None
            if wanted is not None and isinstance(metadata, dict):
                namespace, name = metadata.get("namespace"), metadata.get("name")
                if isinstance(namespace, str) and isinstance(name, str) and not wanted((namespace, name)):
                    return
            usage = usage_of(item)
            items.append(usage if type(usage) is PodUsage else slim_metrics(item))

        try:
            document = get_list(self._api, path, keep, query, self._timeout)
        except errors.APIError as exc:
            raise MetricsUnavailable(_explain(path, exc), path=path, status=exc.status) from None
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            raise MetricsUnavailable(f"GET {path}: {type(exc).__name__}: {exc}", path=path, status=0) from None
        if not isinstance(document.get("items"), int):  # get_list counts the items of an array
            raise MetricsUnavailable(f"GET {path}: the answer is not a PodMetricsList", path=path, status=200)
        return items


def slim_metrics(item: Any) -> Any:
    """A PodMetrics cut to what reconcile reads: metadata name and namespace, containers' name and
    usage. Anything not shaped like one is passed on as it is, for reconcile to report."""
    if not isinstance(item, dict):
        return item
    metadata, containers = item.get("metadata"), item.get("containers")
    if not isinstance(metadata, dict) or not isinstance(containers, list):
        return item
    slim: dict[str, Any] = {"metadata": {k: metadata[k] for k in ("name", "namespace") if k in metadata}}
    slim["containers"] = [
        {k: c[k] for k in ("name", "usage") if k in c} if isinstance(c, dict) else c for c in containers
    ]
    return slim


def _explain(path: str, exc: errors.APIError) -> str:
    detail = exc.message
    if exc.status == 404:
        return f"metrics.k8s.io not available: is metrics-server installed? (GET {path}: 404 {detail})"
    if exc.status == 503:
        return f"metrics.k8s.io is not serving: is metrics-server running and ready? (GET {path}: 503 {detail})"
    if exc.status == 403:
        return f"GET {path}: 403 forbidden: the operator needs list on metrics.k8s.io pods ({detail})"
    return f"GET {path}: {exc.status} {detail}"

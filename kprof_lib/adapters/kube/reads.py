"""Requests to the Kubernetes API as plain JSON (`_preload_content=False`): the client's model
objects cost several times the memory and lose nothing we need. `get_json` reads; `send_json`
writes (POST, PUT, PATCH with the content type the patch kind needs, DELETE). Both raise
kubernetes.client.ApiException for error statuses, so callers can tell 404, 409 and 410 apart."""

from __future__ import annotations

import json
from typing import Any

from kubernetes import client

MERGE_PATCH = "application/merge-patch+json"


def get_json(api: client.ApiClient, path: str, query: list[tuple[str, str]] | None = None, timeout: float = 30) -> Any:
    """GET `path` (e.g. /api/v1/namespaces/default/pods/x) and decode its JSON body.
    Raises kubernetes.client.ApiException for error statuses."""
    response = api.call_api(
        path,
        "GET",
        query_params=query or [],
        header_params={"Accept": "application/json"},
        auth_settings=["BearerToken"],
        _preload_content=False,
        _return_http_data_only=True,
        _request_timeout=timeout,
    )
    try:
        return json.loads(response.data)
    finally:
        response.release_conn()


def error_detail(exc: BaseException) -> str:
    """An API error as status, reason and the API server's own message, which for a 403 names the
    permission missing (`cannot get resource "leases" in API group "coordination.k8s.io" ...`)."""
    if not isinstance(exc, client.ApiException):
        return f"{type(exc).__name__}: {exc}"
    try:
        message = json.loads(exc.body).get("message")
    except (TypeError, ValueError, AttributeError):
        message = None
    return f"{exc.status} {exc.reason}" + (f": {message}" if message else "")


def read_pod(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    return get_json(api, f"/api/v1/namespaces/{namespace}/pods/{name}")


def send_json(
    api: client.ApiClient,
    method: str,
    path: str,
    body: Any = None,
    *,
    content_type: str = "application/json",
    query: list[tuple[str, str]] | None = None,
    timeout: float = 30,
) -> Any:
    """`method` (POST, PUT, PATCH, DELETE) with `body` as JSON; the decoded answer (None if empty).
    Custom resources take only `application/merge-patch+json` or JSON patch, not the strategic merge
    patch the client's typed methods send for a dict."""
    response = api.call_api(
        path,
        method,
        query_params=query or [],
        header_params={"Accept": "application/json", "Content-Type": content_type},
        body=body,
        auth_settings=["BearerToken"],
        _preload_content=False,
        _return_http_data_only=True,
        _request_timeout=timeout,
    )
    try:
        data = response.data
        return json.loads(data) if data else None
    finally:
        response.release_conn()

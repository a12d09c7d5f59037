"""Requests to the Kubernetes API as plain JSON (`_preload_content=False`): the client's model
objects cost several times the memory and lose nothing we need. `get_json` reads; `send_json`
writes (POST, PUT, PATCH with the content type the patch kind needs, DELETE). Both raise an
`errors.APIError` for error statuses (`APINotFound`, `APIConflict`, `APIGone`, ...), so callers
catch by class. `open_response`, under both, also serves streamed bodies (watches, pods/proxy)."""

from __future__ import annotations

import json
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kprof_lib.adapters.kube import errors

MERGE_PATCH = "application/merge-patch+json"


def get_json(api: client.ApiClient, path: str, query: list[tuple[str, str]] | None = None, timeout: float = 30) -> Any:
    """GET `path` (e.g. /api/v1/namespaces/default/pods/x) and decode its JSON body.
    Raises `errors.APIError` for error statuses."""
    return _call(api, "GET", path, query=query, timeout=timeout)


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
    patch the client's typed methods send for a dict. Raises `errors.APIError` for error statuses."""
    headers = {"Accept": "application/json", "Content-Type": content_type}
    return _call(api, method, path, query=query, headers=headers, body=body, timeout=timeout)


def _call(api: client.ApiClient, method: str, path: str, **request: Any) -> Any:
    try:
        response = open_response(api, method, path, **request)
    except ApiException as exc:
        raise errors.from_exception(exc) from None
    try:
        data = response.data
        # An empty answer is fine for a write (DELETE may send none); a read must bring a document.
        return json.loads(data) if data or method == "GET" else None
    finally:
        response.release_conn()


def open_response(
    api: client.ApiClient,
    method: str,
    path: str,
    *,
    query: list[tuple[str, str]] | None = None,
    headers: dict[str, str] | None = None,
    body: Any = None,
    timeout: Any = 30,
) -> Any:
    """The urllib3 response to `method path`, its body not read yet (the caller releases it); the
    client's `ApiException` for an error status. `timeout`: seconds, or (connect, read)."""
    return api.call_api(
        path,
        method,
        query_params=query or [],
        header_params=headers or {"Accept": "application/json"},
        body=body,
        auth_settings=["BearerToken"],
        _preload_content=False,
        _return_http_data_only=True,
        _request_timeout=timeout,
    )

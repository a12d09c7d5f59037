"""Requests to the Kubernetes API as plain JSON (`_preload_content=False`): the client's model
objects cost several times the memory and lose nothing we need. `get_json` reads; `get_list` reads
a List item by item; `send_json` writes (POST, PUT, PATCH with the content type the patch kind
needs, DELETE). All raise an `errors.APIError` for error statuses (`APINotFound`, `APIConflict`,
`APIGone`, ...), so callers catch by class. `open_response`, under them, also serves streamed
bodies (watches, pods/proxy)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kprof_lib.adapters.kube import errors

MERGE_PATCH = "application/merge-patch+json"


def get_json(api: client.ApiClient, path: str, query: list[tuple[str, str]] | None = None, timeout: float = 30) -> Any:
    """GET `path` (e.g. /api/v1/namespaces/default/pods/x) and decode its JSON body.
    Raises `errors.APIError` for error statuses."""
    return _call(api, "GET", path, query=query, timeout=timeout)


def get_list(
    api: client.ApiClient,
    path: str,
    each_item: Callable[[Any], None],
    query: list[tuple[str, str]] | None = None,
    timeout: float = 30,
) -> dict[str, Any]:
    """GET a List (`/api/v1/pods?limit=500`, a PodMetricsList, ...): `each_item` gets every item as
    soon as it is decoded, so only one item's objects exist at a time beside what the caller keeps
    of them; the List's other fields (apiVersion, kind, metadata) are returned, and under `items`
    how many there were. Decoding a 500-pod page whole instead leaves thousands of dead objects
    among the kept ones (a fragmented heap) and gives the garbage collector all of them to walk.
    Raises `errors.APIError` for error statuses, `ValueError` when the body is not a JSON object."""
    try:
        response = open_response(api, "GET", path, query=query, timeout=timeout)
    except ApiException as exc:
        raise errors.from_exception(exc) from None
    try:
        data = response.data
    finally:
        response.release_conn()
    return decode_list(data.decode("utf-8"), each_item)


_DECODE = json.JSONDecoder().raw_decode
_SPACE = re.compile(r"[ \t\n\r]*")


def decode_list(text: str, each_item: Callable[[Any], None]) -> dict[str, Any]:
    """A JSON object decoded field by field, the elements of its `items` array handed to
    `each_item` one at a time instead of kept; returns the other fields, and under `items` how
    many elements it had. `json.JSONDecodeError` (a `ValueError`) for malformed JSON or a document
    that is not an object."""
    fields: dict[str, Any] = {}
    at = _expect(text, 0, "{")
    if text.startswith("}", at):
        return _end(text, at, fields)
    while True:
        key, at = _DECODE(text, at)
        if not isinstance(key, str):
            raise json.JSONDecodeError("expected a field name", text, at)
        at = _expect(text, at, ":")
        if key == "items" and text.startswith("[", at):
            at, fields[key] = _skip(text, at + 1), 0
            if text.startswith("]", at):
                at += 1
            else:
                while True:
                    item, at = _DECODE(text, at)
                    each_item(item)
                    fields[key] += 1
                    at = _skip(text, at)
                    if text.startswith("]", at):
                        at += 1
                        break
                    at = _expect(text, at, ",")
        else:
            fields[key], at = _DECODE(text, at)
        at = _skip(text, at)
        if text.startswith("}", at):
            return _end(text, at, fields)
        at = _expect(text, at, ",")


def _end(text: str, at: int, fields: dict[str, Any]) -> dict[str, Any]:
    """`fields`, if nothing but space follows the object's closing brace at `at`."""
    at = _skip(text, at + 1)
    if at != len(text):
        raise json.JSONDecodeError("extra data after the object", text, at)
    return fields


def _skip(text: str, at: int) -> int:
    match = _SPACE.match(text, at)
    return match.end() if match else at


def _expect(text: str, at: int, token: str) -> int:
    """The position after `token` (and any space around it) at `at`; JSONDecodeError if it is not there."""
    at = _skip(text, at)
    if not text.startswith(token, at):
        raise json.JSONDecodeError(f"expected {token!r}", text, at)
    return _skip(text, at + 1)


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

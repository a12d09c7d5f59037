"""Requests to the Kubernetes API as plain JSON (`_preload_content=False`): the client's model
objects cost several times the memory and lose nothing we need. `get_json` reads; `get_list` reads
a List item by item; `send_json` writes (POST, PUT, PATCH with the content type the patch kind
needs, DELETE). All raise an `errors.APIError` for error statuses (`APINotFound`, `APIConflict`,
`APIGone`, ...), so callers catch by class. `open_response`, under them, also serves streamed
bodies (watches, pods/proxy)."""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Callable, Iterable
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
    how many there were. The body is decoded as it arrives, a chunk at a time: a cluster-wide
    PodMetricsList of 100,000 pods is some 25 MB of JSON, which read whole (and then as text) would
    be the largest thing the operator ever holds. Decoding a 500-pod page whole instead leaves
    thousands of dead objects among the kept ones (a fragmented heap) and gives the garbage
    collector all of them to walk. Raises `errors.APIError` for error statuses, `ValueError` when
    the body is not a JSON object."""
    try:
        response = open_response(api, "GET", path, query=query, timeout=timeout)
    except ApiException as exc:
        raise errors.from_exception(exc) from None
    read = False
    try:
        fields = decode_list(response.stream(_CHUNK_BYTES, decode_content=True), each_item)
        read = True
        return fields
    finally:
        if not read:
            response.close()  # a body read halfway: its connection cannot serve another request
        response.release_conn()


_CHUNK_BYTES = 1 << 16
_DECODE = json.JSONDecoder().raw_decode
_SPACE = re.compile(r"[ \t\n\r]*")
_DELIMITERS = frozenset(" \t\n\r,:]}")  # what may follow a whole value in a JSON object or array


class _Text:
    """JSON text that arrives in chunks: `value()` and `expect()` read more when what is there ends
    too soon, and what has been read is dropped as they go."""

    def __init__(self, chunks: Iterable[bytes] | str) -> None:
        self._chunks = iter(() if isinstance(chunks, str) else chunks)
        self._utf8 = codecs.getincrementaldecoder("utf-8")()
        self.text = chunks if isinstance(chunks, str) else ""
        self.at = 0
        self.ended = isinstance(chunks, str)

    def _more(self) -> bool:
        """Reads the next chunk; False once the body has ended."""
        if self.ended:
            return False
        for chunk in self._chunks:
            added = self._utf8.decode(chunk)
            if added:
                self.text = self.text[self.at :] + added
                self.at = 0
                return True
        self.text = self.text[self.at :] + self._utf8.decode(b"", final=True)
        self.at = 0
        self.ended = True
        return True

    def skip(self) -> None:
        """Past any space, reading more until something else is there (or the body ends)."""
        while True:
            match = _SPACE.match(self.text, self.at)
            self.at = match.end() if match else self.at
            if self.at < len(self.text) or not self._more():
                return

    def value(self) -> Any:
        """The next JSON value. One that decodes but is not followed by a delimiter may go on in
        the next chunk ("6.5" of "6.5e-3"): it counts once one follows it or the body has ended."""
        self.skip()
        while True:
            try:
                found, end = _DECODE(self.text, self.at)
            except json.JSONDecodeError:
                if self._more():
                    continue
                raise
            if (end < len(self.text) and self.text[end] in _DELIMITERS) or not self._more():
                self.at = end
                return found

    def expect(self, token: str) -> None:
        """Past `token` and the space around it; JSONDecodeError if it is not there."""
        self.skip()
        if not self.text.startswith(token, self.at):
            raise json.JSONDecodeError(f"expected {token!r}", self.text, self.at)
        self.at += len(token)
        self.skip()

    def next_is(self, token: str) -> bool:
        self.skip()
        return self.text.startswith(token, self.at)


def decode_list(body: Iterable[bytes] | str, each_item: Callable[[Any], None]) -> dict[str, Any]:
    """A JSON object (text, or chunks of UTF-8 as they arrive) decoded field by field, the elements
    of its `items` array handed to `each_item` one at a time instead of kept; returns the other
    fields, and under `items` how many elements it had. `json.JSONDecodeError` (a `ValueError`)
    for malformed JSON or a document that is not an object."""
    text = _Text(body)
    fields: dict[str, Any] = {}
    text.expect("{")
    if text.next_is("}"):
        return _end(text, fields)
    while True:
        key = text.value()
        if not isinstance(key, str):
            raise json.JSONDecodeError("expected a field name", text.text, text.at)
        text.expect(":")
        if key == "items" and text.next_is("["):
            text.expect("[")
            fields[key] = 0
            if text.next_is("]"):
                text.expect("]")
            else:
                while True:
                    each_item(text.value())
                    fields[key] += 1
                    if text.next_is("]"):
                        text.expect("]")
                        break
                    text.expect(",")
        else:
            fields[key] = text.value()
        if text.next_is("}"):
            return _end(text, fields)
        text.expect(",")


def _end(text: _Text, fields: dict[str, Any]) -> dict[str, Any]:
    """`fields`, if nothing but space follows the object's closing brace."""
    text.expect("}")
    if text.at != len(text.text):
        raise json.JSONDecodeError("extra data after the object", text.text, text.at)
    return fields


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

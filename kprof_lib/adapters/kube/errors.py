"""The Kubernetes API's error answers as classes, made in this one place (as kopf's
`_cogs/clients/errors.py` does): `reads.get_json`/`send_json` and the informer's watch turn the
client's `ApiException` into an `APIError` whose `message` is the server's own (the Status body's
message, parsed once; its HTTP reason when the body has none). Adapters catch by class:
`APINotFound` (404), `APIConflict` (409), `APIGone` (410) and `APIForbidden` (403); any other
status is a plain `APIError`.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar


class APIError(RuntimeError):
    """An error answer from the API server. `str()` is "STATUS MESSAGE"."""

    statuses: ClassVar[tuple[int, ...]] = ()

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {message}")
        self.status = status
        self.reason = reason
        self.message = message


class APIForbidden(APIError):
    statuses = (403,)


class APINotFound(APIError):
    statuses = (404,)


class APIConflict(APIError):
    statuses = (409,)


class APIGone(APIError):
    statuses = (410,)


_BY_STATUS = {status: cls for cls in APIError.__subclasses__() for status in cls.statuses}


def from_exception(exc: Any) -> APIError:
    """The `APIError` for a kubernetes client `ApiException` (status 0 when no answer came)."""
    status = int(exc.status or 0)
    reason = str(exc.reason)
    try:
        message = json.loads(exc.body).get("message") or reason
    except (TypeError, ValueError, AttributeError):
        message = reason
    return _BY_STATUS.get(status, APIError)(status, reason, str(message))


def brief(exc: BaseException) -> str:
    """A short description for a log line: "STATUS REASON: MESSAGE" for an API answer (for a 403 the
    server's message names the permission missing: `cannot get resource "leases" in API group
    "coordination.k8s.io" ...`), else the exception's type and text (no answer came: refused, timed
    out, TLS)."""
    if isinstance(exc, APIError):
        detail = f"{exc.status} {exc.reason}"
        return detail if exc.message == exc.reason else f"{detail}: {exc.message}"
    return f"{type(exc).__name__}: {exc}"

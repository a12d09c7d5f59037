"""The pod annotations kprof reads, validated with cerberus in this one place.

`profiling.io/enabled: "true"` opts a pod in (anything else, "True" included, leaves it out; that is
not an error). `profiling.io/port`, `profiling.io/path` and `profiling.io/scheme` say where its pprof
endpoint is. `profiling.io/capture-now` asks for one capture per distinct non-empty value (read by
reconcile as it is: any value is a request). Other `profiling.io/*` keys are ignored. Replicas
share their annotations, so results are memoised by the values of the three endpoint annotations.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any, NamedTuple

import cerberus

ENABLED = "profiling.io/enabled"
PORT = "profiling.io/port"
PATH = "profiling.io/path"
SCHEME = "profiling.io/scheme"
CAPTURE_NOW = "profiling.io/capture-now"

DEFAULT_PORT = 6060
DEFAULT_PATH = "/debug/pprof"
DEFAULT_SCHEME = "http"


MAX_PATH_CHARS = 256
# How much of a bad value a message quotes: enough to recognise it, never a 100 kB annotation.
SHOWN_VALUE_CHARS = 64

# A pod owner writes these values and kprof fetches what they point at with its own credentials,
# so each is matched whole. Ports: ASCII digits, at most five (int() of a long digit string raises).
# Paths: `/`, or `/`-separated segments of RFC 3986 unreserved characters, an optional trailing
# `/`. No `%` (an escape the API server decodes after our checks), no empty, `.` or `..` segment
# (urllib3 and the API server remove dot segments, which walks the path out of the pod's proxy
# prefix), no whitespace or control characters.
_PORT = re.compile(r"[0-9]{1,5}")
_PATH = re.compile(r"/|(?:/[A-Za-z0-9._~-]+)+/?")


def _check_port(field: str, value: str, error: Any) -> None:
    if not _PORT.fullmatch(value):
        error(field, "must be digits only, 1-65535")
    elif not 1 <= int(value) <= 65535:
        error(field, "must be between 1 and 65535")


def _check_path(field: str, value: str, error: Any) -> None:
    if len(value) > MAX_PATH_CHARS:
        error(field, f"must be at most {MAX_PATH_CHARS} characters, not {len(value)}")
    elif not _PATH.fullmatch(value):
        error(
            field,
            "must start with / and be made of segments of letters, digits, '.', '_', '~' and '-' "
            "(no %, empty, '.' or '..' segment, whitespace or control character)",
        )
    elif any(segment in (".", "..") for segment in value.split("/")):
        error(field, "must not contain a '.' or '..' segment")


_SCHEMA = {
    PORT: {"type": "string", "check_with": _check_port},
    PATH: {"type": "string", "check_with": _check_path},
    SCHEME: {"type": "string", "allowed": ["http", "https"]},
}


class Endpoint(NamedTuple):
    scheme: str
    port: int
    path: str

    def to_dict(self) -> dict[str, Any]:
        return {"scheme": self.scheme, "port": self.port, "path": self.path}


def is_enabled(annotations: Mapping[str, str]) -> bool:
    """Whether the pod opts in: exactly the string "true"."""
    return annotations.get(ENABLED) == "true"


def endpoint(annotations: Mapping[str, str]) -> Endpoint | str:
    """The pod's pprof endpoint, or a message naming every bad annotation and its value."""
    return _endpoint(annotations.get(PORT), annotations.get(PATH), annotations.get(SCHEME))


def endpoint_if_enabled(annotations: Mapping[str, str]) -> Endpoint | str | None:
    """`endpoint` of a pod that opts in; None for one that does not."""
    return endpoint(annotations) if is_enabled(annotations) else None


@functools.lru_cache(maxsize=4096)
def _endpoint(port: Any, path: Any, scheme: Any) -> Endpoint | str:
    document = {key: value for key, value in ((PORT, port), (PATH, path), (SCHEME, scheme)) if value is not None}
    validator = cerberus.Validator(_SCHEMA)
    if not validator.validate(document):
        problems = []
        for key in (PORT, PATH, SCHEME):
            if key in validator.errors:
                reasons = "; ".join(str(reason) for reason in validator.errors[key])
                problems.append(f"{key}={shown(document[key])} ({_explain(key, reasons)})")
        return "invalid annotations: " + ", ".join(problems)
    return Endpoint(
        scheme=document.get(SCHEME, DEFAULT_SCHEME),
        port=int(document.get(PORT, DEFAULT_PORT)),
        path=document.get(PATH, DEFAULT_PATH).rstrip("/") or "/",
    )


def shown(value: Any) -> str:
    """`value` as a message quotes it: repr'd (control characters visible), cut to a sane length."""
    text = repr(value)
    if len(text) > SHOWN_VALUE_CHARS:
        return f"{text[:SHOWN_VALUE_CHARS]}... ({len(str(value))} characters)"
    return text


def _explain(key: str, reason: str) -> str:
    if "unallowed value" in reason:
        return "must be http or https"
    return reason

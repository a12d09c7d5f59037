"""The pod annotations kprof reads, validated with cerberus in this one place.

`profiling.io/enabled: "true"` opts a pod in (anything else, "True" included, leaves it out; that is
not an error). `profiling.io/port`, `profiling.io/path` and `profiling.io/scheme` say where its pprof
endpoint is. Other `profiling.io/*` keys are ignored. Replicas share their annotations, so results
are memoised by the values of the three endpoint annotations.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import cerberus

ENABLED = "profiling.io/enabled"
PORT = "profiling.io/port"
PATH = "profiling.io/path"
SCHEME = "profiling.io/scheme"

DEFAULT_PORT = 6060
DEFAULT_PATH = "/debug/pprof"
DEFAULT_SCHEME = "http"


def _check_port(field: str, value: str, error: Any) -> None:
    if value.isdigit() and not 1 <= int(value) <= 65535:
        error(field, "must be between 1 and 65535")


_SCHEMA = {
    PORT: {"type": "string", "regex": "[0-9]+", "check_with": _check_port},
    PATH: {"type": "string", "regex": r"/[^\s?#]*"},
    SCHEME: {"type": "string", "allowed": ["http", "https"]},
}


class Endpoint(NamedTuple):
    scheme: str
    port: int
    path: str

    def to_dict(self) -> dict[str, Any]:
        return {"scheme": self.scheme, "port": self.port, "path": self.path}


def is_enabled(annotations: dict[str, str]) -> bool:
    """Whether the pod opts in: exactly the string "true"."""
    return annotations.get(ENABLED) == "true"


def endpoint(annotations: dict[str, str]) -> Endpoint | str:
    """The pod's pprof endpoint, or a message naming every bad annotation and its value."""
    return _endpoint(annotations.get(PORT), annotations.get(PATH), annotations.get(SCHEME))


@functools.lru_cache(maxsize=4096)
def _endpoint(port: Any, path: Any, scheme: Any) -> Endpoint | str:
    document = {key: value for key, value in ((PORT, port), (PATH, path), (SCHEME, scheme)) if value is not None}
    validator = cerberus.Validator(_SCHEMA)
    if not validator.validate(document):
        problems = []
        for key in (PORT, PATH, SCHEME):
            if key in validator.errors:
                reasons = "; ".join(str(reason) for reason in validator.errors[key])
                problems.append(f"{key}={document[key]!r} ({_explain(key, reasons)})")
        return "invalid annotations: " + ", ".join(problems)
    return Endpoint(
        scheme=document.get(SCHEME, DEFAULT_SCHEME),
        port=int(document.get(PORT, DEFAULT_PORT)),
        path=document.get(PATH, DEFAULT_PATH).rstrip("/") or "/",
    )


def _explain(key: str, reason: str) -> str:
    # cerberus says "value does not match regex '[0-9]+'"; say what the user must write instead.
    if "regex" in reason:
        return {PORT: "must be digits only, 1-65535", PATH: "must start with / and contain no spaces, ? or #"}[key]
    if "unallowed value" in reason:
        return "must be http or https"
    return reason

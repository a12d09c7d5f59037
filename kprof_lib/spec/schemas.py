"""Loads kprof's JSON Schemas: from the installed package, or from schemas/ in a source checkout.

schemas/ at the top of the repository is the one source of truth; the wheel carries a copy at
kprof_lib/schemas/ (see pyproject.toml). Callers ask by name, e.g. `load("profilingconfig")`.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

_PACKAGE_DIR = Path(__file__).resolve().parent.parent

NAMES = ("profilingconfig", "cluster_state", "plan")


def directory() -> Path:
    """The folder the schemas are read from: the installed copy first, then the source tree."""
    for candidate in (_PACKAGE_DIR / "schemas", _PACKAGE_DIR.parent / "schemas"):
        if (candidate / "profilingconfig.schema.json").is_file():
            return candidate
    raise FileNotFoundError(
        f"kprof's schemas are missing: looked in {_PACKAGE_DIR / 'schemas'} and {_PACKAGE_DIR.parent / 'schemas'}"
    )


@functools.cache
def load(name: str) -> dict[str, Any]:
    """The parsed schema `name` (one of NAMES). Cached: treat the result as read-only."""
    if name not in NAMES:
        raise KeyError(f"unknown schema {name!r}; known: {', '.join(NAMES)}")
    with open(directory() / f"{name}.schema.json", encoding="utf-8") as f:
        return json.load(f)


def spec_schema() -> dict[str, Any]:
    """The schema of a ProfilingConfig's `.spec`."""
    return load("profilingconfig")["properties"]["spec"]


def spec_field(*path: str) -> dict[str, Any]:
    """The schema of the spec field at `path`, e.g. `spec_field("thresholds", "checkIntervalSeconds")`."""
    schema = spec_schema()
    for name in path:
        schema = schema["properties"][name]
    return schema


# Facts the schema states and code elsewhere needs: read here, written nowhere else.
API_VERSION: str = load("profilingconfig")["properties"]["apiVersion"]["enum"][0]
KIND: str = load("profilingconfig")["properties"]["kind"]["enum"][0]
TRANSPORTS: tuple[str, ...] = tuple(spec_field("transport")["enum"])
PROFILE_TYPES: tuple[str, ...] = tuple(spec_field("profileTypes")["items"]["enum"])
DEFAULT_CHECK_INTERVAL: int = spec_field("thresholds", "checkIntervalSeconds")["default"]
DEFAULT_THRESHOLD_COOLDOWN: int = spec_field("thresholds", "cooldownSeconds")["default"]

"""A validated ProfilingConfig spec as a value: what `validation.validate_spec` returns. It reads
like the JSON it was made from (`spec["thresholds"]`, `spec.get("s3Config")`, equal to that dict)
and gives the fields code needs typed views (`spec.thresholds.cooldown`, `spec.key_layout`), so
no layer re-validates or re-keys it. Pure; built only by `validation` (the constructor trusts its
input: it must be a spec the schema accepted, defaults applied).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Thresholds:
    """spec.thresholds: usage against requests (limits where none) that calls for a capture."""

    cpu_percent: float
    memory_percent: float
    check_interval: int  # seconds between checks
    cooldown: int  # seconds after a threshold capture before the next one


@dataclass(frozen=True)
class KeyLayout:
    """How object keys are built (spec.s3Config keyLayout, keyTemplate, prefix); the local store
    uses the same layout without a prefix."""

    layout: str = "pod"
    template: str | None = None
    prefix: str = ""


@dataclass(frozen=True)
class Pgo:
    """spec.pgo when enabled: which workloads get a merged `default.pgo`, how often, from what."""

    workloads: tuple[tuple[str, str], ...]  # (namespace, workload name)
    interval: int  # seconds between writes
    days: int  # captures of the last this many days are merged
    reasons: tuple[str, ...]  # capture reasons merged


class Spec(Mapping[str, Any]):
    """A validated spec with defaults applied. Treat it and what it holds as read-only."""

    __slots__ = (
        "_data",
        "baseline_interval",
        "cpu_profile_seconds",
        "key_layout",
        "on_demand_interval",
        "pgo",
        "profile_types",
        "thresholds",
    )

    def __init__(self, data: dict[str, Any]):
        self._data = data
        thresholds = data.get("thresholds")
        self.thresholds: Thresholds | None = (
            Thresholds(
                cpu_percent=thresholds["cpuThresholdPercent"],
                memory_percent=thresholds["memoryThresholdPercent"],
                check_interval=thresholds["checkIntervalSeconds"],
                cooldown=thresholds["cooldownSeconds"],
            )
            if thresholds is not None
            else None
        )
        on_demand = data.get("onDemand") or {}
        self.on_demand_interval: int | None = on_demand["intervalSeconds"] if on_demand.get("enabled") else None
        # spec.baseline: healthy captures kprof takes itself (None: off).
        self.baseline_interval: int | None = (data.get("baseline") or {}).get("intervalSeconds")
        pgo = data.get("pgo") or {}
        self.pgo: Pgo | None = (
            Pgo(
                tuple((w["namespace"], w["name"]) for w in pgo["workloads"]),
                pgo["intervalSeconds"],
                pgo["days"],
                tuple(pgo["reasons"]),
            )
            if pgo.get("enabled")
            else None
        )
        self.profile_types: tuple[str, ...] = tuple(data["profileTypes"])
        self.cpu_profile_seconds: int = data["cpuProfileSeconds"]
        s3 = data.get("s3Config") or {}
        self.key_layout = KeyLayout(s3.get("keyLayout", "pod"), s3.get("keyTemplate"), s3.get("prefix", ""))

    @property
    def data(self) -> dict[str, Any]:
        """The spec as plain JSON data (for output; do not change it)."""
        return self._data

    @property
    def namespace(self) -> str | None:
        """spec.selector.namespace: only pods there (None: every namespace)."""
        return (self._data.get("selector") or {}).get("namespace")

    @property
    def label_selector(self) -> Mapping[str, Any] | None:
        return (self._data.get("selector") or {}).get("labelSelector")

    @property
    def transport(self) -> str | None:
        """spec.transport (None: the runtime's default)."""
        return self._data.get("transport")

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"Spec({self._data!r})"

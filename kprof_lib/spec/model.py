"""A validated ProfilingConfig spec as a value: what `validation.validate_spec` returns. It reads
like the JSON it was made from (`spec["thresholds"]`, `spec.get("s3Config")`, equal to that dict)
and gives the fields code needs typed views (`spec.thresholds.cooldown`, `spec.key_layout`), so
no layer re-validates or re-keys it. Pure; built only by `validation` (the constructor trusts its
input: it must be a spec the schema accepted, defaults applied).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from kprof_lib.spec import defaults, schemas


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


@dataclass(frozen=True)
class Spike:
    """spec.triggers.spike: usage over its rolling mean (None: that resource is not watched)."""

    cpu_diff_percent: float | None
    memory_diff_percent: float | None
    cpu_floor_percent: float
    memory_floor_percent: float
    min_samples: int


@dataclass(frozen=True)
class Oom:
    """spec.triggers.oom: the memory trend against the limit."""

    horizon: int  # seconds
    min_samples: int
    profile_types: tuple[str, ...]  # what an oom-risk capture takes (heap first by default)
    cooldown: int


@dataclass(frozen=True)
class Goroutines:
    """spec.triggers.goroutines: an absolute count and/or a spike over the rolling mean."""

    threshold: int | None
    spike_diff_percent: float | None
    floor: int
    min_samples: int


@dataclass(frozen=True)
class Triggers:
    """spec.triggers with defaults applied (also when absent: captureNow is on by default). The
    cooldown of each family is here, so reconcile reads one place for all of them."""

    window_samples: int
    max_captures_per_minute: int | None
    spike: Spike | None
    oom: Oom | None
    goroutines: Goroutines | None
    capture_now: bool
    alerts: bool
    threshold_cooldown: int  # cpu/memory/goroutine thresholds (thresholds.cooldownSeconds)
    spike_cooldown: int  # cpu/memory/goroutine spikes (spike.cooldownSeconds)
    alert_cooldown: int

    @property
    def uses_window(self) -> bool:
        """Whether any trigger reads the window of previous samples (so the plan carries samples)."""
        return (
            self.spike is not None
            or self.oom is not None
            or (self.goroutines is not None and self.goroutines.spike_diff_percent is not None)
        )


@functools.cache
def _schema_defaults(*path: str) -> dict[str, Any]:
    """What the schema fills into an empty object at `path` (read-only: cached)."""
    return defaults.apply(schemas.spec_field(*path), {})


def _triggers(data: dict[str, Any], thresholds: Thresholds | None, profile_types: tuple[str, ...]) -> Triggers:
    # An absent object has the schema's defaults here, read from the schema (one source of them).
    given = data.get("triggers") or _schema_defaults("triggers")
    spike = given.get("spike")
    spike_filled = spike or _schema_defaults("triggers", "spike")
    oom = given.get("oom")
    goroutines = given.get("goroutines")
    alerts = given.get("alerts") or _schema_defaults("triggers", "alerts")
    return Triggers(
        window_samples=given["windowSamples"],
        max_captures_per_minute=given.get("maxCapturesPerMinute"),
        spike=Spike(
            spike.get("cpuDiffPercent"),
            spike.get("memoryDiffPercent"),
            spike["cpuFloorPercent"],
            spike["memoryFloorPercent"],
            spike["minSamples"],
        )
        if spike
        else None,
        oom=Oom(
            oom["oomHorizonSeconds"],
            oom["minSamples"],
            tuple(oom.get("profileTypes") or dict.fromkeys(("heap", *profile_types))),
            oom["cooldownSeconds"],
        )
        if oom
        else None,
        goroutines=Goroutines(
            goroutines.get("goroutineThreshold"),
            goroutines.get("spikeDiffPercent"),
            goroutines["floor"],
            goroutines["minSamples"],
        )
        if goroutines
        else None,
        capture_now=given["captureNow"]["enabled"],
        alerts=alerts["enabled"],
        threshold_cooldown=thresholds.cooldown if thresholds is not None else schemas.DEFAULT_THRESHOLD_COOLDOWN,
        spike_cooldown=spike_filled["cooldownSeconds"],
        alert_cooldown=alerts["cooldownSeconds"],
    )


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
        "triggers",
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
        # spec.triggers, defaults applied also when absent (captureNow is on by default).
        self.triggers: Triggers = _triggers(data, self.thresholds, self.profile_types)
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
    def reads_metrics(self) -> bool:
        """Whether a check needs PodMetrics: thresholds, spikes or the memory trend."""
        return self.thresholds is not None or self.triggers.spike is not None or self.triggers.oom is not None

    @property
    def reads_goroutines(self) -> bool:
        """Whether a check needs each selected pod's goroutine count (cluster state `goroutines`)."""
        return self.triggers.goroutines is not None

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

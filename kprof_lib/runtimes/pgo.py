"""A workload's `default.pgo` from its stored CPU captures: pick the captures by their
`summary.json` (namespace, workload, reason, time), read their CPU profiles from S3 or a local
directory one at a time (`adapters.captures`), merge them (`profiles.merge`), and say what went in.
`kprof pgo` writes the result to a file; the operator's `pgo` jobs store it under
`<prefix>/pgo/<namespace>/<workload>/default.pgo` with a `summary.json` beside it.

Threshold captures are left out unless asked for (`DEFAULT_REASONS`): a profile taken only while a
pod was on fire shows the fire, not the program's usual work, and would steer the compiler there.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from kprof_lib.adapters import captures as stored
from kprof_lib.adapters.captures import CaptureError
from kprof_lib.planning.plan import ON_DEMAND
from kprof_lib.profiles import decode, top
from kprof_lib.profiles.merge import MergeError, Merger
from kprof_lib.runtimes import captures
from kprof_lib.state import cluster

CPU = "cpu"
CPU_SAMPLE_TYPE = "cpu"
DEFAULT_REASONS = (ON_DEMAND,)
TOP_COUNT = 10
PGO_FOLDER = "pgo"
PROFILE_NAME = "default.pgo"
SUMMARY_NAME = "summary.json"
SUMMARY_KIND = "pgo"  # what tells this summary.json from a capture's (`adapters.captures.summaries`)


class PgoError(Exception):
    """Nothing to build from: no CPU captures match, or none of them could be read."""


@dataclass(frozen=True)
class Selection:
    """Which captures go into the profile: one workload of one namespace, captured for one of
    `reasons`, at `since` or later (any time when None)."""

    namespace: str
    workload: str
    reasons: tuple[str, ...] = DEFAULT_REASONS
    since: dt.datetime | None = None
    key_layout: str = "pod"

    def describe(self) -> str:
        """`namespace shop, workload checkout, reason on-demand, since 2026-11-25T10:00:00Z`."""
        parts = [f"namespace {self.namespace}", f"workload {self.workload}", f"reason {','.join(self.reasons)}"]
        if self.since is not None:
            parts.append(f"since {cluster.format_time(self.since)}")
        return ", ".join(parts)


@dataclass(frozen=True)
class Picked:
    """One capture chosen: its folder, time, pod and reason (from its summary)."""

    location: str
    captured_at: str
    pod: str
    reason: str


@dataclass
class Built:
    """The merged profile (gzip'd pprof) and what went into it."""

    data: bytes
    used: list[Picked]
    cpu_seconds: float
    duration_seconds: float
    hottest: list[top.Entry]  # the top functions by flat CPU time
    total: int
    left_out: dict[str, str] = field(default_factory=dict)  # capture folder -> why

    @property
    def first(self) -> str:
        return min(p.captured_at for p in self.used)

    @property
    def last(self) -> str:
        return max(p.captured_at for p in self.used)

    def summary(self, selection: Selection, written_at: dt.datetime) -> dict[str, Any]:
        """What `summary.json` beside a stored `default.pgo` says."""
        return {
            "version": 1,
            "kind": SUMMARY_KIND,
            "namespace": selection.namespace,
            "workload": selection.workload,
            "reasons": list(selection.reasons),
            "since": cluster.format_time(selection.since) if selection.since else None,
            "writtenAt": cluster.format_time(written_at),
            "profiles": len(self.used),
            "from": self.first,
            "to": self.last,
            "cpuSeconds": round(self.cpu_seconds, 3),
            "durationSeconds": round(self.duration_seconds, 3),
            "top": [
                {"name": e.name, "flat": e.flat, "flatShare": round(e.flat / self.total, 4) if self.total else 0}
                for e in self.hottest
            ],
            "captures": [p.location for p in self.used],
            "leftOut": self.left_out,
        }


def select(found: Iterable[tuple[str, dict[str, Any]]], selection: Selection) -> list[Picked]:
    """The captures among (location, summary) that the selection takes and that have a CPU
    profile, oldest first."""
    picked = []
    for location, summary in found:
        capture = summary.get("capture") or {}
        if CPU not in (summary.get("profiles") or {}):
            continue
        if capture.get("namespace") != selection.namespace or capture.get("service") != selection.workload:
            continue
        if capture.get("reason") not in selection.reasons:
            continue
        captured_at = str(capture.get("capturedAt", ""))
        if not captures.taken_since(captured_at, selection.since):
            continue
        picked.append(Picked(location, captured_at, str(capture.get("pod", "")), str(capture["reason"])))
    picked.sort(key=lambda p: (p.captured_at, p.location))
    return picked


def build(
    destination: str,
    selection: Selection,
    *,
    endpoint: str | None = None,
    region: str | None = None,
    top_count: int = TOP_COUNT,
) -> Built:
    """Merge the CPU profiles of the captures under `destination` that `selection` takes. A
    capture whose profile cannot be read or merged is left out and named in `left_out`. Raises
    PgoError when there is nothing to merge, CaptureError when the destination cannot be listed."""
    under = selection.namespace if selection.key_layout == "pod" else ""
    found = stored.summaries(destination, under=under, endpoint=endpoint, region=region)
    picked = select(found, selection)
    if not picked:
        raise PgoError(f"no CPU captures with a summary.json under {destination} for {selection.describe()}")
    merger = Merger()
    used: list[Picked] = []
    left_out: dict[str, str] = {}
    for capture in picked:
        try:
            name, data = stored.read(capture.location, endpoint=endpoint, region=region, types=(CPU,)).profiles[CPU]
            merger.add(data, name)
            del data  # one input held at a time
        except (CaptureError, MergeError, KeyError) as error:
            left_out[capture.location] = str(error)
            continue
        used.append(capture)
    if not used:
        raise PgoError(
            f"none of the {len(picked)} CPU captures for {selection.describe()} could be read: "
            + "; ".join(left_out.values())
        )
    merged = merger.result()
    profile = decode(merged)
    index = _cpu_index(profile)
    return Built(
        data=merged,
        used=used,
        cpu_seconds=profile.total(index) / 1e9 if profile.sample_types[index].unit == "nanoseconds" else 0.0,
        duration_seconds=profile.duration_nanos / 1e9,
        hottest=top.entries(profile, profile.sample_types[index].type)[:top_count],
        total=profile.total(index),
        left_out=left_out,
    )


def pgo_prefix(prefix: str, namespace: str, workload: str) -> str:
    """`<prefix>/pgo/<namespace>/<workload>/`: where the operator keeps a workload's profile."""
    return "/".join(part for part in (prefix.strip("/"), PGO_FOLDER, namespace, workload) if part) + "/"


def _cpu_index(profile) -> int:
    for index, sample_type in enumerate(profile.sample_types):
        if sample_type.type == CPU_SAMPLE_TYPE:
            return index
    return profile.sample_type_index()


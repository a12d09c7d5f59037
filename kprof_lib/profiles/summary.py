"""The summary of one capture (what `summary.json` holds): for each profile type and each of its
sample types the total, the duration and the top functions by flat and by cum with their share of
the total. Pure; `kprof show` prints it, and the capture path (`execution.summaries`) writes it beside
the profiles.

Shape (version 1):
    {"version": 1, "capture": {...as given...},
     "profiles": {"cpu": {"file": "cpu.pprof", "bytes": 2479, "durationSeconds": 2.01,
                          "defaultSampleType": "cpu", "samples": 88,
                          "sampleTypes": {"cpu": {"unit": "nanoseconds", "total": 880000000,
                                                  "topFlat": [{"name", "flat", "cum", "flatShare", "cumShare"}],
                                                  "topCum": [...]}, ...}}},
     "errors": {"mutex": "why it could not be read"}}
Shares are fractions of the sample type's total (0 when the total is 0), rounded to 4 places.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kprof_lib.profiles import top
from kprof_lib.profiles.model import Profile

VERSION = 1
TOP = 10


def profile_part(file: str, size: int, profile: Profile, *, n: int = TOP) -> dict[str, Any]:
    """One profile type's entry of `profiles`: its file name and size, and per sample type the
    total and the top functions."""
    sample_types = {}
    for index, sample_type in enumerate(profile.sample_types):
        total = profile.total(index)
        rows = top.entries(profile, sample_type.type)
        sample_types[sample_type.type] = {
            "unit": sample_type.unit,
            "total": total,
            "topFlat": [_row(r, total) for r in rows[:n]],
            "topCum": [_row(r, total) for r in top.by_cum(rows)[:n]],
        }
    return {
        "file": file,
        "bytes": size,
        "durationSeconds": round(profile.duration_nanos / 1e9, 3),
        "defaultSampleType": profile.default_sample_type,
        "samples": profile.sample_count,
        "sampleTypes": sample_types,
    }


def summarize(
    profiles: Mapping[str, tuple[str, int, Profile]],
    *,
    capture: Mapping[str, Any] | None = None,
    errors: Mapping[str, str] | None = None,
    n: int = TOP,
) -> dict[str, Any]:
    """The capture's summary from {type: (file name, size in bytes, decoded profile)}.

    `capture` (pod, reason, time, URI, trace id ...) is copied as given; `errors` lists the
    profiles that could not be read, by type, so a reader sees they exist.
    """
    parts = {kind: profile_part(*profiles[kind], n=n) for kind in profiles}
    return assemble(parts, capture=capture, errors=errors)


def assemble(
    parts: Mapping[str, Mapping[str, Any]],
    *,
    capture: Mapping[str, Any] | None = None,
    errors: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The summary from parts made one profile at a time (`profile_part`), so that a caller can
    let each decoded profile go before decoding the next."""
    body = {kind: dict(parts[kind]) for kind in sorted(parts)}
    return {"version": VERSION, "capture": dict(capture or {}), "profiles": body, "errors": dict(errors or {})}


def default_view(summary_profile: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]]:
    """(sample type, its part) that pprof would show for this profile."""
    types = summary_profile["sampleTypes"]
    name = summary_profile.get("defaultSampleType") or next(reversed(types), "")
    return name, types[name]


def top_functions(summary: Mapping[str, Any], count: int = 3) -> dict[str, list[tuple[str, float]]]:
    """{type: [(function, flat share)]} of the default sample type: what a one-line report names."""
    found = {}
    for kind, part in summary.get("profiles", {}).items():
        if not part.get("sampleTypes"):
            continue
        _, view = default_view(part)
        found[kind] = [(row["name"], row["flatShare"]) for row in view["topFlat"][:count]]
    return found


def hot_text(tops: list[tuple[str, float]]) -> str:
    """`main.spin 78%, runtime.mallocgc 6%`: a type's top functions for a one-line report."""
    return ", ".join(f"{name} {share * 100:.0f}%" for name, share in tops)


def _row(entry: top.Entry, total: int) -> dict[str, Any]:
    return {
        "name": entry.name,
        "flat": entry.flat,
        "cum": entry.cum,
        "flatShare": _share(entry.flat, total),
        "cumShare": _share(entry.cum, total),
    }


def _share(value: int, total: int) -> float:
    return round(value / total, 4) if total else 0.0

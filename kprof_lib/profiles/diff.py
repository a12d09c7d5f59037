"""What changed between two captures of one workload (a healthy baseline and an incident), per
profile type: the functions whose share of CPU grew most, the in-use bytes that grew most by
function (leak suspects), the goroutine count growth by stack (goroutine leaks), and for the
other types the flat growth of their default sample type. Pure; `kprof diff` prints it, the
flame-graph page shows it, and the capture path adds it to a threshold capture's summary.

Shape: {"cpu": {"sampleType": "cpu", "unit": "nanoseconds", "measure": "flatShare",
                "baseTotal": ..., "incidentTotal": ...,
                "growth": [{"name", "base", "incident", "delta"}]},   # largest delta first
        "goroutine": {... "measure": "count", "growth": [{"stack": [root, ..., leaf], ...}]}}
Only types present in both captures are compared; `missing` lists the others.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kprof_lib.profiles import top
from kprof_lib.profiles.model import Profile

TOP = 10
# Per profile type: the sample type compared and how (share of the total, or absolute values).
_PLANS = {
    "cpu": ("cpu", "flatShare"),
    "heap": ("inuse_space", "flat"),
    "goroutine": ("goroutine", "stackCount"),
}


def compare(base: Mapping[str, Profile], incident: Mapping[str, Profile], *, n: int = TOP) -> dict[str, Any]:
    """The diff of every profile type the two captures share."""
    result: dict[str, Any] = {}
    for kind in sorted(set(base) & set(incident)):
        result[kind] = compare_profile(kind, base[kind], incident[kind], n=n)
    missing = sorted(set(base) ^ set(incident))
    return {"types": result, "missing": missing}


def compare_profile(kind: str, base: Profile, incident: Profile, *, n: int = TOP) -> dict[str, Any]:
    sample_type, measure = _PLANS.get(kind, (None, "flat"))
    if sample_type is None or not _has(base, sample_type) or not _has(incident, sample_type):
        sample_type = incident.default_sample_type
    bi, ii = base.sample_type_index(sample_type), incident.sample_type_index(sample_type)
    base_total, incident_total = base.total(bi), incident.total(ii)
    # Keyed by stack (a tuple of frames) or by function name; values are counts, bytes or shares.
    before: Mapping[Any, float]
    after: Mapping[Any, float]
    if measure == "stackCount":
        before, after = stack_values(base, bi), stack_values(incident, ii)
        key_name = "stack"
    else:
        before = {e.name: e.flat for e in top.entries(base, sample_type)}
        after = {e.name: e.flat for e in top.entries(incident, sample_type)}
        if measure == "flatShare":
            before = {k: v / base_total for k, v in before.items()} if base_total else {}
            after = {k: v / incident_total for k, v in after.items()} if incident_total else {}
        key_name = "name"
    rows = []
    for key in set(before) | set(after):
        b, a = before.get(key, 0), after.get(key, 0)
        if a - b > 0:
            rows.append((a - b, key, b, a))
    rows.sort(key=lambda r: (-r[0], r[1]))
    round_to = 4 if measure == "flatShare" else None
    growth = [
        {
            key_name: list(key) if key_name == "stack" else key,
            "base": _round(b, round_to),
            "incident": _round(a, round_to),
            "delta": _round(d, round_to),
        }
        for d, key, b, a in rows[:n]
    ]
    return {
        "sampleType": sample_type,
        "unit": incident.sample_types[ii].unit,
        "measure": measure,
        "baseTotal": base_total,
        "incidentTotal": incident_total,
        "growth": growth,
    }


def stack_values(profile: Profile, index: int) -> dict[tuple[str, ...], int]:
    """{stack as function names root first: summed value}; inlined frames are kept as frames."""
    names, locations = profile.function_names, profile.locations
    found: dict[tuple[str, ...], int] = {}
    for stack, value in profile.stacks(index):
        frames = tuple(names[f] for location in reversed(stack) for f in reversed(locations[location]))
        found[frames] = found.get(frames, 0) + value
    return found


def top_grower(diff: Mapping[str, Any]) -> tuple[str, str] | None:
    """(type, function) of the first growth row of cpu, heap or goroutine, for a one-line report;
    for a goroutine stack, the innermost frame that is not the runtime's."""
    for kind in ("cpu", "heap", "goroutine"):
        rows = diff.get("types", {}).get(kind, {}).get("growth", [])
        if rows:
            row = rows[0]
            return kind, (own_frames(row["stack"], 1) or ["(no stack)"])[0] if "stack" in row else row["name"]
    return None


def own_frames(stack: list[str], count: int = 3) -> list[str]:
    """The innermost `count` frames of a stack (root first) that are not the Go runtime's parking
    and scheduling frames, leaf first: where goroutines wait, and who started them."""
    frames = [f for f in reversed(stack) if not f.startswith(_RUNTIME_PREFIXES)]
    return frames[:count] or list(reversed(stack))[:count]


def stack_label(stack: list[str], count: int = 3) -> str:
    return " <- ".join(own_frames(stack, count)) or "(no stack)"


_RUNTIME_PREFIXES = ("runtime.", "internal/", "sync.runtime_")


def _has(profile: Profile, sample_type: str) -> bool:
    return any(t.type == sample_type for t in profile.sample_types)


def _round(value: float, places: int | None) -> float | int:
    return round(value, places) if places is not None else value

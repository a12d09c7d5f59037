"""Flat and cumulative values per function, the way `go tool pprof -top` counts them: flat goes to
the innermost frame of a sample's leaf location, cum to every function on the stack once per
sample (recursion does not count twice). Called by the summaries, the diffs and `kprof show`.
"""

from __future__ import annotations

from dataclasses import dataclass

from kprof_lib.profiles.model import Profile


@dataclass(frozen=True)
class Entry:
    """One function's row: its flat and cum values in the sample type's unit."""

    name: str
    flat: int
    cum: int


def entries(profile: Profile, sample_type: str | None = None) -> list[Entry]:
    """Every function with a non-zero flat or cum, in pprof's order (flat desc, name, cum desc)."""
    index = profile.sample_type_index(sample_type)
    count = len(profile.function_names)
    flat = [0] * count
    cum = [0] * count
    locations = profile.locations
    for stack, value in profile.stacks(index):
        if not value or not stack:
            continue
        flat[locations[stack[0]][0]] += value
        if len(stack) == 1 and len(locations[stack[0]]) == 1:
            cum[locations[stack[0]][0]] += value
            continue
        seen = set()
        for location in stack:
            seen.update(locations[location])
        for function in seen:
            cum[function] += value
    rows = [Entry(profile.function_names[i], flat[i], cum[i]) for i in range(count) if flat[i] or cum[i]]
    rows.sort(key=lambda e: (-abs(e.flat), e.name, -abs(e.cum)))
    return rows


def by_cum(rows: list[Entry]) -> list[Entry]:
    """The same rows ordered by cum (desc), then name."""
    return sorted(rows, key=lambda e: (-abs(e.cum), e.name))

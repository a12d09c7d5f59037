"""The decoded form of one pprof profile: what the summaries, diffs and flame graphs read.

Kept compact on purpose (a profile can hold millions of frames): the samples' location ids and
values sit in flat `array`s with per-sample offsets, and every location is reduced to the tuple of
its frames' function indexes, innermost (inlined) frame first. Functions are deduplicated by name,
which is `go tool pprof`'s default granularity. Built only by `kprof_lib.profiles.decoding`.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass(frozen=True)
class SampleType:
    """One column of every sample's values, e.g. `inuse_space` in `bytes`."""

    type: str
    unit: str


@dataclass
class Profile:
    """A decoded profile.

    `function_names[i]` is the name of function index i (unique names). `locations[k]` is the
    frames of location index k as function indexes, innermost first. Sample s has the location
    indexes `stack_ids[stack_starts[s]:stack_starts[s + 1]]` (leaf first, as in the file) and the
    values `values[s * len(sample_types) + t]`.
    """

    sample_types: list[SampleType]
    default_sample_type: str
    period_type: SampleType | None
    period: int
    time_nanos: int
    duration_nanos: int
    function_names: list[str]
    function_files: list[str]
    locations: list[tuple[int, ...]]
    stack_ids: array
    stack_starts: array
    values: array
    comments: list[str] = field(default_factory=list)

    @property
    def sample_count(self) -> int:
        return len(self.stack_starts) - 1

    def sample_type_index(self, name: str | None = None) -> int:
        """Index of the sample type `name`, or of the default one (pprof's choice) when None.

        Raises KeyError naming the types there are.
        """
        wanted = self.default_sample_type if name is None else name
        for index, sample_type in enumerate(self.sample_types):
            if sample_type.type == wanted:
                return index
        known = ", ".join(t.type for t in self.sample_types) or "none"
        raise KeyError(f"sample type {wanted!r} is not in this profile (it has: {known})")

    def stacks(self, index: int) -> Iterator[tuple[array, int]]:
        """(location indexes leaf first, value of sample type `index`) for every sample."""
        width = len(self.sample_types)
        starts, ids, values = self.stack_starts, self.stack_ids, self.values
        for s in range(len(starts) - 1):
            yield ids[starts[s] : starts[s + 1]], values[s * width + index]

    def total(self, index: int) -> int:
        width = len(self.sample_types)
        return sum(self.values[index::width])

"""Error types for bad input: each lists every problem, each problem naming its path.

`SpecError` here and `state.errors.StateError` are `ValueError`s and permanent (retrying the same
input gives the same answer): a runtime reports them (status condition, Event, exit code) instead
of retrying.
"""

from __future__ import annotations

from typing import TypedDict


class Problem(TypedDict):
    path: str
    message: str


class InputError(ValueError):
    """Bad input, with every problem found. `errors` is a list of `{path, message}`."""

    subject = "input"

    def __init__(self, errors: list[Problem]):
        self.errors: list[Problem] = list(errors)
        super().__init__(self.__str__())

    def __str__(self) -> str:
        count = len(self.errors)
        head = f"invalid {self.subject}: {count} problem{'s' if count != 1 else ''}"
        return "\n  ".join([head, *(f"{p['path']}: {p['message']}" for p in self.errors)])


class SpecError(InputError):
    """A ProfilingConfig spec that breaks the schema."""

    subject = "ProfilingConfig spec"

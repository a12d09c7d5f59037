"""The in-flight byte budget: how many bytes of profiles every capture of the process together may
hold in memory, from their first byte until the store has them. The executor takes from it as a
body streams in and gives back once the profile is stored (or failed), so that however many
checks run at once and however big the profiles are, memory stays bounded.

A capture that finds the budget spent waits for others to finish, until its own deadline; then it
fails with a message naming the budget (`BudgetExhausted`). Waiting cannot deadlock: what holds the
budget is captures that are streaming or storing, and both end by their deadlines. `fits` is the
start-up check that `concurrency` captures at the size cap fit at once.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

from kprof_lib.execution.ports import CaptureFailed


class BudgetExhausted(CaptureFailed):
    """The in-flight byte budget stayed spent until the capture's deadline."""


class ByteBudget:
    """`limit` bytes shared by every capture that holds a `Holding` of it. Thread-safe."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"the in-flight byte budget must be at least 1 byte, not {limit}")
        self.limit = limit
        self._used = 0
        self._changed = threading.Condition()
        self.peak = 0  # the most ever held at once, for tests and metrics

    @property
    def used(self) -> int:
        with self._changed:
            return self._used

    @contextlib.contextmanager
    def holding(self) -> Iterator[Holding]:
        """A capture's share: what it reserves is given back when the block ends, however it ends."""
        held = Holding(self)
        try:
            yield held
        finally:
            held.release()

    def _take(self, count: int, deadline: float, holding: Holding) -> None:
        with self._changed:
            if holding.count + count > self.limit:
                raise BudgetExhausted(f"profile needs more than the in-flight byte budget of {self.limit} bytes")
            while self._used + count > self.limit:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise BudgetExhausted(
                        f"in-flight byte budget of {self.limit} bytes stayed spent by other captures "
                        f"({self._used} bytes held) until this capture's deadline"
                    )
                self._changed.wait(remaining)
            self._used += count
            self.peak = max(self.peak, self._used)

    def _give(self, count: int) -> None:
        if count:
            with self._changed:
                self._used -= count
                self._changed.notify_all()


class Holding:
    """The bytes one capture holds; `reserve` is what `capture.fetch_profile` calls per chunk."""

    def __init__(self, budget: ByteBudget) -> None:
        self._budget = budget
        self.count = 0

    def reserve(self, count: int, deadline: float) -> None:
        self._budget._take(count, deadline, self)
        self.count += count

    def release(self) -> None:
        count, self.count = self.count, 0
        self._budget._give(count)


def fits(concurrency: int, max_bytes: int, budget: int) -> str | None:
    """None when `concurrency` profiles at the `max_bytes` cap fit in `budget` at once, else why not."""
    need = concurrency * max_bytes
    if need > budget:
        return (
            f"concurrency ({concurrency}) x size cap ({max_bytes} bytes) = {need} bytes "
            f"does not fit the in-flight byte budget ({budget} bytes)"
        )
    return None

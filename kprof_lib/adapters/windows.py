"""Usage windows: per pod, the measurements of its last checks (time, CPU cores, memory bytes,
goroutines), which the rolling-baseline, time-to-OOM and goroutine-spike triggers judge. Reconcile
is given them as the cluster state's `usageWindow` ({"namespace/pod": [sample, ...]}, oldest
first); the check cycle hands each check's samples back (`run_check(save_samples=...)`), and the
runtimes keep them here between checks.

`UsageWindows` holds them in memory, bounded: at most `limit` samples per pod (the spec's
`triggers.windowSamples`, never more than `MAX_SAMPLES`) and no pod whose newest sample is older
than `max_age`, so pods that went away leave with time. Each sample is kept as a row (a tuple
`(time, cpuCores, memoryBytes, goroutines)`, one time string per check: 23 MiB for 10,000 pods of
10 samples, where sample dicts took 33 MiB, measured with tracemalloc), and `view()` hands
reconcile a read-only mapping that builds a pod's sample objects only when reconcile reads that
pod, instead of a copy of every window at every check (an operator may keep windows for 100,000
pods). `WindowFile` mirrors one to a JSON file (the sidecar's, beside its capture history), so a
restarted process keeps its trends; the operator keeps its own in a ConfigMap
(`adapters.kube.windows`). Both persist the rows as they are (`dumps`/`decode`).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from kprof_lib.adapters.files import write_atomically
from kprof_lib.state import cluster

log = logging.getLogger("kprof.windows")

MAX_SAMPLES = cluster.MAX_WINDOW_SAMPLES  # the schema's bound on windowSamples and usageWindow's items
DEFAULT_MAX_AGE = dt.timedelta(hours=1)
FIELDS = ("time", "cpuCores", "memoryBytes", "goroutines")
FORMAT_VERSION = 1

Row = tuple[str, float | None, float | None, int | None]  # one sample, in the order of FIELDS
Rows = dict[str, list[Row]]  # "namespace/pod" -> its rows, oldest first
Windows = dict[str, list[dict[str, Any]]]  # the same as sample objects, as the cluster state has them


def row_of(raw: Mapping[str, Any] | Iterable[Any]) -> Row | None:
    """A sample (an object with the four fields, or a row) as a row, or None when it has no
    readable time or a figure that is not a number >= 0 (a missing figure is None)."""
    values = [raw.get(name) for name in FIELDS] if isinstance(raw, Mapping) else list(raw)
    if len(values) != len(FIELDS):
        return None
    try:
        moment = cluster.parse_time(values[0])
    except ValueError:
        return None
    for value in values[1:]:
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or value < 0):
            return None
    goroutines = values[3]
    # One check's samples share their time: one string for all of them, not one per pod.
    text = sys.intern(cluster.format_time(moment))
    return (text, values[1], values[2], None if goroutines is None else int(goroutines))


def sample_object(row: Row) -> dict[str, Any]:
    return dict(zip(FIELDS, row, strict=True))


class UsageWindows:
    """The windows of one config (or one sidecar): thread-safe, bounded (see the module)."""

    def __init__(self, *, limit: int = MAX_SAMPLES, max_age: dt.timedelta = DEFAULT_MAX_AGE) -> None:
        self.limit = _bounded(limit)
        self.max_age = max_age
        self._pods: dict[str, deque[Row]] = {}
        self._newest: dict[str, dt.datetime] = {}  # each pod's newest sample time, parsed once
        self._lock = threading.Lock()

    def view(self) -> Mapping[str, list[dict[str, Any]]]:
        """The windows for the cluster state's `usageWindow`: a read-only mapping that makes a
        pod's sample objects when they are read (each read a copy, so a later append does not
        change what was read)."""
        return _View(self)

    def snapshot(self) -> Windows:
        """Every window as sample objects, oldest first: a copy."""
        return {key: [sample_object(row) for row in rows] for key, rows in self.rows().items()}

    def rows(self) -> Rows:
        """Every window as rows, oldest first: a copy."""
        with self._lock:
            return {key: list(rows) for key, rows in self._pods.items()}

    def samples_of(self, key: str) -> list[dict[str, Any]] | None:
        with self._lock:
            rows = self._pods.get(key)
            return None if rows is None else [sample_object(row) for row in rows]

    def keys(self) -> list[str]:
        with self._lock:
            return list(self._pods)

    def __len__(self) -> int:
        with self._lock:
            return len(self._pods)

    def append(self, samples: Mapping[str, Mapping[str, Any]], *, limit: int | None = None) -> int:
        """Add one check's samples ({"namespace/pod": sample}); a sample not later than the pod's
        newest is ignored (a check run twice for the same moment). `limit` changes the bound (a
        spec's new windowSamples). Pods whose newest sample is older than `max_age` before the
        newest of this call are dropped. Returns how many samples were added."""
        added = 0
        with self._lock:
            if limit is not None and _bounded(limit) != self.limit:
                self.limit = _bounded(limit)
                for key, kept in self._pods.items():
                    self._pods[key] = deque(kept, maxlen=self.limit)
            newest: dt.datetime | None = None
            for key, raw in samples.items():
                row = row_of(raw)
                if row is None:
                    continue
                moment = cluster.parse_time(row[0])
                latest = self._newest.get(key)
                if latest is not None and latest >= moment:
                    continue
                self._pods.setdefault(key, deque(maxlen=self.limit)).append(row)
                self._newest[key] = moment
                added += 1
                newest = moment if newest is None or moment > newest else newest
            if newest is not None:
                self._drop_older_than(newest - self.max_age)
        return added

    def replace(self, windows: Mapping[str, Iterable[Any]]) -> None:
        """Start from `windows` (rows or sample objects, read back from where they were
        persisted), bounded as usual; what is not a sample is left out."""
        with self._lock:
            self._pods, self._newest = {}, {}
            for key, samples in windows.items():
                timed = sorted(
                    ((cluster.parse_time(row[0]), row) for row in (row_of(raw) for raw in samples) if row is not None),
                    key=lambda pair: pair[0],
                )
                if timed:
                    self._pods[key] = deque((row for _, row in timed), maxlen=self.limit)
                    self._newest[key] = timed[-1][0]

    def forget(self, keys: Iterable[str] | None = None) -> None:
        """Drop the windows of `keys` (all when None)."""
        with self._lock:
            if keys is None:
                self._pods.clear()
                self._newest.clear()
            for key in keys or ():
                self._pods.pop(key, None)
                self._newest.pop(key, None)

    def _drop_older_than(self, oldest_kept: dt.datetime) -> None:
        for key in [key for key, newest in self._newest.items() if newest < oldest_kept]:
            del self._pods[key], self._newest[key]


class _View(Mapping[str, list[dict[str, Any]]]):
    """`UsageWindows.view()`: reconcile reads `.get(key)` for the pods it judges."""

    def __init__(self, windows: UsageWindows) -> None:
        self._windows = windows

    def __getitem__(self, key: str) -> list[dict[str, Any]]:
        samples = self._windows.samples_of(key)
        if samples is None:
            raise KeyError(key)
        return samples

    def __iter__(self) -> Iterator[str]:
        return iter(self._windows.keys())

    def __len__(self) -> int:
        return len(self._windows)


def _bounded(limit: int) -> int:
    return max(1, min(MAX_SAMPLES, int(limit)))


# Persisted form ---------------------------------------------------------------------------------


def dumps(rows: Mapping[str, Iterable[Row]]) -> str:
    """The compact document: {"version": 1, "fields": [...], "pods": {"ns/pod": [[time, cpu,
    memory, goroutines], ...]}} (a fifth of the size of sample objects, for a ConfigMap's 1 MiB)."""
    document = {"version": FORMAT_VERSION, "fields": list(FIELDS), "pods": {key: list(r) for key, r in rows.items()}}
    return json.dumps(document, separators=(",", ":"), sort_keys=True)


def decode(document: Any) -> Rows:
    """The rows `dumps` wrote; `ValueError` for a document of another shape or version. Rows that
    are not samples are left out."""
    if not isinstance(document, dict) or document.get("version") != FORMAT_VERSION:
        raise ValueError(f"not a version {FORMAT_VERSION} usage window document")
    if document.get("fields") != list(FIELDS) or not isinstance(document.get("pods"), dict):
        raise ValueError(f"expected fields {list(FIELDS)} and a pods object")
    rows: Rows = {}
    for key, found in document["pods"].items():
        if not isinstance(found, list):
            raise ValueError(f"pods[{key!r}]: expected a list of rows")
        rows[key] = [row for row in (row_of(raw) for raw in found if isinstance(raw, list)) if row is not None]
    return rows


def fit(rows: Rows, max_bytes: int) -> Rows:
    """`rows` cut to at most `max_bytes` once dumped: every pod keeps its newest samples, as many
    as all can keep (so a restart after a long run still has a short window for each pod)."""
    if len(dumps(rows)) <= max_bytes:
        return rows
    keep = max((len(kept) for kept in rows.values()), default=0)
    while keep > 1:
        keep = max(1, keep * 3 // 4)
        cut = {key: kept[-keep:] for key, kept in rows.items()}
        if len(dumps(cut)) <= max_bytes:
            return cut
    # One sample per pod still too much: the pods measured most recently go first.
    empty = len(dumps({}))
    chosen: Rows = {}
    size = empty
    for key in sorted(rows, key=lambda key: rows[key][-1][0] if rows[key] else "", reverse=True):
        if not rows[key]:
            continue
        entry = len(dumps({key: rows[key][-1:]})) - empty
        if size + entry + 1 > max_bytes:
            break
        chosen[key], size = rows[key][-1:], size + entry + 1
    return chosen


class WindowFile:
    """`UsageWindows` mirrored to a JSON file, written after every append (atomically). A file that
    cannot be read is logged and ignored: the triggers then wait for a new window to fill."""

    def __init__(self, path: Path, *, limit: int = MAX_SAMPLES, max_age: dt.timedelta = DEFAULT_MAX_AGE) -> None:
        self.path = path
        self.windows = UsageWindows(limit=limit, max_age=max_age)
        self.windows.replace(self._load())

    def _load(self) -> Rows:
        try:
            return decode(json.loads(self.path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as error:
            log.warning("usage window %s cannot be read (%s); starting without it", self.path, error)
            return {}

    def view(self) -> Mapping[str, list[dict[str, Any]]]:
        return self.windows.view()

    def snapshot(self) -> Windows:
        return self.windows.snapshot()

    def append(self, samples: Mapping[str, Mapping[str, Any]], *, limit: int | None = None) -> int:
        added = self.windows.append(samples, limit=limit)
        if added:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                write_atomically([(self.path, (dumps(self.windows.rows()) + "\n").encode())])
            except OSError as error:
                log.warning("usage window %s cannot be written: %s", self.path, error)
        return added

"""Terminal output a person can follow while profiles are taken, for `kprof capture` and `kprof
local`: whole lines from any thread, and while a profile is being fetched a live status line (on a
terminal: redrawn every half second, a countdown and bar for a CPU profile; elsewhere: a plain line
when a long profile starts and one every `PLAIN_EVERY` seconds, so logs and CI stay readable).

Hand-drawn on purpose: a few ANSI codes do it, and a terminal library would cost start-up time
(tests/test_layers.py and benchmarks/bench_startup.py keep start-up lean). `Watching` wraps a
`Transport` so the executor needs no hook: the live line lasts exactly as long as the transport's
`open` context, which is the whole fetch of one profile.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import IO, Any
from urllib.parse import unquote, urlsplit

from kprof_lib.execution import redact, results, summaries, telemetry
from kprof_lib.execution.ports import (
    ForwardingStore,
    ForwardingTransport,
    ProfileRequest,
    ProfileStore,
    Response,
    StoredObject,
    Transport,
)

REDRAW_SECONDS = 0.5  # a terminal never goes silent for longer than this while a profile is fetched
PLAIN_EVERY = 10.0  # without a terminal, one progress line this often during a long profile
PLAIN_FROM = 3.0  # without a terminal, profiles expected to take less than this get no progress line
BAR_WIDTH = 24
CLEAR_LINE = "\r\033[K"
ALL = "*"  # `Console.line(about=ALL)`: the line closes a round; every held span line follows it


def is_terminal(stream: IO[str]) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # closed
        return False


# Executor log actions a Console reports itself, one line each (`Console.failures`).
REPORTED_ACTIONS = frozenset({"capture-failed", "store-failed"})


def not_reported(record: logging.LogRecord) -> bool:
    """A logging filter: False for a record the console says already (a failed capture or store),
    so a person sees each failure once, not also as a long log line on stderr."""
    return getattr(record, "action", None) not in REPORTED_ACTIONS


class Console:
    """Whole lines on one stream, from any thread, with at most one live status line below them.

    `line()` prints above the live line (which is cleared and redrawn, so the two never mix).
    Span lines (`span()`) are held until the line they belong to is out: a profile's spans follow
    the line that says it landed or failed (`line(..., about=TYPE)`), the others follow the next
    line that closes a round (`line(..., about=ALL)`: a check's recap, a capture's recap).
    """

    def __init__(self, stream: IO[str], *, terminal: bool | None = None):
        self.stream = stream
        self.terminal = is_terminal(stream) if terminal is None else terminal
        self._lock = threading.Lock()
        self._status: str | None = None
        self._held: list[tuple[str | None, str]] = []
        self._announced: set[str] = set()

    def line(self, text: str, *, about: str | Sequence[str] | None = None) -> None:
        """Prints `text`, then the held span lines of the profile type(s) `about` (every held span
        line with ALL)."""
        with self._lock:
            lines = [redact.text(text)]
            if about == ALL:
                lines += [held for _, held in self._held]
                self._held, self._announced = [], set()
            elif about is not None:
                kinds = {about} if isinstance(about, str) else set(about)
                self._announced |= kinds
                lines += [held for key, held in self._held if key in kinds]
                self._held = [(key, held) for key, held in self._held if key not in kinds]
            self._print(lines)

    def release(self) -> None:
        """Prints the held span lines: the round they belong to is over."""
        with self._lock:
            held, self._held, self._announced = [text for _, text in self._held], [], set()
            if held:
                self._print(held)

    def span(self, text: str, *, about: str | None = None) -> None:
        """A span's line, `about` a profile type or None; printed now if its line is already out."""
        with self._lock:
            if about is not None and about in self._announced:
                self._print([text])
            else:
                self._held.append((about, text))

    close = release

    def failures(self, profiles: Iterable[results.ProfileResult]) -> None:
        """One line per failure: the failed profiles of a round, those failing alike on one line
        (`  ! heap, cpu      FAILED  connection refused by 127.0.0.1:1`)."""
        alike: dict[str, list[str]] = {}
        for profile in profiles:
            if profile.status == results.FAILED:
                alike.setdefault(profile.error or "unknown error", []).append(profile.type)
        for error, kinds in alike.items():
            self.line(f"  ! {', '.join(kinds):<12} FAILED  {error}", about=kinds)

    def _print(self, lines: list[str]) -> None:
        if self._status is not None:
            self.stream.write(CLEAR_LINE)
        for text in lines:
            self.stream.write(text + "\n")
        if self._status is not None:
            self.stream.write(self._status)
        self.stream.flush()

    def _show(self, status: str | None) -> None:
        """The live line (a terminal only); None clears it."""
        with self._lock:
            self.stream.write(CLEAR_LINE + (status or ""))
            self.stream.flush()
            self._status = status

    @contextmanager
    def fetching(self, profile_type: str, expected: float | None) -> Iterator[None]:
        """A status line for one profile while the body runs: `expected` is how long it should take
        (a CPU profile's seconds), None when it should be quick."""
        started = time.monotonic()
        if not self.terminal and expected is not None and expected >= PLAIN_FROM:
            self.line(f"  … {profile_type:<12} capturing for {expected:g}s")
        stop = threading.Event()
        ticks = self._redraw if self.terminal else self._plain_ticks
        thread = threading.Thread(target=ticks, args=(profile_type, expected, started, stop), daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            if self.terminal:  # the live line goes before the next whole line is printed
                thread.join()
                self._show(None)

    def _redraw(self, profile_type: str, expected: float | None, started: float, stop: threading.Event) -> None:
        while True:
            self._show(status_text(profile_type, expected, time.monotonic() - started))
            if stop.wait(REDRAW_SECONDS):
                return

    def _plain_ticks(self, profile_type: str, expected: float | None, started: float, done: threading.Event) -> None:
        while not done.wait(PLAIN_EVERY):
            elapsed = time.monotonic() - started
            of = f" of {expected:g}s" if expected else ""
            self.line(f"  … {profile_type:<12} {elapsed:.0f}s{of}")


def status_text(profile_type: str, expected: float | None, elapsed: float) -> str:
    """`  … cpu          [##########..............] 12s of 30s, 18s left`; without `expected` (a
    profile that should be quick) no bar, only the time so far."""
    if not expected:
        return f"  … {profile_type:<12} fetching  {elapsed:.1f}s"
    done = min(1.0, elapsed / expected)
    filled = round(done * BAR_WIDTH)
    bar = "#" * filled + "." * (BAR_WIDTH - filled)
    left = expected - elapsed
    tail = f"{left:.0f}s left" if left > 0 else "receiving"
    return f"  … {profile_type:<12} [{bar}] {min(elapsed, expected):.0f}s of {expected:g}s, {tail}"


class Watching(ForwardingTransport):
    """A `Transport` that shows each profile's fetch on a `Console`; otherwise the transport it wraps."""

    def __init__(self, inner: Transport, console: Console):
        super().__init__(inner)
        self.console = console

    def open(self, request: ProfileRequest, timeout: float) -> AbstractContextManager[Response]:
        return self._open(request, timeout)

    @contextmanager
    def _open(self, request: ProfileRequest, timeout: float) -> Iterator[Response]:
        expected = float(request.cpu_seconds) if request.profile_type == "cpu" and request.cpu_seconds else None
        with self.console.fetching(request.profile_type, expected), self.inner.open(request, timeout) as response:
            yield response


class Landing(ForwardingStore):
    """A `ProfileStore` that announces each profile on a `Console` once its store has taken it:
    `  + heap        12,345 bytes  stored  /path/heap.pprof  (reason)`."""

    def __init__(self, inner: ProfileStore, console: Console):
        super().__init__(inner)
        self.console = console

    def put(
        self, key: str, data: bytes, *, metadata: Mapping[str, str], tags: Mapping[str, str], content_type: str
    ) -> StoredObject:
        stored = super().put(key, data, metadata=metadata, tags=tags, content_type=content_type)
        state = "spooled" if stored.spooled else "stored"
        kind = metadata.get("profile-type", "?")
        if kind in (summaries.SUMMARY, summaries.PAGE_KIND):
            # The capture's summary and page (execution.summaries): what was hot, in one line.
            if kind == summaries.SUMMARY:
                hot = "; ".join(f"{name[4:]}: {value}" for name, value in metadata.items() if name.startswith("top-"))
                self.console.line(f"  = summary and page {state}  {where(stored.uri)}  {hot}")
            return stored
        self.console.line(
            f"  + {kind:<12} {len(data):>10,} bytes  {state}  {where(stored.uri)}  ({metadata.get('reason', '?')})",
            about=kind,
        )
        return stored


def where(uri: str | None) -> str:
    """A file URI as a plain path (what `go tool pprof` takes); other URIs as they are."""
    if uri and uri.startswith("file://"):
        return unquote(urlsplit(uri).path)
    return uri or "-"


def tracer_provider(console: Console | None, env: Mapping[str, str], service_name: str) -> Any:
    """A provider with compact span lines on `console` (if given; synchronous, each after the line
    it belongs to) and whatever the OTEL_* environment asks for; None when neither (then nothing
    of the SDK is imported). ValueError for a tracing setting that cannot be honoured."""
    from kprof_lib.adapters import tracing

    exporters = tracing.make_exporters(env)
    if console is None and not exporters:
        return None
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter, SpanExportResult

    provider = TracerProvider(resource=tracing.build_resource(env, service_name))
    if console is not None:
        shown = console

        class ConsoleSpans(SpanExporter):
            """Each span's compact line, after the line it belongs to (its `profile.type`, if any)."""

            def export(self, spans: Any) -> SpanExportResult:
                for span in spans:
                    about = (span.attributes or {}).get(telemetry.ATTR_PROFILE_TYPE)
                    shown.span(tracing.compact_span(span).rstrip("\n"), about=str(about) if about else None)
                return SpanExportResult.SUCCESS

        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpans()))
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider

"""Plain-text views of summaries and diffs for the terminal (`kprof show`, `kprof diff`), and the
unit formatting the HTML page shares. Pure: values in, lines out."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kprof_lib.profiles.diff import stack_label


def quantity(value: float, unit: str) -> str:
    """`880ms`, `1.50s`, `27.8MiB`, `42` — a value in its sample type's unit, for people."""
    if unit == "nanoseconds":
        for scale, suffix in ((1e9, "s"), (1e6, "ms"), (1e3, "µs")):
            if abs(value) >= scale:
                return f"{value / scale:.2f}".rstrip("0").rstrip(".") + suffix
        return f"{value:g}ns"
    if unit == "bytes":
        for scale, suffix in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
            if abs(value) >= scale:
                return f"{value / scale:.1f}{suffix}"
        return f"{value:g}B"
    return f"{value:g}"


def percent(share: float) -> str:
    return f"{share * 100:.1f}%"


def show(summary: Mapping[str, Any], *, kind: str | None = None, sample_type: str | None = None, n: int = 20) -> str:
    """The top table of each profile type (or of `kind`) in the summary, pprof -top style."""
    lines = []
    capture = summary.get("capture", {})
    where = "/".join(str(capture[k]) for k in ("namespace", "pod") if capture.get(k))
    head = " ".join(x for x in (where, capture.get("reason", ""), capture.get("capturedAt", "")) if x)
    if head:
        lines.append(head)
    if capture.get("traceId"):
        lines.append(f"trace {capture['traceId']}" + (f"  {capture['traceUrl']}" if capture.get("traceUrl") else ""))
    for name in sorted(summary.get("profiles", {})):
        if kind and name != kind:
            continue
        part = summary["profiles"][name]
        types = part["sampleTypes"]
        chosen = sample_type if sample_type in types else part.get("defaultSampleType")
        if chosen not in types:
            lines.append(f"\n{name}: no samples")
            continue
        view = types[chosen]
        unit = view["unit"]
        duration = f", {part['durationSeconds']:g}s" if part.get("durationSeconds") else ""
        lines.append(f"\n{name} ({chosen}, total {quantity(view['total'], unit)}{duration}, {part['file']})")
        lines.append(f"{'flat':>10} {'flat%':>6} {'cum':>10} {'cum%':>6}  function")
        for row in view["topFlat"][:n]:
            lines.append(
                f"{quantity(row['flat'], unit):>10} {percent(row['flatShare']):>6} "
                f"{quantity(row['cum'], unit):>10} {percent(row['cumShare']):>6}  {row['name']}"
            )
    for name, error in sorted(summary.get("errors", {}).items()):
        if not kind or name == kind:
            lines.append(f"\n{name}: not readable: {error}")
    return "\n".join(lines).lstrip("\n")


def diff(result: Mapping[str, Any], *, n: int = 10) -> str:
    """What grew, per profile type, from base to incident."""
    lines = []
    for kind, part in result.get("types", {}).items():
        unit, measure = part["unit"], part["measure"]
        lines.append(
            f"{kind} ({part['sampleType']}): total {quantity(part['baseTotal'], unit)} -> "
            f"{quantity(part['incidentTotal'], unit)}"
        )
        if not part["growth"]:
            lines.append("  nothing grew")
        for row in part["growth"][:n]:
            if measure == "flatShare":
                values = f"{percent(row['base'])} -> {percent(row['incident'])} (+{row['delta'] * 100:.1f} pts)"
            else:
                values = (
                    f"{quantity(row['base'], unit)} -> {quantity(row['incident'], unit)} "
                    f"(+{quantity(row['delta'], unit)})"
                )
            label = stack_label(row["stack"]) if "stack" in row else row["name"]
            lines.append(f"  {values:<40} {label}")
        lines.append("")
    if result.get("missing"):
        lines.append("only in one capture: " + ", ".join(result["missing"]))
    return "\n".join(lines).rstrip("\n")

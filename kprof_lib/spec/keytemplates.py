"""The rules for `spec.s3Config.keyTemplate`, in one place for both of their users: spec validation
(so a template no key can be built from is refused when the config is read, before any pod is
profiled) and `execution.keys.object_key` (which builds the keys). Pure.

A template is Python format text over `FIELDS`, with no format spec or conversion, and must
contain {namespace}, {pod}, {timestamp} and {type} (unique per pod and capture), with {namespace}
and {pod} each in a path segment apart from the other free-text fields. Its literal text
(the template with every field at its longest shortened form) must fit S3's key limit and the
local store's segment limit, or no key could ever be built.
"""

from __future__ import annotations

import string
import unicodedata

FIELDS = ("prefix", "namespace", "pod", "service", "date", "timestamp", "type", "reason")
# Every key names its pod and capture: without them replicas of one service, or pods of another
# namespace with the same labels, would write under each other's keys.
REQUIRED = ("namespace", "pod", "timestamp", "type")
# Values of any text: two of them in one segment can trade characters across their joint
# ("a-b" + "c" and "a" + "b-c"), so {namespace} and {pod} each keep a segment apart from these.
FREE_TEXT = ("prefix", "namespace", "pod", "service")

MAX_KEY_BYTES = 1024  # S3's limit for a whole key
MAX_SEGMENT_CHARS = 255  # a key segment becomes a file or directory name in the local store
MAX_PREFIX_CHARS = 512  # as spec.s3Config.prefix allows
# object_key shortens values step by step down to this many characters before it gives up.
SHORTEST_COMPONENT_CHARS = 24
# Fields whose values have a fixed length: 2026-11-25 and 20261125T100000.123Z.
FIXED_CHARS = {"date": 10, "timestamp": 20}


def fields(template: str) -> set[str]:
    """The fields `template` uses; `ValueError` for a malformed template, an unknown field, a
    field with a format spec or conversion, or a required field missing."""
    found: set[str] = set()
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as error:
        raise ValueError(f"key template {template!r} is malformed: {error}") from None
    for _, field, spec, conversion in parsed:
        if field is None:
            continue
        if field not in FIELDS:
            known = " ".join("{" + name + "}" for name in FIELDS)
            shown = "{" + field + "}" if field else "{}"
            raise ValueError(f"key template field {shown} is unknown; known fields: {known}")
        if spec or conversion:
            raise ValueError(f"key template field {{{field}}} takes no format spec or conversion")
        found.add(field)
    missing = [name for name in REQUIRED if name not in found]
    if missing:
        shown = ", ".join("{" + name + "}" for name in missing)
        raise ValueError(f"key template {template!r} must contain {shown}, or profiles could overwrite each other")
    return found


def fits(key: str) -> bool:
    """Whether a key is within S3's limit and each of its segments within the local store's."""
    segments_fit = all(len(segment) <= MAX_SEGMENT_CHARS for segment in key.split("/"))
    return segments_fit and len(key.encode("ascii", "replace")) <= MAX_KEY_BYTES


def too_long(template: str) -> ValueError:
    return ValueError(
        f"key template {template!r} yields keys longer than {MAX_KEY_BYTES} bytes "
        f"or segments longer than {MAX_SEGMENT_CHARS} characters"
    )


def check(template: str, prefix: str = "") -> None:
    """`ValueError` saying why no key can be built from `template` with `prefix`, if that is so:
    the rules of `fields`, the required fields, and the size limits at the shortest values
    object_key tries (if those fit, every key fits)."""
    fields(template)
    for segment in template.split("/"):
        free = [name for name in FREE_TEXT if "{" + name + "}" in segment]
        if len(free) > 1 and ("namespace" in free or "pod" in free):
            shown = " and ".join("{" + name + "}" for name in free)
            raise ValueError(
                f"key template {template!r} puts {shown} in one path segment: keep {{namespace}} and {{pod}} "
                "each in a segment apart from {prefix}, {service} and each other, or two pods could share a key"
            )
    longest = {name: "x" * FIXED_CHARS.get(name, SHORTEST_COMPONENT_CHARS) for name in FIELDS}
    # As object_key shortens a prefix: each segment to the same length, 512 characters in all.
    longest["prefix"] = "/".join(segment[:SHORTEST_COMPONENT_CHARS] for segment in prefix.split("/") if segment)[
        :MAX_PREFIX_CHARS
    ]
    # Literal text is cleaned as object_key cleans it, character for character once accents are
    # dropped (NFKD may lengthen it).
    decomposed = unicodedata.normalize("NFKD", template.format_map(longest))
    rendered = "".join(char for char in decomposed if not unicodedata.combining(char))
    if not fits("/".join(segment for segment in rendered.split("/") if segment)):
        raise too_long(template)

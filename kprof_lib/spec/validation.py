"""Validates a ProfilingConfig (its `.spec`, or a whole document) against the schema, defaults applied.

Every problem is reported at once, each with the path of the field it concerns
(`spec.thresholds.cooldownSeconds: 10 is less than the minimum of 60`), so a user fixes a config
in one round. Callers: `planning.reconcile` (the spec), `kprof validate` (whole documents).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from typing import Any

import jsonschema

from kprof_lib.spec import defaults, keytemplates, schemas
from kprof_lib.spec.errors import Problem, SpecError
from kprof_lib.spec.model import Spec
from kprof_lib.spec.schemas import API_VERSION, KIND

KEY_TEMPLATE_PATH = "spec.s3Config.keyTemplate"


@functools.cache
def _spec_validator() -> jsonschema.protocols.Validator:
    schema = schemas.spec_schema()
    cls = jsonschema.validators.validator_for(schemas.load("profilingconfig"))
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def validate_spec(spec: Any) -> Spec:
    """The spec with defaults applied, as a `Spec` value; `SpecError` listing every problem if it is
    invalid. A `Spec` is returned as it is: it was validated when it was made."""
    if isinstance(spec, Spec):
        return spec
    if not isinstance(spec, dict):
        raise SpecError([{"path": "spec", "message": f"must be an object, not {_type_name(spec)}"}])
    shape = _shape_problems(spec, "spec")
    if shape:
        raise SpecError(shape)
    filled = defaults.apply(schemas.spec_schema(), spec)
    problems = format_errors(_spec_validator().iter_errors(filled), root="spec")
    if not any(problem["path"] == KEY_TEMPLATE_PATH for problem in problems):
        problems = [*problems, *_key_template_problems(filled)]
    problems = sorted([*problems, *_window_problems(filled, problems)], key=lambda problem: problem["path"])
    if problems:
        raise SpecError(problems)
    return Spec(filled)


# Deeper than any field of the schema goes (selector.labelSelector.matchExpressions[].values[] is 6).
MAX_DEPTH = 32
# Far beyond every bound of the schema; a bigger integer could not even be printed (Python refuses
# to turn more than 4300 digits into text).
MAX_INTEGER = 2**63
SHOWN_VALUE_CHARS = 80


def _shape_problems(value: Any, root: str) -> list[Problem]:
    """What must be refused before the schema sees the spec, because checking it would fail
    rather than report: nesting deeper than `MAX_DEPTH` (RecursionError), integers beyond
    `MAX_INTEGER` (ValueError printing them), NaN and infinities (NaN passes every bound).
    Walked without recursion."""
    problems: list[Problem] = []
    stack: list[tuple[Any, str, int]] = [(value, root, 0)]
    while stack:
        node, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            problems.append({"path": path, "message": f"is nested deeper than {MAX_DEPTH} levels"})
            continue
        if isinstance(node, dict):
            stack.extend((child, f"{path}.{_shown_key(key)}", depth + 1) for key, child in node.items())
        elif isinstance(node, list):
            stack.extend((child, f"{path}[{index}]", depth + 1) for index, child in enumerate(node))
        elif isinstance(node, bool):
            continue
        elif isinstance(node, int) and abs(node) >= MAX_INTEGER:
            problems.append({"path": path, "message": f"is too large ({node.bit_length()} bits)"})
        elif isinstance(node, float) and not math.isfinite(node):
            problems.append({"path": path, "message": f"must be a finite number, not {node}"})
    return sorted(problems, key=lambda problem: problem["path"])


def _shown_key(key: Any) -> str:
    text = str(key)
    return text if len(text) <= SHOWN_VALUE_CHARS else text[:SHOWN_VALUE_CHARS] + "..."


def _shorten_echoes(message: str, instance: Any) -> str:
    """jsonschema quotes the offending value whole (`'xxxx...' is too long`); cut it to a sane length."""
    if isinstance(instance, str | list | dict):
        shown = repr(instance)
        if len(shown) > SHOWN_VALUE_CHARS and shown in message:
            return message.replace(shown, f"{shown[:SHOWN_VALUE_CHARS]}... ({len(instance)} long)")
    return message


def _key_template_problems(spec: dict[str, Any]) -> list[Problem]:
    """What the schema cannot say about a keyTemplate: whether object_key could build keys from it.
    Found here, a bad template stops the config before any pod is profiled, not after."""
    s3 = spec.get("s3Config")
    if not isinstance(s3, dict) or not isinstance(s3.get("keyTemplate"), str):
        return []
    prefix = s3.get("prefix")
    prefix = prefix if isinstance(prefix, str) else ""
    try:
        keytemplates.check(s3["keyTemplate"], prefix)
    except ValueError as error:
        return [{"path": KEY_TEMPLATE_PATH, "message": str(error)}]
    return []


def _window_problems(spec: dict[str, Any], found: list[Problem]) -> list[Problem]:
    """What the schema cannot say about spec.triggers: no trigger may need more samples than the
    window holds (it would never decide). Only for values the schema accepted."""
    triggers = spec.get("triggers")
    if not isinstance(triggers, dict) or type(triggers.get("windowSamples")) is not int:
        return []
    window = triggers["windowSamples"]
    problems: list[Problem] = []
    for name in ("spike", "oom", "goroutines"):
        path = f"spec.triggers.{name}.minSamples"
        needed = triggers.get(name, {}).get("minSamples") if isinstance(triggers.get(name), dict) else None
        if type(needed) is int and needed > window and all(p["path"] != path for p in found):
            problems.append({"path": path, "message": f"{needed} is more than spec.triggers.windowSamples ({window})"})
    return problems


def validate_document(document: Any) -> dict[str, Any]:
    """A whole ProfilingConfig (apiVersion, kind, metadata, spec) with the spec's defaults applied."""
    if not isinstance(document, dict):
        raise SpecError([{"path": "(document)", "message": f"must be an object, not {_type_name(document)}"}])
    problems: list[Problem] = []
    if document.get("apiVersion") != API_VERSION:
        problems.append(
            {"path": "apiVersion", "message": f"must be {API_VERSION!r}, not {document.get('apiVersion')!r}"}
        )
    if document.get("kind") != KIND:
        problems.append({"path": "kind", "message": f"must be {KIND!r}, not {document.get('kind')!r}"})
    metadata = document.get("metadata")
    if not isinstance(metadata, dict) or not isinstance(metadata.get("name"), str) or not metadata["name"]:
        problems.append({"path": "metadata.name", "message": "is required"})
    filled = dict(document)
    if "spec" not in document:
        problems.append({"path": "spec", "message": "is required"})
    else:
        try:
            filled["spec"] = validate_spec(document["spec"]).data
        except SpecError as error:
            problems.extend(error.errors)
    if problems:
        raise SpecError(problems)
    return filled


def format_errors(errors: Iterable[jsonschema.ValidationError], root: str) -> list[Problem]:
    """jsonschema's errors as `{path, message}`, sorted by path, the path pointing at the field itself."""
    problems: dict[str, str] = {}
    for error in errors:
        path = list(error.absolute_path)
        custom = _custom_message(error)
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            allowed = sorted(error.schema.get("properties", {}))
            for extra in sorted(set(error.instance) - set(allowed)):
                problems[_join(root, [*path, extra])] = f"unknown field (allowed: {', '.join(allowed)})"
            continue
        if error.validator == "required" and isinstance(error.validator_value, list):
            missing = [key for key in error.validator_value if key not in error.instance]
            for key in missing:
                problems.setdefault(_join(root, [*path, key]), custom or "is required")
            continue
        problems.setdefault(_join(root, path), custom or _shorten_echoes(error.message, error.instance))
    return [{"path": path, "message": message} for path, message in sorted(problems.items())]


def _custom_message(error: jsonschema.ValidationError) -> str | None:
    """The `x-kprof-message` of the deepest subschema on the error's schema path, if any: for rules
    such as if/then whose generic message would not tell the user what to change."""
    schema: Any = schemas.spec_schema()
    found = None
    for step in error.absolute_schema_path:
        if isinstance(schema, dict):
            schema = schema.get(step)
        elif isinstance(schema, list) and isinstance(step, int) and step < len(schema):
            schema = schema[step]
        else:
            break
        if isinstance(schema, dict) and "x-kprof-message" in schema:
            found = schema["x-kprof-message"]
    return found


def _join(root: str, path: list[Any]) -> str:
    out = root
    for step in path:
        out += f"[{step}]" if isinstance(step, int) else f".{step}"
    return out


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__

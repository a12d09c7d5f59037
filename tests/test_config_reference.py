"""docs/CONFIGURATION.md is generated from the schema and the annotation constants: the committed
file must be exactly what the generator writes (run scripts/gen-config-doc after a schema change),
and the generator must cover every field, default and limit there is."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from kprof_lib.runtimes import reference
from kprof_lib.spec import schemas
from kprof_lib.state import optin

DOC = Path(__file__).resolve().parent.parent / "docs" / "CONFIGURATION.md"


def test_the_committed_reference_is_the_generated_one():
    assert DOC.read_text(encoding="utf-8") == reference.render(), (
        "docs/CONFIGURATION.md is stale: run scripts/gen-config-doc"
    )


def spec_paths(node: dict, path: str = "spec"):
    for name, field in node.get("properties", {}).items():
        yield f"{path}.{name}", field
        if field.get("type") == "object":
            yield from spec_paths(field, f"{path}.{name}")
        elif field.get("type") == "array" and isinstance(field.get("items"), dict):
            yield from spec_paths(field["items"], f"{path}.{name}[]")


def section(text: str, path: str) -> str:
    start = text.index(f"### `{path}`\n")
    end = text.find("\n### ", start + 1)
    return text[start : end if end != -1 else None]


def test_every_field_is_there_with_its_default_and_limits():
    text = reference.render()
    for path, field in spec_paths(schemas.spec_schema()):
        body = section(text, path)
        if "default" in field:
            assert f"| default | `{json.dumps(field['default'])}` |" in body, path
        if "minimum" in field:
            assert f"| range | {field['minimum']} to {field['maximum']} |" in body, path
        for value in field.get("enum", []):
            assert f"`{value}`" in body, path
        if "description" in field:
            assert field["description"] in body, path
    for key in (optin.ENABLED, optin.PORT, optin.PATH, optin.SCHEME):
        assert f"| `{key}` |" in text
    assert f"`{optin.DEFAULT_PORT}`" in text and f"`{optin.DEFAULT_PATH}`" in text


def test_a_schema_change_shows_in_the_reference():
    schema = copy.deepcopy(schemas.load("profilingconfig"))
    cooldown = schema["properties"]["spec"]["properties"]["thresholds"]["properties"]["cooldownSeconds"]
    cooldown["minimum"], cooldown["default"] = 120, 900
    schema["properties"]["spec"]["properties"]["thresholds"]["properties"]["burstPercent"] = {
        "type": "number",
        "minimum": 1,
        "maximum": 500,
        "description": "A new knob.",
    }
    text = reference.render(schema)
    assert "| range | 120 to 604800 |" in section(text, "spec.thresholds.cooldownSeconds")
    assert "cooldownSeconds: 900" in text
    assert "A new knob." in section(text, "spec.thresholds.burstPercent")
    assert text != reference.render()

"""Applies the `default`s written in a JSON Schema to a document, the way the API server does for a CRD.

jsonschema validates but never fills in defaults; restating them in code would make a second
source of truth. This walks the schema beside the document instead: a missing property that has
a default gets a copy of it; an object that is present is walked into; an absent object without a
default of its own stays absent (so "no thresholds" keeps meaning "no threshold captures").
"""

from __future__ import annotations

import copy
from typing import Any


def apply(schema: dict[str, Any], document: Any) -> Any:
    """A copy of `document` with the schema's defaults filled in. The input is never changed."""
    if not isinstance(document, dict):
        return copy.deepcopy(document)
    properties = schema.get("properties", {})
    result = {}
    for key, value in document.items():
        sub = properties.get(key)
        result[key] = apply(sub, value) if sub is not None else copy.deepcopy(value)
    for key, sub in properties.items():
        if key not in result and "default" in sub:
            result[key] = apply(sub, copy.deepcopy(sub["default"]))
    return result

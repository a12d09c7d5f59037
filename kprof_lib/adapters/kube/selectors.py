"""Renders a LabelSelector (a ProfilingConfig's `spec.selector.labelSelector`: matchLabels and
matchExpressions) as the string the API server takes in `?labelSelector=`, so that metrics and
watches are filtered by the server instead of in the operator. The requirements come out sorted by
key and each value set sorted, as kube-apiserver's own selector printer does, so the same selector
always renders the same string. The syntax has no quoting, so keys and values that cannot be
written in it are refused with `ValueError` rather than sent garbled.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# Label keys: an optional DNS-subdomain prefix and a name; values: the label value syntax.
_KEY = re.compile(
    r"^(?:[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
_VALUE = re.compile(r"^(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")

_SET_OPERATORS = {"In": "in", "NotIn": "notin"}


def to_selector_string(label_selector: Mapping[str, Any] | None) -> str:
    """`{"matchLabels": {"a": "b"}, "matchExpressions": [...]}` as `a=b,!canary,tier in (api,web)`.

    None or an empty selector renders as "" (every object). `ValueError` names the first term
    that cannot be expressed: an unknown operator, In/NotIn without values, Exists/DoesNotExist
    with values, or a key or value outside the label syntax.
    """
    if not label_selector:
        return ""
    terms: list[tuple[str, int, str]] = []
    for key, value in (label_selector.get("matchLabels") or {}).items():
        _check_key(key)
        _check_value(key, value)
        terms.append((key, 0, f"{key}={value}"))
    for index, expression in enumerate(label_selector.get("matchExpressions") or ()):
        key, operator = expression.get("key"), expression.get("operator")
        values = list(expression.get("values") or ())
        _check_key(key)
        if operator in _SET_OPERATORS:
            if not values:
                raise ValueError(f"matchExpressions[{index}] ({key} {operator}): needs at least one value")
            for value in values:
                _check_value(key, value)
            rendered = f"{key} {_SET_OPERATORS[operator]} ({','.join(sorted(set(values)))})"
        elif operator in ("Exists", "DoesNotExist"):
            if values:
                raise ValueError(f"matchExpressions[{index}] ({key} {operator}): takes no values")
            rendered = key if operator == "Exists" else f"!{key}"
        else:
            raise ValueError(
                f"matchExpressions[{index}]: unknown operator {operator!r} (In, NotIn, Exists, DoesNotExist)"
            )
        terms.append((key, 1 + index, rendered))
    # Sorted by key; within one key, matchLabels first and expressions in their written order.
    return ",".join(rendered for _, _, rendered in sorted(terms))


def _check_key(key: Any) -> None:
    if not isinstance(key, str) or not _KEY.match(key) or len(key.rsplit("/", 1)[-1]) > 63:
        raise ValueError(f"label key {key!r} is not a valid label key")


def _check_value(key: str, value: Any) -> None:
    if not isinstance(value, str) or len(value) > 63 or not _VALUE.match(value):
        raise ValueError(f"label {key}: value {value!r} is not a valid label value")

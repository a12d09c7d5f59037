"""Pod selection by namespace and by a standard Kubernetes label selector.

A selector is compiled once per reconcile into a predicate over a pod's labels, so testing 10,000
pods costs a few dictionary look-ups each.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

LabelPredicate = Callable[[Mapping[str, str]], bool]


def compile_label_selector(selector: Mapping[str, Any] | None) -> LabelPredicate:
    """A predicate that is true for labels matching every term of `selector` (None or empty: all)."""
    if not selector:
        return lambda labels: True
    match_labels = tuple((selector.get("matchLabels") or {}).items())
    expressions = tuple(
        (e["key"], e["operator"], frozenset(e.get("values") or ())) for e in selector.get("matchExpressions") or ()
    )

    def matches(labels: Mapping[str, str]) -> bool:
        for key, value in match_labels:
            if labels.get(key) != value:
                return False
        for key, operator, values in expressions:
            present = key in labels
            if operator == "In":
                if not present or labels[key] not in values:
                    return False
            elif operator == "NotIn":
                # As in Kubernetes: a pod without the label satisfies NotIn.
                if present and labels[key] in values:
                    return False
            elif operator == "Exists":
                if not present:
                    return False
            elif present:  # DoesNotExist
                return False
        return True

    return matches


def namespace_matches(wanted: str | None, namespace: str) -> bool:
    """True when no namespace is wanted (every namespace) or it is the pod's."""
    return wanted is None or wanted == namespace

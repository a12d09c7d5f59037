"""Label and field selectors in the string form kube-apiserver accepts on list and watch requests
(`labelSelector=app=web,tier in (a,b),!canary`, `fieldSelector=status.phase!=Failed`). Parsing turns
them into predicates over object dicts; a malformed selector is a 400 BadRequest as in kube. Used by
the store for lists, watches and deletecollection."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from .status import bad_request

Predicate = Callable[[dict[str, Any]], bool]

_TOKEN = re.compile(r"\s*(?:(==|!=|=|\(|\)|,|!|>|<)|([^\s=!(),<>]+))")
_LABEL_KEY = re.compile(
    r"^(?:[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)


def _tokenize(text: str) -> list[str]:
    tokens: list[str] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise bad_request(f"unable to parse requirement: found '{text[pos:]}', expected: identifier")
        tokens.append(match.group(1) or match.group(2))
        pos = match.end()
    return tokens


def _labels_of(obj: dict[str, Any]) -> dict[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


def _requirement(key: str, op: str, values: list[str]) -> Callable[[dict[str, str]], bool]:
    if not _LABEL_KEY.match(key) or len(key.rsplit("/", 1)[-1]) > 63:
        raise bad_request(f"unable to parse requirement: invalid label key {key!r}")
    if op == "exists":
        return lambda labels: key in labels
    if op == "!":
        return lambda labels: key not in labels
    if op == "=":
        value = values[0]
        return lambda labels: labels.get(key) == value
    if op == "!=":
        value = values[0]
        return lambda labels: labels.get(key) != value
    if op == "in":
        allowed = frozenset(values)
        return lambda labels: key in labels and labels[key] in allowed
    if op == "notin":
        refused = frozenset(values)
        return lambda labels: labels.get(key) not in refused
    bound = int(values[0])
    if op == ">":
        return lambda labels: _int_or_none(labels.get(key)) is not None and _int_or_none(labels.get(key)) > bound
    return lambda labels: _int_or_none(labels.get(key)) is not None and _int_or_none(labels.get(key)) < bound


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def parse_label_selector(text: str | None) -> Predicate | None:
    """A predicate over objects for `text`, or None when the selector selects everything."""
    if not text or not text.strip():
        return None
    tokens = _tokenize(text)
    requirements: list[Callable[[dict[str, str]], bool]] = []
    i = 0

    def take() -> str | None:
        nonlocal i
        token = tokens[i] if i < len(tokens) else None
        i += 1
        return token

    def peek() -> str | None:
        return tokens[i] if i < len(tokens) else None

    def value_word() -> str:
        # An empty value (`key=` or `key=,other`) is legal: it matches the empty label value.
        token = peek()
        if token is None or token in {",", ")"}:
            return ""
        if token in {"(", "=", "==", "!=", "!", ">", "<"}:
            raise bad_request(f"unable to parse requirement: found '{token}', expected: identifier")
        return take() or ""

    while i < len(tokens):
        token = take()
        if token == "!":
            key = take()
            if key is None or not _is_word(key):
                raise bad_request("unable to parse requirement: expected a label key after '!'")
            requirements.append(_requirement(key, "!", []))
        elif token is not None and _is_word(token):
            key = token
            op = peek()
            if op is None or op == ",":
                requirements.append(_requirement(key, "exists", []))
            elif op in {"=", "=="}:
                take()
                requirements.append(_requirement(key, "=", [value_word()]))
            elif op == "!=":
                take()
                requirements.append(_requirement(key, "!=", [value_word()]))
            elif op in {"in", "notin"}:
                take()
                if take() != "(":
                    raise bad_request(f"unable to parse requirement: expected '(' after {op!r}")
                values: list[str] = []
                while True:
                    values.append(value_word())
                    closing = take()
                    if closing == ")":
                        break
                    if closing != ",":
                        raise bad_request("unable to parse requirement: expected ',' or ')' in value set")
                requirements.append(_requirement(key, op, values))
            elif op in {">", "<"}:
                take()
                bound = value_word()
                if not re.fullmatch(r"-?\d+", bound):
                    raise bad_request(f"unable to parse requirement: for {op!r}, value must be an integer")
                requirements.append(_requirement(key, op, [bound]))
            else:
                raise bad_request(f"unable to parse requirement: found '{op}', expected an operator")
        else:
            raise bad_request(f"unable to parse requirement: found '{token}', expected: identifier")
        separator = take()
        if separator not in {None, ","}:
            raise bad_request(f"unable to parse requirement: found '{separator}', expected: ','")

    def matches(obj: dict[str, Any]) -> bool:
        labels = _labels_of(obj)
        return all(requirement(labels) for requirement in requirements)

    return matches


def _is_word(token: str) -> bool:
    return token not in {"==", "!=", "=", "(", ")", ",", "!", ">", "<"}


def _split_unescaped(text: str, separator: str) -> list[str]:
    parts, current, escaped = [], [], False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def field_value(obj: dict[str, Any], path: tuple[str, ...]) -> str:
    """The string a field selector compares against: missing fields read as ""."""
    node: Any = obj
    for part in path:
        if not isinstance(node, dict):
            return ""
        node = node.get(part)
    if node is None:
        return ""
    if isinstance(node, bool):
        return "true" if node else "false"
    return str(node)


def parse_field_selector(text: str | None, supported: Iterable[str], aliases: dict[str, str]) -> Predicate | None:
    """A predicate for a field selector; `supported` lists the field labels the kind accepts and
    `aliases` maps a label to the object path it reads (kube's `source` on events is source.component)."""
    if not text or not text.strip():
        return None
    allowed = set(supported)
    terms: list[tuple[tuple[str, ...], bool, str]] = []
    for raw in _split_unescaped(text, ","):
        term = raw.strip()
        if not term:
            continue
        match = re.match(r"^([^=!]+?)\s*(==|!=|=)\s*(.*)$", term)
        if not match:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{term}'")
        label, op, value = match.group(1).strip(), match.group(2), match.group(3)
        if label not in allowed:
            raise bad_request(f"field label not supported: {label}")
        path = tuple(aliases.get(label, label).split("."))
        terms.append((path, op == "!=", value))

    def matches(obj: dict[str, Any]) -> bool:
        return all((field_value(obj, path) == value) != negate for path, negate, value in terms)

    return matches


def combine(*predicates: Predicate | None) -> Predicate | None:
    active = [p for p in predicates if p is not None]
    if not active:
        return None
    if len(active) == 1:
        return active[0]
    return lambda obj: all(p(obj) for p in active)

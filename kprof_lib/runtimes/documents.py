"""Reads YAML or JSON files of one or more documents, for the commands that take files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml


class DocumentError(ValueError):
    """A file that cannot be read or parsed; the message names the file."""


def load_all(path: str | Path) -> list[Any]:
    """Every document in the file (YAML multi-document or JSON), empty documents left out."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise DocumentError(f"{path}: cannot read: {error.strerror or error}") from None
    try:
        if Path(path).suffix == ".json":
            return [json.loads(text)]
        return [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except (yaml.YAMLError, ValueError, RecursionError) as error:
        # ValueError: also an integer of more than 4300 digits (Python will not convert it), a
        # file that is not UTF-8; RecursionError: nesting thousands of levels deep.
        reason = "nested too deeply" if isinstance(error, RecursionError) else str(error)[:300]
        kind = "JSON" if Path(path).suffix == ".json" else "YAML"
        raise DocumentError(f"{path}: not valid {kind}: {reason}") from None


def load_one(path: str | Path) -> Any:
    documents = load_all(path)
    if len(documents) != 1:
        raise DocumentError(f"{path}: expected one document, found {len(documents)}")
    return documents[0]

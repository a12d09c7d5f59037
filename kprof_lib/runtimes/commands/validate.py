"""Validate ProfilingConfig documents (YAML or JSON, several per file). Exit 0 when all are valid, 1 otherwise;
each problem names the file, the document and the field."""

from __future__ import annotations

import argparse
import sys

from kprof_lib.runtimes import documents
from kprof_lib.spec.errors import SpecError
from kprof_lib.spec.validation import validate_document


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE", help="YAML or JSON files")


def run(args: argparse.Namespace) -> int:
    failed = 0
    total = 0
    for path in args.files:
        try:
            docs = documents.load_all(path)
        except documents.DocumentError as error:
            print(error, file=sys.stderr)
            failed += 1
            continue
        if not docs:
            print(f"{path}: no documents", file=sys.stderr)
            failed += 1
        for index, doc in enumerate(docs):
            total += 1
            name = (
                doc.get("metadata", {}).get("name")
                if isinstance(doc, dict) and isinstance(doc.get("metadata"), dict)
                else None
            )
            where = f"{path} document {index + 1}" + (f" ({name})" if name else "")
            try:
                validate_document(doc)
            except SpecError as error:
                failed += 1
                for problem in error.errors:
                    print(f"{where}: {problem['path']}: {problem['message']}", file=sys.stderr)
                continue
            print(f"{where}: valid")
    if failed:
        print(f"{failed} of {total} document(s) invalid" if total else "no valid documents", file=sys.stderr)
    return 1 if failed else 0

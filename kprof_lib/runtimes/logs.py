"""Log output of the operator: one line per decision and action, JSON by default (`--log-format
json`) so a log pipeline can filter on config, pod, action and reason, or `key=value` text for a
person at a terminal. `configure()` installs the chosen formatter on the root logger; every kprof
module keeps logging through the standard `logging` module with its fields in `extra`.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from typing import IO, Any

from kprof_lib.execution import keys, redact

FORMATS = ("json", "text")
LEVELS = ("debug", "info", "warning", "error")

# The fields that lead every line, in this order; other `extra` fields follow them.
DECISION_FIELDS = ("config", "pod", "action", "reason")

# Attributes every LogRecord has: whatever else a record carries came from `extra`.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}

# Libraries that log at INFO about every request; their warnings still come through.
_CHATTY_LOGGERS = ("urllib3", "kubernetes", "apscheduler", "botocore", "boto3", "s3transfer")


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    """The `extra` fields of a record, decision fields first, None values left out."""
    extra = {key: value for key, value in vars(record).items() if key not in _RECORD_ATTRIBUTES}
    ordered = {key: extra.pop(key) for key in DECISION_FIELDS if key in extra}
    ordered.update(sorted(extra.items()))
    return {key: value for key, value in ordered.items() if value is not None}


def _timestamp(record: logging.LogRecord) -> str:
    return keys.format_rfc3339(dt.datetime.fromtimestamp(record.created, dt.UTC))


class JsonFormatter(logging.Formatter):
    """`{"ts", "level", "logger", "msg", "config", "pod", "action", "reason", ...}` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in fields_of(record).items():
            # An extra field named like a base field must not hide it.
            line[key if key not in line else f"extra.{key}"] = value
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return redact.text(json.dumps(line, default=str, ensure_ascii=False))


class TextFormatter(logging.Formatter):
    """`2026-01-02T03:04:05.678Z info  kprof.check  msg  config=ns/name pod=ns/pod ...`."""

    def format(self, record: logging.LogRecord) -> str:
        pairs = " ".join(f"{key}={_text_value(value)}" for key, value in fields_of(record).items())
        line = f"{_timestamp(record)} {record.levelname.lower():<7} {record.name:<24} {record.getMessage()}"
        if pairs:
            line += "  " + pairs
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return redact.text(line)


def _text_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return json.dumps(text) if (" " in text or not text) else text


def configure(level: str = "info", log_format: str = "json", stream: IO[str] | None = None) -> logging.Handler:
    """Send every log record at `level` or above to `stream` (stderr) in `log_format`; replaces the
    root logger's handlers so each record is written once."""
    if level not in LEVELS:
        raise ValueError(f"log level {level!r}: expected one of {', '.join(LEVELS)}")
    if log_format not in FORMATS:
        raise ValueError(f"log format {log_format!r}: expected one of {', '.join(FORMATS)}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Even at debug: the kubernetes client would log whole response bodies (10,000 pods at a time).
    for name in _CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    return handler

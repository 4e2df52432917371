"""Log lines that join up: in JSON mode every line of the operator and the runner names what it is about
(namespace, execution or schedule, uid, pod; trace and span ids once tracing is on), so one query finds an
execution's lines across the operator's replicas and its runner pods.

`about(...)` sets the fields for a block (a reconcile of one key; contextvars, so a pool thread handed the
context keeps them), `set_process_fields(...)` for a whole process (a runner is about one execution);
`FieldsFilter` on a handler puts them on every record; `JsonLines` is the runner's JSON format (the operator
uses kopf's, which prints a record's extra attributes as fields too)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

FIELDS = ("namespace", "execution", "schedule", "uid", "pod", "trace_id", "span_id")
_block: ContextVar[dict[str, str]] = ContextVar("flux_log_fields", default={})
_process: dict[str, str] = {}


@contextmanager
def about(**fields: str | None) -> Iterator[None]:
    token = _block.set({**_block.get(), **{k: v for k, v in fields.items() if v}})
    try:
        yield
    finally:
        _block.reset(token)


def set_process_fields(**fields: str | None) -> None:
    """Replaces the process's fields (none: clears them)."""
    _process.clear()
    _process.update({k: v for k, v in fields.items() if v})


def current() -> dict[str, str]:
    return {**_process, **_block.get()}


class FieldsFilter(logging.Filter):
    """Adds the current fields to each record that does not carry them already; drops nothing."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in current().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class JsonLines(logging.Formatter):
    """One JSON object a line: time (UTC), severity, logger, message, the fields, and a traceback if any."""

    def format(self, record: logging.LogRecord) -> str:
        line = {"time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
                "severity": record.levelname.lower(), "logger": record.name, "message": record.getMessage()}
        line.update({k: getattr(record, k) for k in FIELDS if isinstance(getattr(record, k, None), str)})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


PLAIN_KEYS = {"time", "severity", "logger", "message"}


def plain(line: str) -> str | None:
    """A JsonLines line as the text format shows it (`time SEVERITY logger: message`); None for any other line."""
    if not line.startswith("{"):
        return None
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict) or not PLAIN_KEYS <= record.keys() or \
            not all(isinstance(record[k], str) for k in PLAIN_KEYS):
        return None
    text = f"{record['time']} {record['severity'].upper()} {record['logger']}: {record['message']}"
    return text + ("\n" + record["exception"] if isinstance(record.get("exception"), str) else "")

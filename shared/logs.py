"""How every lifenet process logs: plain text lines, or JSON lines (``--log-format``).

A JSON line is one object::

    {"time": "2026-11-30T02:52:44.020Z", "level": "info", "logger": "lifenet.server",
     "event": "lifenet server ready: ...", "pid": 4203, "generation": 12, "worker": 3}

``time`` is UTC (ISO 8601, milliseconds), ``event`` the message with its arguments,
and the context fields (``FIELDS``) come from a call's ``extra=`` when it gives them.
Nothing else of a record is copied, and a field whose name says it holds a secret is
never written: a token or a key does not reach a log by way of a field. ``exc`` holds
a traceback, when there is one.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

FIELDS = ("generation", "worker", "player", "batch", "round", "peer")
FORMATS = ("text", "json")
TEXT = "%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"


class JsonFormatter(logging.Formatter):
    """A record as one line of JSON (see the module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
                    + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
            "pid": record.process,
        }
        for name in FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                line[name] = value if isinstance(value, int | float | str) else str(value)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def configure(level: str = "info", fmt: str = "text") -> None:
    """Log at ``level`` and above on stderr, as ``fmt`` (``text`` or ``json``);
    replaces whatever handlers the root logger had."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT))
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper()))

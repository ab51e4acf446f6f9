"""Structured logs for the web processes and the model workers: one JSON object per line, for log collectors."""

from __future__ import annotations

import json
import logging


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object: time, level, logger, message, process, and the traceback if any."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        entry = {"time": self.formatTime(record), "level": record.levelname, "logger": record.name,
                 "message": record.getMessage(), "pid": record.process}
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def use_json_logs(level: int = logging.INFO) -> None:
    """Send every logger's records to stderr as JSON (replaces the root logger's handlers)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)

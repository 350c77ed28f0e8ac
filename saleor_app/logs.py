"""Logging: JSON lines for machines, plain text on a terminal. Delivery context (installation, channel, order
number, delivery id) rides on every line as `extra`; emails, phones and keys are never passed to a logger."""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone

CONTEXT_FIELDS = ("installation", "channel", "order_number", "delivery_id", "outcome", "http_status", "duration_ms")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in CONTEXT_FIELDS:
            value = getattr(record, field, None)
            if value is not None:
                entry[field] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = " ".join(f"{f}={getattr(record, f)}" for f in CONTEXT_FIELDS if getattr(record, f, None) is not None)
        return f"{line} [{context}]" if context else line


# Libraries whose INFO lines say nothing an operator acts on (a request per delivery, alembic's "setup plugin …").
NOISY_LOGGERS = ("httpx", "httpcore", "gql.transport", "aiosqlite", "alembic")


def configure_logging(level: str = "INFO", fmt: str = "auto") -> None:
    """One handler on the root logger, to stderr: every line of the process (ours, uvicorn's, the libraries')
    comes out in one format, JSON lines with `json`."""
    # No line shows the caller's file, thread or process: not looking them up for every record (the logging
    # module's documented optimisation) is a tenth of a webhook's CPU less.
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if use_json else TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    logging.captureWarnings(True)  # Python warnings (a library's DeprecationWarning) as log lines, not bare text

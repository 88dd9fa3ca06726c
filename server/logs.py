"""Log lines as JSON objects (one per line), for log collectors; or plain text for a terminal.

Records are formatted and written by a thread of their own: the event loop only puts them on a
queue, so a slow log pipe (a busy collector, a full stderr buffer) never holds up the calls.
"""

from __future__ import annotations

import atexit
import copy
import json
import logging
import logging.handlers
import queue
import time


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", ...fields}``; fields come from ``extra={"fields": {...}}``."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(getattr(record, "fields", {}))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:  # formatted already, where the record was made (see _Enqueue)
            line["exception"] = record.exc_text
        return json.dumps(line, ensure_ascii=False, default=str)


class _Enqueue(logging.handlers.QueueHandler):
    """Hands a record to the writing thread as it is; only what cannot cross threads is settled here
    (the message's arguments, and a traceback, which is formatted while its frames still exist)."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        record = copy.copy(record)
        record.msg, record.args = record.getMessage(), None
        if record.exc_info:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        return record


def configure_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    writer = logging.handlers.QueueListener(records, handler)
    writer.start()
    atexit.register(writer.stop)  # writes what is queued before the process ends
    logging.basicConfig(level=level.upper(), handlers=[_Enqueue(records)], force=True)

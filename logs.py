"""What a log line says about the request that caused it, in text or JSON (`logging.format`).

The request id travels in a context variable: set when a request's handler is made (BaseHandler), it is
seen by every line that request causes on the event loop, and in the worker and image threads, since the
jobs are run in a copy of the submitting context (workers.py, services/images.py). Lines written outside a
request (start-up, background jobs) have none.
"""
import contextvars
import datetime
import logging

import orjson

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
PREFIX = "request_id="


class RequestLine:
    """The one line a request logs, kept as fields: the text format prints it as
    'request_id=... GET /path status=200 code=200 1.2ms user=7', the JSON format as keys. Formatted only
    when a handler writes it (a record below the level never is)."""

    __slots__ = ("request_id", "method", "path", "route", "status", "code", "ms", "user")

    def __init__(self, request_id: str, method: str, path: str, route: str, status: int, code: object,
                 ms: float, user: int | None) -> None:
        self.request_id, self.method, self.path, self.route = request_id, method, path, route
        self.status, self.code, self.ms, self.user = status, code, ms, user

    def __str__(self) -> str:
        return (f"{PREFIX}{self.request_id} {self.method} {self.path} status={self.status} "
                f"code={'-' if self.code is None else self.code} {self.ms:.1f}ms "
                f"user={'-' if self.user is None else self.user}")

    def fields(self) -> dict:
        return {"request_id": self.request_id, "method": self.method, "path": self.path, "route": self.route,
                "status": self.status, "code": self.code, "ms": round(self.ms, 1), "user": self.user}


def with_request_id(record: logging.LogRecord) -> str:
    """The record's message, led by the request id of the request that caused it, if any (and if the
    message does not already begin with one, as the request line does)."""
    message = record.getMessage()
    current = request_id.get()
    if current is None or message.startswith(PREFIX):
        return message
    return f"{PREFIX}{current} {message}"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (ISO 8601, UTC), level, logger, message, the request id when a request
    caused the line, the request line's fields (route, method, path, status, code, ms, user) on that line,
    and a traceback as `exception`. Lines never hold secrets: the request line names the path, not the query."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(
                     timespec="milliseconds"),
                 "level": record.levelname, "logger": record.name}
        if isinstance(record.msg, RequestLine):
            entry["message"] = f"{record.msg.method} {record.msg.path}"
            entry.update(record.msg.fields())
        else:
            entry["message"] = record.getMessage()
            current = request_id.get()
            if current is not None:
                entry["request_id"] = current
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()

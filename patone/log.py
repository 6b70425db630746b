"""Structured JSON logs carrying the request id and tenant of the work that wrote them."""

from __future__ import annotations

import contextvars
import logging
import sys

from pythonjsonlogger.json import JsonFormatter

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "patone_request_id", default=None
)
# Whether the request being served may see error details (DEBUG); set per request.
debug_var: contextvars.ContextVar[bool] = contextvars.ContextVar("patone_debug", default=False)
tenant_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "patone_log_tenant", default=None
)


class ContextFilter(logging.Filter):
    """Stamp each record with the current request id and tenant slug."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        # A tenant named by the code that logs (a job, a plugin call) wins over the request's.
        if getattr(record, "tenant", None) is None:
            record.tenant = tenant_var.get()
        record.__dict__.pop("color_message", None)  # uvicorn's ANSI copy of the message
        return True


def configure_logging(level: str = "INFO") -> None:
    """JSON lines on stderr for our loggers and uvicorn's; idempotent."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s %(tenant)s",
            rename_fields={"asctime": "ts", "levelname": "level", "name": "logger"},
        )
    )
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        if getattr(existing, "_patone", False):
            root.removeHandler(existing)
    handler._patone = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    # pgserver narrates every step at INFO; Twilio's SDK writes five INFO lines per request
    # (URL, headers, status), which cost more CPU than the rest of a send job; pika (Dramatiq's
    # RabbitMQ client) logs every connection and channel it opens, hundreds a minute in a worker.
    for chatty in ("pgserver", "twilio.http_client", "twilio.async_http_client", "pika"):
        logging.getLogger(chatty).setLevel(max(root.level, logging.WARNING))
    # We write our own access log line, with the request id and tenant.
    logging.getLogger("uvicorn.access").disabled = True

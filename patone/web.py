"""HTTP plumbing shared by every part: request ids, access logs, JSON errors."""

from __future__ import annotations

import logging
import re
import time
import traceback
import uuid
from typing import Any

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from patone.core.errors import UserError
from patone.log import request_id_var, tenant_var

access_log = logging.getLogger("patone.access")
error_log = logging.getLogger("patone.errors")

_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def error_response(
    status: int, code: str, message: str, *, field: str | None = None, **extra: Any
) -> JSONResponse:
    """The one shape of every error body: {"error": {code, message, field?, request_id}}."""
    body: dict[str, Any] = {"code": code, "message": message}
    if field:
        body["field"] = field
    body.update(extra)
    body["request_id"] = request_id_var.get()
    return JSONResponse({"error": body}, status_code=status)


def user_error_response(error: UserError) -> JSONResponse:
    return error_response(error.status, error.code, error.message, field=error.field)


class RequestContextMiddleware:
    """Give each request an id (echoed as X-Request-ID), log it, and turn crashes into JSON.

    A client-supplied X-Request-ID is kept when it is short and plain, so ids can be followed
    across services. Tracebacks reach the log always and the client only when `debug` is on.
    """

    def __init__(self, app: ASGIApp, debug: bool = False) -> None:
        self.app = app
        self.debug = debug

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        supplied = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = supplied if _REQUEST_ID.fullmatch(supplied) else uuid.uuid4().hex
        rid_token = request_id_var.set(request_id)
        tenant_token = tenant_var.set(None)
        started = time.perf_counter()
        status = {"code": 500, "sent": False}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"], status["sent"] = message["status"], True
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as error:
            error_log.exception("unhandled error", extra={"path": scope.get("path")})
            if scope["type"] == "http" and not status["sent"]:
                detail: dict[str, Any] = {}
                if self.debug:
                    detail["detail"] = "".join(traceback.format_exception(error))
                response = error_response(
                    500, "internal_error", "Something went wrong on our side.", **detail
                )
                await response(scope, receive, send_with_id)
        finally:
            if scope["type"] == "http":
                tenant = scope.get("state", {}).get("tenant")
                tenant_var.set(tenant.slug if tenant else None)
                access_log.info(
                    "%s %s %s",
                    scope["method"],
                    scope["path"],
                    status["code"],
                    extra={
                        "method": scope["method"],
                        "path": scope["path"],
                        "status": status["code"],
                        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    },
                )
            tenant_var.reset(tenant_token)
            request_id_var.reset(rid_token)

"""HTTP plumbing shared by every part: request ids, access logs, JSON errors, security headers."""

from __future__ import annotations

import logging
import re
import time
import traceback
import uuid
from typing import Any

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from patone.core.runtime import error_codes
from patone.core.runtime.errors import Unavailable, UserError
from patone.log import debug_var, request_id_var, tenant_var

access_log = logging.getLogger("patone.access")
error_log = logging.getLogger("patone.errors")

_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def error_response(
    code: str, message: str, *, field: str | None = None, **extra: Any
) -> JSONResponse:
    """The one shape of every error body: {"error": {code, message, field?, request_id}},
    answered with the code's HTTP status (`patone.core.runtime.error_codes`)."""
    body: dict[str, Any] = {"code": code, "message": message}
    if field:
        body["field"] = field
    body.update(extra)
    body["request_id"] = request_id_var.get()
    return JSONResponse({"error": body}, status_code=error_codes.status_of(code))


def user_error_response(error: UserError) -> JSONResponse:
    retry_after = getattr(error, "retry_after", None)
    if retry_after is None:
        return error_response(error.code, error.message, field=error.field)
    response = error_response(error.code, error.message, field=error.field, retry_after=retry_after)
    response.headers["Retry-After"] = str(retry_after)
    return response


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
        debug_token = debug_var.set(self.debug)
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
        except Unavailable as busy:
            # Our capacity, not the client's mistake nor a bug: one line, no traceback.
            error_log.error(
                "answered 503: %s (%s)",
                busy.__class__.__name__,
                busy.__doc__,
                extra={"path": scope.get("path")},
            )
            if scope["type"] == "http" and not status["sent"]:
                response = error_response(busy.code, busy.message, retry_after=busy.retry_after)
                response.headers["Retry-After"] = str(busy.retry_after)
                await response(scope, receive, send_with_id)
        except Exception as error:
            error_log.exception("unhandled error", extra={"path": scope.get("path")})
            if scope["type"] == "http" and not status["sent"]:
                detail: dict[str, Any] = {}
                if self.debug:
                    detail["detail"] = "".join(traceback.format_exception(error))
                response = error_response(
                    "internal_error", "Something went wrong on our side.", **detail
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
            debug_var.reset(debug_token)
            request_id_var.reset(rid_token)


# Pages whose URL carries a secret (set-up, password reset, sign-in links) send no Referer at
# all, so the token never reaches another site or its logs.
TOKEN_PATHS = ("/setup/", "/reset-password/", "/portal/sign-in/")
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'; "
    "object-src 'none'"
)
HSTS = "max-age=31536000; includeSubDomains"


def _forwarded(scope: Scope, name: bytes) -> str:
    """The value our proxy put last in a header such as X-Forwarded-For: earlier values came
    from the client (or proxies before ours) and could say anything."""
    value = dict(scope["headers"]).get(name, b"").decode("latin-1")
    return value.rsplit(",", 1)[-1].strip()


def is_https(scope: Scope, trust_proxy: bool = False) -> bool:
    """Whether the client reached us over HTTPS (per the proxy in front, if trusted)."""
    if scope.get("scheme") in ("https", "wss"):
        return True
    return trust_proxy and _forwarded(scope, b"x-forwarded-proto").lower() == "https"


def _resolve_client_ip(scope: Scope, trust_proxy: bool) -> str:
    if trust_proxy and (forwarded := _forwarded(scope, b"x-forwarded-for")):
        return forwarded
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def client_ip(scope: Scope) -> str:
    """The client's address, the one every rate limit, lockout and log takes: what
    `ClientAddressMiddleware` resolved for this request (the connection's address, or with
    TRUST_PROXY_HEADERS the hop our proxy added to X-Forwarded-For). Without the middleware
    (an app mounted on its own) the connection's address: never a header a client could
    write."""
    resolved = scope.get("state", {}).get("client_ip")
    return str(resolved) if resolved else _resolve_client_ip(scope, trust_proxy=False)


def bearer_token(scope: Scope) -> str | None:
    """The token of the request's `Authorization: Bearer <token>` header (the scheme in any
    case, RFC 7235), or None when there is none."""
    scheme, _, token = Headers(scope=scope).get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


class ClientAddressMiddleware:
    """Resolve the client's address once per request (see `client_ip`), outermost, so every
    door sees the same one."""

    def __init__(self, app: ASGIApp, trust_proxy: bool = False) -> None:
        self.app = app
        self.trust_proxy = trust_proxy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            state = scope.setdefault("state", {})
            state["client_ip"] = _resolve_client_ip(scope, self.trust_proxy)
        await self.app(scope, receive, send)


class SecurityHeadersMiddleware:
    """Security headers on every HTTP response, errors included.

    A response that sets its own header keeps it (GraphiQL sends its own Content-Security-Policy
    with a nonce for its scripts). HSTS goes only on responses to HTTPS requests: over plain
    HTTP it is ignored by browsers and would only mislead. With `trust_proxy`, a TLS-terminating
    proxy's X-Forwarded-Proto counts as the scheme.
    """

    def __init__(self, app: ASGIApp, trust_proxy: bool = False) -> None:
        self.app = app
        self.trust_proxy = trust_proxy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        https = is_https(scope, self.trust_proxy)
        token_page = scope["path"].startswith(TOKEN_PATHS)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("X-Frame-Options", "DENY")
                headers.setdefault(
                    "Referrer-Policy",
                    "no-referrer" if token_page else "strict-origin-when-cross-origin",
                )
                if https:
                    headers.setdefault("Strict-Transport-Security", HSTS)
            await send(message)

        await self.app(scope, receive, send_with_headers)


# The most each door reads of a request body; past it the answer is 413 and the rest is never
# read. GraphQL, driver pings and the staff pages' forms take up to MAX_BODY; the sign-in and
# token doors, whose bodies are a few short fields, SMALL_BODY.
MAX_BODY = 1_000_000
SMALL_BODY = 16_384


class BodyTooLarge(UserError):
    """A request body longer than its door's limit (HTTP 413)."""

    def __init__(self, limit: int) -> None:
        super().__init__("too_large", f"Requests here are limited to {limit} bytes.")
        self.limit = limit


async def read_body(receive: Receive, limit: int = MAX_BODY) -> bytes | None:
    """The whole request body, read chunk by chunk as it arrives: the one body reader of every
    door. None as soon as it passes `limit` bytes (the rest is never read) or when the client
    went away before sending it all."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def request_body(request: Request, limit: int) -> bytes:
    """The body of an endpoint's `request` through `read_body`; `BodyTooLarge` when it declares
    or sends more than `limit` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(limit)
    body = await read_body(request.receive, limit)
    if body is None:
        raise BodyTooLarge(limit)
    return body


class BodyLimitMiddleware:
    """Read a body through `read_body` before the app sees it: 413 past `limit` bytes. For
    routes whose handlers read bodies themselves (plugins' webhooks)."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = await read_body(receive, self.limit)
        if body is None:
            await user_error_response(BodyTooLarge(self.limit))(scope, receive, send)
            return
        await self.app(scope, replay(body), send)


def replay(body: bytes) -> Receive:
    """A `receive` that hands the app a body already read, as one message."""
    delivered = False

    async def receive() -> Message:
        nonlocal delivered
        if delivered:
            return {"type": "http.disconnect"}
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive

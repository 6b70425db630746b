"""`/graphql`: authenticate, then hand the request to strawberry.

A browser asking for HTML gets GraphiQL (served from our own files). Every operation needs a
tenant (the host or X-Tenant) and a valid access token for that tenant; otherwise the answer is
a JSON error and nothing runs.

An operation is admitted the same way whether it comes in an HTTP request or as a `subscribe`
message on a graphql-transport-ws socket: `charge` counts it against the caller's and the
company's budgets and `admitted` fills in its persisted document (only a registered one, for an
allow-listed client); the depth, alias, cost and audience rules are the schema's own extensions,
which run for both.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable
from typing import Any

from cross_web import HTTPException
from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketState
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import SubscribeMessage
from strawberry.types.unset import UnsetType

from patone.core.common.permissions import Actor
from patone.core.identity import authentication, ratelimits, revocation
from patone.core.identity.tokens import Claims, InvalidToken
from patone.core.runtime.errors import Unavailable, UserError
from patone.core.runtime.web import MAX_BODY, read_body, replay
from patone.graphql import persisted
from patone.graphql.context import Context
from patone.graphql.errors import extensions_for, malformed, refused
from patone.graphql.schema import schema
from patone.tenants.registry import TenantInfo
from patone.tenants.web import company_and_bearer

log = logging.getLogger(__name__)


# Until connection_init authenticates a socket, it may do nothing.
NOBODY = Actor(kind="anonymous")

# How often an open socket checks that its token was not revoked.
REVOCATION_CHECK_EVERY = 2.0
CLOSE_EXPIRED = (4401, "token expired")
CLOSE_REVOKED = (4403, "token revoked")
_watchers: set[asyncio.Task[None]] = set()


async def _watch(socket: WebSocket, tenant: str, claims: Claims, every: float) -> None:
    """Close the socket when its token expires (4401: reconnect with a fresh token) or is
    revoked (4403: sign in again), checking revocation every `every` seconds."""
    code, reason = CLOSE_EXPIRED
    while time.time() < claims.expires_at:
        await asyncio.sleep(min(every, max(claims.expires_at - time.time(), 0)))
        if WebSocketState.DISCONNECTED in (socket.client_state, socket.application_state):
            return
        try:
            if await revocation.is_revoked(tenant, claims):
                code, reason = CLOSE_REVOKED
                break
        except Exception:  # Redis away for a moment: keep the socket, look again next time
            log.warning("revocation check failed", exc_info=True)
            continue
    with contextlib.suppress(RuntimeError):
        await socket.close(code=code, reason=reason)


def charge(tenant: TenantInfo, claims: Claims) -> Awaitable[None]:
    """Count one operation against its caller's and the company's budgets (`RateLimited`
    when either is spent): each HTTP request, and each operation started on a socket."""
    return ratelimits.check_api(tenant, caller=authentication.caller(claims))


async def admitted(tenant: TenantInfo, actor: Actor, operation: dict[str, Any]) -> dict[str, Any]:
    """One operation (`query`, `variables`, `operationName`, `extensions`) as it will run: for
    an allow-listed client only a registered document, for others an automatic persisted
    query filled in or registered; `persisted.PersistedQueryError` otherwise."""
    if actor.allow_list_only:
        return await persisted.allow_listed(tenant, operation)
    return await persisted.resolve(tenant, operation)


def _socket_error(error: UserError | Unavailable) -> GraphQLError:
    """A refused operation's error on a socket, with the code an HTTP request gets (a socket
    has no Retry-After header: the wait is in `retry_after`)."""
    if isinstance(error, Unavailable):
        log.error("socket operation refused: %s (%s)", type(error).__name__, error.__doc__)
    return GraphQLError(error.message, extensions=extensions_for(error))


class _Socket(BaseGraphQLTransportWSHandler[Context, None]):
    """graphql-transport-ws, each operation admitted as an HTTP request is before it runs."""

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        payload: Any = message.get("payload")
        if not isinstance(payload, dict):
            await self.handle_invalid_message("Failed to parse message")
            return
        if not self.connection_acknowledged or message["id"] in self.operations:
            await super().handle_subscribe(message)  # strawberry closes the socket
            return
        tenant, claims = self.context.tenant, self.context.claims
        if not isinstance(tenant, TenantInfo) or claims is None:  # on_ws_connect sets both
            await self.websocket.close(code=4401, reason="Unauthorized")
            return
        try:
            await charge(tenant, claims)
            operation = await admitted(tenant, self.context.actor, dict(payload))
        except (ratelimits.RateLimited, persisted.PersistedQueryError, Unavailable) as error:
            await self.send_message(
                {"id": message["id"], "type": "error", "payload": [_socket_error(error).formatted]}
            )
            return
        await super().handle_subscribe({**message, "payload": operation})  # type: ignore[typeddict-item]


class _Strawberry(GraphQL[Context, None]):
    graphql_transport_ws_handler_class = _Socket

    def __init__(self, secret: str) -> None:
        # graphql-transport-ws only: the legacy graphql-ws protocol would be a second door.
        super().__init__(
            schema, graphql_ide="graphiql", subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,)
        )
        self.secret = secret

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        state = request.scope["state"]
        return Context(
            tenant=state["tenant"],
            actor=state.get("actor", NOBODY),
            request=request,
            response=response,
        )

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """Authenticate a socket from the token in its connection_init payload."""
        params = context.connection_params or {}
        raw = str(params.get("Authorization") or params.get("authorization") or "")
        token = raw.removeprefix("Bearer ").strip() or str(params.get("token") or "")
        try:
            context.actor, claims = await authentication.authenticate(
                self.secret, context.tenant, token
            )
        except UserError as error:
            raise ConnectionRejectionError({"code": error.code, "message": error.message}) from None
        context.claims = claims
        watcher = asyncio.get_running_loop().create_task(
            _watch(context.request, context.tenant.slug, claims, REVOCATION_CHECK_EVERY)
        )
        _watchers.add(watcher)
        watcher.add_done_callback(_watchers.discard)
        return {"tenant": context.tenant.slug}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        # strawberry answers malformed requests in plain text; ours speak JSON everywhere.
        try:
            response = await self.run(Request(scope=scope, receive=receive))
        except HTTPException as error:
            response = malformed(error)
        await response(scope, receive, send)

    async def render_graphql_ide(self, request: Request) -> Response:
        from patone.graphql.graphiql import graphiql_page

        return await graphiql_page(request)


class GraphQLApp:
    """The ASGI app mounted at /graphql."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.strawberry = _Strawberry(secret)

    def _wants_html(self, scope: Scope) -> bool:
        headers = dict(scope["headers"])
        return scope["method"] == "GET" and b"text/html" in headers.get(b"accept", b"")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self._wants_html(scope):
            await self.strawberry(scope, receive, send)
            return
        if scope["type"] == "websocket":
            if scope.get("state", {}).get("tenant") is None:
                await send({"type": "websocket.close", "code": 4404})
                return
            await self.strawberry(scope, receive, send)
            return
        state: dict[str, Any] = scope.setdefault("state", {})
        try:
            tenant, token = company_and_bearer(scope)
        except UserError as error:
            await refused(error.code, error.message)(scope, receive, send)
            return
        try:
            claims = authentication.verify(self.secret, tenant, token)
            # The plan's rate limit is counted while revocation and the role are checked.
            state["actor"] = await authentication.actor_for(tenant, claims, charge(tenant, claims))
        except InvalidToken as error:
            await refused(error.code, error.message)(scope, receive, send)
            return
        except ratelimits.RateLimited as error:
            headers = {"Retry-After": str(error.retry_after)}
            await refused("rate_limited", error.message, headers)(scope, receive, send)
            return
        except Unavailable as busy:
            await _busy(busy)(scope, receive, send)
            return
        if state["actor"].allow_list_only and scope["method"] != "POST":
            await refused("persisted_query_required", "Send registered documents by POST.")(
                scope, receive, send
            )
            return
        if scope["method"] == "POST":
            body = await read_body(receive)
            if body is None:
                await refused("too_large", f"Requests are limited to {MAX_BODY} bytes.")(
                    scope, receive, send
                )
                return
            try:
                body = await _with_persisted_query(body, tenant, state["actor"])
            except persisted.PersistedQueryError as error:
                await refused(error.code, error.message)(scope, receive, send)
                return
            except Unavailable as busy:
                await _busy(busy)(scope, receive, send)
                return
            receive = replay(body)
        await self.strawberry(scope, receive, send)


def _busy(busy: Unavailable) -> Response:
    """503 in the shape GraphQL clients read, logged once as our fault (no traceback)."""
    log.error("answered 503: %s (%s)", type(busy).__name__, busy.__doc__)
    headers = {"Retry-After": str(busy.retry_after)}
    return refused("unavailable", busy.message, headers)


async def _with_persisted_query(body: bytes, tenant: TenantInfo, actor: Actor) -> bytes:
    """The request body with its operation `admitted`; bodies that name no persisted query
    pass unchanged, unless the client is allow-listed."""
    if not actor.allow_list_only and b"persistedQuery" not in body:
        return body  # the common case: no need to parse the body before strawberry does
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        if actor.allow_list_only:
            raise persisted.PersistedQueryError(
                "persisted_query_required", "Send one registered document per request"
            )
        return body  # strawberry answers malformed JSON and batches itself
    return json.dumps(await admitted(tenant, actor, data)).encode()

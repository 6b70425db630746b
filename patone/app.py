"""The ASGI application, put together from the rooms.

Each room (see docs/architecture.md) has a `room.py` whose `ROOM` says what it adds: set-up
when the app is built, routes, middleware, start-up steps and the modules that declare its
jobs. `ROOMS` names them once, in order: start-up runs in that order and shut-down in reverse,
each undoing step logged and passed over when it fails, so one failure never leaves the
embedded servers running.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from patone.admin_ui.guard import is_staff_page, not_found_page
from patone.core.notifications.admin import record_provider_status
from patone.core.runtime.errors import UserError
from patone.core.runtime.rooms import Assembly, Room, step
from patone.core.runtime.web import error_response, user_error_response
from patone.embedded import EmbeddedServices
from patone.log import configure_logging
from patone.settings import Settings, get_settings

log = logging.getLogger(__name__)

# Start-up order; routes and middleware (outermost first) come in the same order.
ROOMS = (
    "patone.core.runtime",
    "patone.tenants",
    "patone.core.identity",
    "patone.plugins",
    "patone.core.work",
    "patone.core.domain",
    "patone.core.dispatch",
    "patone.core.notifications",
    "patone.http",
    "patone.graphql",
    "patone.portal_ui",
    "patone.platform",
    "patone.admin_ui",
    "patone.demo",
)


def rooms() -> list[Room]:
    return [importlib.import_module(f"{name}.room").ROOM for name in ROOMS]


def actor_modules() -> list[str]:
    """Every module that declares jobs, event handlers or periodic jobs, room by room: what a
    worker imports."""
    return [module for room in rooms() for module in room.actors]


async def _user_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, UserError)
    return user_error_response(exc)


async def _not_found(request: Request, exc: Exception) -> Response:
    if is_staff_page(request.url.path) and getattr(request.state, "tenant", None) is not None:
        return not_found_page(request)
    return error_response("not_found", f"Nothing at {request.url.path}.")


async def _wrong_method(request: Request, exc: Exception) -> Response:
    allowed = getattr(exc, "headers", None) or {}
    response = error_response("method_not_allowed", f"{request.url.path} takes other methods.")
    if "Allow" in allowed:
        response.headers["Allow"] = allowed["Allow"]
    return response


def create_app(
    settings: Settings | None = None,
    services: EmbeddedServices | None = None,
    on_ready: Callable[[Starlette], None] | None = None,
    on_stop: Callable[[], None] | None = None,
) -> Starlette:
    """Build the app. Without `services` the lifespan starts (and stops) what settings need.
    `on_ready` runs once everything is up, `on_stop` first thing on the way down."""
    settings = settings or get_settings()
    configure_logging(settings.log_level)
    assembly = Assembly(
        settings, settings.resolved_secret_key(), delivery_reports=record_provider_status
    )
    present = rooms()
    for room in present:
        if room.configure is not None:
            room.configure(assembly)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        assembly.state = {"actors": actor_modules()}
        if services is not None:
            assembly.state["services"] = services
        async with AsyncExitStack() as stack:
            for room in present:
                if room.start is not None:
                    await stack.enter_async_context(room.start(assembly, app))
            if on_stop is not None:
                stopping = on_stop  # entered last: runs first on the way down
                await stack.enter_async_context(
                    step("stop callback", lambda: asyncio.to_thread(stopping))
                )
            # Everything built at start-up (the GraphQL schema alone is ~160,000 objects) is
            # kept for good: frozen, full collections stop walking it (~120 ms a time).
            gc.freeze()
            log.info("patone ready", extra={"demo": bool(app.state.demo)})
            if on_ready is not None:
                on_ready(app)
            yield

    web = Starlette(
        debug=False,
        routes=[route for room in present if room.routes for route in room.routes(assembly)],
        middleware=[m for room in present if room.middleware for m in room.middleware(assembly)],
        exception_handlers={UserError: _user_error, 404: _not_found, 405: _wrong_method},
        lifespan=lifespan,
    )
    web.state.signing_secret = assembly.secret
    return web

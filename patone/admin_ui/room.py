"""The staff pages' room: sign-in, account, two-factor and sessions pages under /admin, and
the middleware that guards them (sessions, CSRF)."""

from __future__ import annotations

from datetime import timedelta

from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from patone.admin_ui.csrf import derive_key
from patone.admin_ui.guard import StaffPagesMiddleware, UiConfig
from patone.admin_ui.routes import routes
from patone.core.identity.sessions import Lifetimes
from patone.core.runtime.rooms import Assembly, Room


def _routes(assembly: Assembly) -> list[BaseRoute]:
    return routes()


def _middleware(assembly: Assembly) -> list[Middleware]:
    settings = assembly.settings
    config = UiConfig(
        csrf_key=derive_key(assembly.secret),
        lifetimes=Lifetimes(
            idle=timedelta(seconds=settings.session_idle_timeout),
            absolute=timedelta(seconds=settings.session_max_age),
        ),
        secure_cookies=settings.session_cookie_secure,
    )
    return [Middleware(StaffPagesMiddleware, config=config)]


ROOM = Room("staff pages", routes=_routes, middleware=_middleware)

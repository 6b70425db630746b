"""The http room: sign-in endpoints, OAuth2 tokens and the public keys, driver pings, the
company's own description, and the middleware that names each request's company."""

from __future__ import annotations

from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Route

from patone.core.runtime.rooms import Assembly, Room
from patone.http.auth import auth_routes
from patone.http.company import tenant_info
from patone.http.oauth import jwks, revoke_endpoint, token_endpoint
from patone.http.pings import driver_routes
from patone.http.tenancy import TenantMiddleware
from patone.tenants.registry import tenant_cache


def _routes(assembly: Assembly) -> list[BaseRoute]:
    return [
        Route("/api/tenant", tenant_info),
        *auth_routes(assembly.secret),
        *driver_routes(assembly.secret),
        Route("/.well-known/jwks.json", jwks),
        Route("/oauth/token", token_endpoint, methods=["POST"]),
        Route("/oauth/revoke", revoke_endpoint, methods=["POST"]),
    ]


def _middleware(assembly: Assembly) -> list[Middleware]:
    base_domain = assembly.settings.base_domain
    return [Middleware(TenantMiddleware, base_domain=base_domain, cache=tenant_cache)]


ROOM = Room("http", routes=_routes, middleware=_middleware)

"""Which tenant a request is for: custom domain, then subdomain, then X-Tenant (API only).

The resolved tenant is put in `request.state.tenant` (None for platform-level requests such as
the bare BASE_DOMAIN). An unknown or deleted tenant gets a 404 JSON error and a suspended one a
403 with the reason; neither reaches a route. WebSocket connections resolve the same way.
"""

from __future__ import annotations

import ipaddress

from starlette.types import ASGIApp, Receive, Scope, Send

from patone.core.runtime.web import error_response
from patone.log import tenant_var
from patone.tenants.registry import TenantCache, TenantInfo

# Subdomains of BASE_DOMAIN that name the platform itself, not a tenant.
PLATFORM_SUBDOMAINS = frozenset({"www", "api", "platform", "admin", "app"})
# The X-Tenant header is for API clients; browsers get their tenant from the host.
API_PREFIXES = ("/api/", "/graphql", "/oauth/", "/auth/")
# Reachable on any host, tenant or not (load balancers probe by IP).
UNSCOPED_PATHS = frozenset({"/healthz"})


def _host(scope: Scope) -> str:
    """The request's host name, lower-case, without port or trailing dot."""
    raw = _header(scope, b"host")
    if raw is None:
        server = scope.get("server")
        return str(server[0]) if server else ""
    if raw.startswith("["):  # IPv6 literal, maybe with a port
        return raw[1 : raw.find("]")] if "]" in raw else raw
    return raw.rsplit(":", 1)[0].rstrip(".") if raw.count(":") == 1 else raw.rstrip(".")


def _header(scope: Scope, wanted: bytes) -> str | None:
    for name, value in scope["headers"]:
        if name == wanted:
            return value.decode("latin-1").strip().lower()
    return None


class TenantMiddleware:
    """Resolve the tenant of each HTTP and WebSocket request."""

    def __init__(self, app: ASGIApp, base_domain: str, cache: TenantCache) -> None:
        self.app = app
        self.base_domain = base_domain
        self.cache = cache

    async def resolve(self, scope: Scope) -> tuple[str | None, TenantInfo | None]:
        """Return (how the request named a tenant, the tenant found), or (None, None)."""
        host = _host(scope)
        base = self.base_domain
        if host != base and not host.endswith("." + base) and not _is_ip(host):
            tenant = await self.cache.by_domain(host)
            if tenant is not None:
                return host, tenant
        if host.endswith("." + base):
            label = host[: -len(base) - 1]
            if label not in PLATFORM_SUBDOMAINS:
                return label, await self.cache.by_slug(label) if "." not in label else None
        path: str = scope.get("path", "")
        if path.startswith(API_PREFIXES) or scope["type"] == "websocket":
            slug = _header(scope, b"x-tenant")
            if slug:
                return slug, await self.cache.by_slug(slug)
        return None, None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"] in UNSCOPED_PATHS:
            await self.app(scope, receive, send)
            return
        named, tenant = await self.resolve(scope)
        response = None
        if named is not None and (tenant is None or tenant.status == "deleted"):
            response = error_response(
                "tenant_not_found", f"No company called {named!r} uses this service."
            )
        elif tenant is not None and tenant.status == "suspended":
            response = error_response(
                "tenant_suspended",
                f"{tenant.name} is suspended.",
                reason=tenant.status_reason,
            )
        if response is not None:
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 4404 if tenant is None else 4403})
                return
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})["tenant"] = tenant
        token = tenant_var.set(tenant.slug if tenant else None)
        try:
            await self.app(scope, receive, send)
        finally:
            tenant_var.reset(token)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True

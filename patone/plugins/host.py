"""What plugin HTTP routes may ask of Patone, and mounting them under /plugins/<name>/.

A plugin's `routes(host)` hook returns Starlette routes (inbound webhooks: delivery reports,
payment events). They are mounted under `/plugins/<plugin name>/` on every company's address,
so the tenant middleware has resolved the company before the route runs. The `host` handed to
the hook is the plugin's only way into the core: it tells the route which company called and
that company's settings for the plugin (only if the company enabled it), and takes delivery
reports for the notification log.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, cast

from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.routing import BaseRoute, Mount

from patone.core.runtime.web import MAX_BODY, BodyLimitMiddleware, error_response
from patone.plugins import config as plugins
from patone.plugins.manager import PluginManager
from patone.plugins.types import TenantView
from patone.tenants.registry import TenantInfo, tenant_cache
from patone.tenants.web import company

log = logging.getLogger(__name__)

# error_response: our JSON errors; request_tenant: the company a route was called for.
__all__ = ["PluginHost", "error_response", "plugin_routes", "request_tenant"]


# Records a provider's delivery report: (tenant, provider=, provider_id=, status=,
# provider_status=, message_id=, error=) -> whether a message matched. The notifications room
# supplies it when the application is put together, so plugins need not import it.
DeliveryReports = Callable[..., Awaitable[bool]]


def request_tenant(request: Request, message: str) -> TenantView:
    """The company a plugin's route was called for; if the request names none, a
    `tenant_required` refusal with `message`, which the application answers (404)."""
    return plugins.tenant_view(company(request.scope, message))


class PluginHost:
    """Handed to `routes(host)`; every method is scoped to the company of the request."""

    def __init__(self, delivery_reports: DeliveryReports) -> None:
        self._delivery_reports = delivery_reports

    async def tenant_config(
        self, request: Request, plugin: str
    ) -> tuple[TenantView, dict[str, Any]] | None:
        """The company the request is for and its settings for `plugin` (secrets opened), or
        None if the request names no company or the company has not enabled the plugin."""
        tenant: TenantInfo | None = getattr(request.state, "tenant", None)
        if tenant is None:
            return None
        enabled = await plugins.enabled_plugins(tenant)
        if plugin not in enabled:
            return None
        return plugins.tenant_view(tenant), enabled[plugin]

    async def report_delivery(
        self,
        tenant: TenantView,
        *,
        provider: str,
        provider_id: str,
        status: str,
        provider_status: str,
        message_id: str = "",
        error: str = "",
    ) -> bool:
        """Record a provider's delivery report for one of this company's messages; `status`
        is "sent", "delivered" or "undelivered". False if no message matches."""
        found = await tenant_cache.by_slug(tenant.slug)
        if found is None:
            return False
        return await self._delivery_reports(
            found,
            provider=provider,
            provider_id=provider_id,
            status=status,
            provider_status=provider_status,
            message_id=message_id,
            error=error,
        )


def plugin_routes(host: PluginHost) -> list[BaseRoute]:
    """Every installed plugin's routes, each plugin's under /plugins/<name>."""
    manager = PluginManager(load_entry_points=True)
    mounts: list[BaseRoute] = []
    try:
        for name, impl in manager.implementations("routes"):
            try:
                arguments = {"host": host} if "host" in impl.argnames else {}
                routes = list(cast(list[BaseRoute], impl.function(**arguments) or []))
            except Exception:  # a broken plugin loses its routes, not the application
                log.exception("plugin routes failed", extra={"plugin": name})
                continue
            if routes:
                # A plugin's handlers read bodies as they please: the limit is applied here.
                limit = [Middleware(BodyLimitMiddleware, limit=MAX_BODY)]
                mounts.append(Mount(f"/plugins/{name}", routes=routes, middleware=limit))
    finally:
        manager.close()
    return mounts

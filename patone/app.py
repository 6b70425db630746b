"""The ASGI application: routes, middleware and the lifespan that connects everything."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import html
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute

from patone.admin_ui.csrf import derive_key
from patone.admin_ui.guard import StaffPagesMiddleware, UiConfig, is_staff_page, not_found_page
from patone.admin_ui.routes import routes as staff_page_routes
from patone.core.common.permissions import SYSTEM, require
from patone.core.identity import credentials, two_factor, users
from patone.core.identity.authentication import authenticate
from patone.core.identity.sessions import Lifetimes
from patone.core.identity.signing_keys import keyring_for
from patone.core.notifications.admin import record_provider_status
from patone.core.runtime.db import engine
from patone.core.runtime.errors import UserError
from patone.core.runtime.redis import close_redis, connect_redis, get_redis
from patone.core.runtime.scheduler import Scheduler
from patone.core.runtime.web import (
    ClientAddressMiddleware,
    RequestContextMiddleware,
    SecurityHeadersMiddleware,
    error_response,
    user_error_response,
)
from patone.core.work.jobs import configure_broker
from patone.core.work.relay import Relay
from patone.core.work.worker import ACTOR_MODULES, import_actor_modules, start_in_process_worker
from patone.demo.company import fill_demo_tenant
from patone.embedded import EmbeddedServices
from patone.graphql.app import GraphQLApp
from patone.graphql.graphiql import static_files
from patone.http.auth import auth_routes
from patone.http.oauth import jwks, revoke_endpoint, token_endpoint
from patone.http.pings import driver_routes
from patone.http.tenancy import TenantMiddleware
from patone.log import configure_logging
from patone.platform.api import platform_routes
from patone.platform.provisioning import create_tenant
from patone.plugins import config as plugins
from patone.plugins.builtin import storage_local
from patone.plugins.host import PluginHost, plugin_routes
from patone.plugins.loops import close_loop_clients
from patone.portal_ui import sign_in as portal_sign_in
from patone.settings import Settings, get_settings
from patone.tenants.isolation import tenant_transaction
from patone.tenants.migrations import ensure_platform, migrate_tenants
from patone.tenants.registry import TenantInfo, follow_changes, get_tenant, tenant_cache
from patone.tenants.web import company_and_bearer

log = logging.getLogger(__name__)

DEMO_SLUG = "demo"
_CHECK_TIMEOUT = 2.0


async def _check(name: str, probe: Any) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        await asyncio.wait_for(probe(), _CHECK_TIMEOUT)
    except Exception as error:
        return {"ok": False, "error": f"{type(error).__name__}: {error}"[:200]}
    return {"ok": True, "latency_ms": round((loop.time() - started) * 1000, 2)}


async def healthz(request: Request) -> JSONResponse:
    """Postgres and Redis, each checked with a time-out; 503 when either is down."""
    checks = dict(
        zip(
            ("postgres", "redis"),
            await asyncio.gather(
                _check("postgres", lambda: engine.fetch("SELECT 1")),
                _check("redis", lambda: get_redis().ping()),
            ),
            strict=True,
        )
    )
    healthy = all(check["ok"] for check in checks.values())
    return JSONResponse(
        {"status": "ok" if healthy else "unavailable", "checks": checks},
        status_code=200 if healthy else 503,
    )


def _tenant(request: Request) -> TenantInfo | None:
    return getattr(request.state, "tenant", None)


async def home(request: Request) -> Response:
    """The tenant's front page (the portal issue builds it out) or the platform's."""
    tenant = _tenant(request)
    title = html.escape(tenant.name if tenant else "Patone Cloud")
    subtitle = "Roadside assistance" if tenant else "Software for roadside-assistance companies"
    return HTMLResponse(
        "<!doctype html><html lang=en><meta charset=utf-8>"
        f"<meta name=viewport content='width=device-width,initial-scale=1'><title>{title}</title>"
        f"<body><main><h1>{title}</h1><p>{subtitle}</p></main></body></html>"
    )


async def tenant_info(request: Request) -> JSONResponse:
    """Who this tenant is and what its schema holds, read inside its own transaction; for the
    company's admins only (an admin's access token as bearer), since it names the schema, the
    role, the plan, the domains and the tables."""
    tenant, token = company_and_bearer(request.scope, "Sign in as an admin: send an access token.")
    actor, _claims = await authenticate(request.app.state.signing_secret, tenant, token)
    require(actor, "settings.manage")
    async with tenant_transaction(tenant) as transaction:
        connection = transaction.connection
        where = await connection.fetchrow("SELECT current_schema() AS schema, current_user AS role")
        tables = await connection.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1"
        )
        migrations = await connection.fetchval("SELECT count(*) FROM migration")
    return JSONResponse(
        {
            "tenant": tenant.as_dict(),
            "schema": {
                "name": where["schema"],
                "role": where["role"],
                "tables": [row["tablename"] for row in tables],
                "migrations": migrations,
            },
        }
    )


DEMO_STAFF = (
    ("admin@demo-towing.example", "Alex Admin", "admin"),
    ("dispatcher@demo-towing.example", "Dana Dispatcher", "dispatcher"),
)
DEMO_ADMIN = DEMO_STAFF[0][0]


async def ensure_demo_tenant(base_url: str) -> tuple[TenantInfo, credentials.Link | None]:
    """The demo tenant, created and filled with sample data the first time; with a fresh
    set-up link for its admin while the admin has no password (no password ships)."""
    tenant = await get_tenant(DEMO_SLUG)
    if tenant is not None:
        # A newer release's migrations reach the demo company at the next start (other
        # companies wait for `patone migrate`, which an operator runs at a rollout).
        await _migrate_demo(tenant)
    if tenant is None:
        try:
            # Turning the demo on asks for this company by name: a purged demo comes back,
            # new (with a new id) and filled with sample data again.
            tenant = await create_tenant(
                DEMO_SLUG, "Demo Towing & Recovery", plan="enterprise", reuse_purged_slug=True
            )
        except UserError:
            # Another process created it at the same moment.
            tenant = await get_tenant(DEMO_SLUG)
            assert tenant is not None
    known = {u["email"] for u in await users.list_users(tenant, SYSTEM)}
    for email, name, role in DEMO_STAFF:
        if email not in known:
            with contextlib.suppress(UserError):  # created by a process starting beside us
                await users.create_user(
                    tenant, SYSTEM, {"email": email, "name": name, "role": role}
                )
    summary = await fill_demo_tenant(tenant)
    if summary.filled:
        log.info("demo data created", extra={"summary": str(summary)})
    link = None
    if not await credentials.has_password(tenant, DEMO_ADMIN):
        link = await credentials.issue_setup_link(tenant, SYSTEM, DEMO_ADMIN, base_url=base_url)
    return tenant, link


async def _migrate_demo(tenant: TenantInfo) -> None:
    report = await migrate_tenants(slugs=[tenant.slug])
    for result in report.results:
        if result.status == "migrated":
            log.info("demo company migrated", extra={"applied": result.applied})
        elif result.status == "failed":
            log.error("demo company could not be migrated: %s", result.error)


async def _nothing() -> None:
    return None


def _current_runtime() -> plugins.PluginRuntime | None:
    try:
        return plugins.get_runtime()
    except RuntimeError:
        return None


async def _user_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, UserError)
    return user_error_response(exc)


async def _not_found(request: Request, exc: Exception) -> Response:
    if is_staff_page(request.url.path) and _tenant(request) is not None:
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
) -> Starlette:
    """Build the app. Without `services` the lifespan starts (and stops) what settings need."""
    settings = settings or get_settings()
    configure_logging(settings.log_level)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        owned = services is None
        follower: asyncio.Task[None] | None = None
        relay: Relay | None = None
        scheduler: Scheduler | None = None
        stop_worker: Callable[..., None] | None = None
        keys_refresher: asyncio.Task[None] | None = None
        running: EmbeddedServices = (
            services
            if services is not None
            else await asyncio.to_thread(EmbeddedServices.start, settings)
        )
        try:
            await engine.connect(
                {"default": running.database_url, **settings.shards},
                min_size=settings.db_pool_min,
                max_size=settings.db_pool_max,
                max_queries=settings.db_pool_max_queries,
                max_inactive_connection_lifetime=settings.db_pool_max_idle,
            )
            await connect_redis(running.redis_url)
            import_actor_modules(ACTOR_MODULES)
            broker = configure_broker(running.redis_url, broker_url=settings.broker_url)
            await ensure_platform()
            keyring = keyring_for(secret, settings.secret_key_fallbacks)
            await keyring.load()
            keys_refresher = asyncio.create_task(keyring.refresh_forever())
            plugins.set_runtime(plugins.runtime_from_settings(settings))
            for failed in await plugins.get_runtime().manager.call_all("startup", app=app):
                if failed.error:
                    log.error("plugin start-up failed: %s", failed.error)
            storage_local.configure(storage_local.LocalFiles.from_settings(settings))
            tenant_cache.ttl = settings.tenant_cache_ttl
            ready = asyncio.Event()
            follower = asyncio.create_task(follow_changes(tenant_cache, ready))
            await asyncio.wait_for(ready.wait(), 5)
            relay = Relay(get_redis(), tenant_cache, broker=broker)
            await relay.start()
            scheduler = Scheduler(get_redis())
            scheduler.start()
            if settings.embedded_redis:  # one command runs everything: jobs in-process too
                stop_worker = await asyncio.to_thread(start_in_process_worker, broker)
            app.state.demo, app.state.demo_setup_link = None, None
            if settings.create_demo_tenant:
                app.state.demo, app.state.demo_setup_link = await ensure_demo_tenant(
                    settings.tenant_url_template().replace("{slug}", DEMO_SLUG)
                )
            # Everything built at start-up (the GraphQL schema alone is ~160,000 objects) is
            # kept for good: frozen, full collections stop walking it (~120 ms a time).
            gc.freeze()
            log.info("patone ready", extra={"demo": bool(app.state.demo)})
            if on_ready is not None:
                on_ready(app)
            yield
        finally:
            # Every step runs even if an earlier one fails: a lost Redis connection must not
            # leave the embedded servers running.
            async def cancel_follower() -> None:
                for task in (follower, keys_refresher):
                    if task is not None:
                        task.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await task

            def close_plugins() -> None:
                runtime = _current_runtime()
                plugins.set_runtime(None)
                if runtime is not None:
                    runtime.manager.close()

            steps: list[tuple[str, Callable[[], Awaitable[object]]]] = [
                ("worker", lambda: asyncio.to_thread(stop_worker) if stop_worker else _nothing()),
                ("scheduler", lambda: scheduler.stop() if scheduler is not None else _nothing()),
                ("relay", lambda: relay.stop() if relay is not None else _nothing()),
                ("follower", cancel_follower),
                ("plugin connections", close_loop_clients),
                ("plugins", lambda: asyncio.to_thread(close_plugins)),
                ("redis", close_redis),
                ("database", engine.disconnect),
            ]
            if owned:
                steps.append(("embedded servers", lambda: asyncio.to_thread(running.stop)))
            for name, step in steps:
                try:
                    await step()
                except Exception:
                    log.exception("shutdown step failed", extra={"step": name})

    secret = settings.resolved_secret_key()
    two_factor.configure(secret, settings.secret_key_fallbacks)
    graphql = GraphQLApp(secret)
    staff_pages = UiConfig(
        csrf_key=derive_key(secret),
        lifetimes=Lifetimes(
            idle=timedelta(seconds=settings.session_idle_timeout),
            absolute=timedelta(seconds=settings.session_max_age),
        ),
        secure_cookies=settings.session_cookie_secure,
    )
    web = Starlette(
        debug=False,
        routes=[
            Route("/healthz", healthz),
            Route("/", home),
            Route("/api/tenant", tenant_info),
            *auth_routes(secret),
            *driver_routes(secret),
            Route("/files/{key:path}", storage_local.serve),
            Route("/.well-known/jwks.json", jwks),
            Route("/oauth/token", token_endpoint, methods=["POST"]),
            Route("/oauth/revoke", revoke_endpoint, methods=["POST"]),
            Route("/graphql", graphql),  # other methods: `method_not_allowed`, as GraphQL
            WebSocketRoute("/graphql", graphql),
            Mount("/graphql/static", app=static_files()),
            *portal_sign_in.routes(secret),
            *platform_routes(secret, settings.tenant_delete_grace_days),
            *staff_page_routes(),
            *plugin_routes(PluginHost(delivery_reports=record_provider_status)),
        ],
        middleware=[
            Middleware(ClientAddressMiddleware, trust_proxy=settings.trust_proxy_headers),
            Middleware(SecurityHeadersMiddleware, trust_proxy=settings.trust_proxy_headers),
            Middleware(RequestContextMiddleware, debug=settings.debug),
            Middleware(TenantMiddleware, base_domain=settings.base_domain, cache=tenant_cache),
            Middleware(StaffPagesMiddleware, config=staff_pages),
        ],
        exception_handlers={UserError: _user_error, 404: _not_found, 405: _wrong_method},
        lifespan=lifespan,
    )
    web.state.signing_secret = secret
    return web

"""The runtime room: the embedded servers when `patone serve` runs alone, the database pools,
Redis, the HTTP plumbing every request passes through, and the health check."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from patone.core.runtime.db import engine
from patone.core.runtime.redis import close_redis, connect_redis, get_redis
from patone.core.runtime.rooms import Assembly, Room, step
from patone.core.runtime.web import (
    ClientAddressMiddleware,
    RequestContextMiddleware,
    SecurityHeadersMiddleware,
)
from patone.embedded import EmbeddedServices

CHECK_TIMEOUT = 2.0


async def _check(probe: Any) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        await asyncio.wait_for(probe(), CHECK_TIMEOUT)
    except Exception as error:
        return {"ok": False, "error": f"{type(error).__name__}: {error}"[:200]}
    return {"ok": True, "latency_ms": round((loop.time() - started) * 1000, 2)}


async def healthz(request: Request) -> JSONResponse:
    """Postgres and Redis, each checked with a time-out; 503 when either is down."""
    postgres, redis = await asyncio.gather(
        _check(lambda: engine.fetch("SELECT 1")), _check(lambda: get_redis().ping())
    )
    checks = {"postgres": postgres, "redis": redis}
    healthy = all(check["ok"] for check in checks.values())
    return JSONResponse(
        {"status": "ok" if healthy else "unavailable", "checks": checks},
        status_code=200 if healthy else 503,
    )


def _routes(assembly: Assembly) -> list[BaseRoute]:
    return [Route("/healthz", healthz)]


def _middleware(assembly: Assembly) -> list[Middleware]:
    settings = assembly.settings
    return [
        Middleware(ClientAddressMiddleware, trust_proxy=settings.trust_proxy_headers),
        Middleware(SecurityHeadersMiddleware, trust_proxy=settings.trust_proxy_headers),
        Middleware(RequestContextMiddleware, debug=settings.debug),
    ]


@asynccontextmanager
async def _start(assembly: Assembly, app: Starlette) -> AsyncIterator[None]:
    """The embedded servers (unless the caller runs them), then the pools. `state["services"]`
    names the running servers for the rooms after this one."""
    settings = assembly.settings
    running: EmbeddedServices | None = assembly.state.get("services")
    owned = running is None
    if running is None:
        running = await asyncio.to_thread(EmbeddedServices.start, settings)
        assembly.state["services"] = running
    servers = running
    async with (
        step("embedded servers", lambda: asyncio.to_thread(servers.stop) if owned else _nothing()),
        step("database", engine.disconnect),
    ):
        await engine.connect(
            {"default": running.database_url, **settings.shards},
            min_size=settings.db_pool_min,
            max_size=settings.db_pool_max,
            max_queries=settings.db_pool_max_queries,
            max_inactive_connection_lifetime=settings.db_pool_max_idle,
        )
        async with step("redis", close_redis):
            await connect_redis(running.redis_url)
            yield


async def _nothing() -> None:
    return None


ROOM = Room("runtime", routes=_routes, middleware=_middleware, start=_start)

"""Browsers for the staff pages: the real app on each company's host, real sessions."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from patone.app import create_app
from patone.core.common.permissions import SYSTEM
from patone.core.identity import sessions, users
from patone.core.tables.identity import UserRow
from patone.settings import load_settings
from patone.tenants.registry import TenantInfo

SECRET = "admin-ui-test-secret"
BASE_DOMAIN = "patone.test"
Browser = Callable[..., Awaitable[httpx.AsyncClient]]


def staff_app(**settings: Any) -> Starlette:
    return create_app(load_settings(secret_key=SECRET, base_domain=BASE_DOMAIN, **settings))


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """`await browser(tenant)`: a cookie-keeping client on the company's own host."""
    opened: list[httpx.AsyncClient] = []

    async def open_browser(
        tenant: TenantInfo | None,
        *,
        app: Starlette | None = None,
        scheme: str = "http",
        session_id: str | None = None,
    ) -> httpx.AsyncClient:
        host = f"{tenant.slug}.{BASE_DOMAIN}" if tenant else BASE_DOMAIN
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app or staff_app(), client=("198.51.100.7", 5555)),
            base_url=f"{scheme}://{host}",
            headers={"User-Agent": "TestBrowser/1.0"},
        )
        if session_id is not None:
            client.cookies.set(sessions.COOKIE_NAME, session_id, domain=host)
        opened.append(client)
        return client

    yield open_browser
    for client in opened:
        await client.aclose()


async def make_user(
    tenant: TenantInfo, email: str = "sam@example.com", role: str = "dispatcher"
) -> UserRow:
    return await users.create_user(
        tenant, SYSTEM, {"email": email, "name": "Sam Stone", "role": role}
    )


async def start_session(tenant: TenantInfo, user_id: int, agent: str = "Laptop") -> str:
    """A signed-in browser's cookie value, through the real `sessions.start`."""
    session_id, _ = await sessions.start(tenant, user_id, ip="192.0.2.10", user_agent=agent)
    return session_id

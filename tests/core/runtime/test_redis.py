"""The Redis clients: one company's load waits for a connection instead of failing another
company's request, and a wait that runs out is a 503 the client can retry."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import httpx
import pytest

from patone.core.dispatch.positions import subscribe_positions
from patone.core.runtime.redis import get_redis
from patone.tenants.registry import TenantInfo
from tests.graphql.conftest import SECRET, token_for
from tests.support import app_client

VIEWER = {"query": "{ viewer { tenant } }"}


async def _ask(client: httpx.AsyncClient, tenant: TenantInfo, token: str) -> httpx.Response:
    return await client.post(
        "/graphql",
        json=VIEWER,
        headers={"X-Tenant": tenant.slug, "Authorization": f"Bearer {token}"},
    )


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(SECRET) as client:
        yield client


async def test_one_companys_live_streams_do_not_fail_another_companys_requests(
    client: httpx.AsyncClient, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, bolt = two_tenants
    bolt_token = await token_for(bolt, "dispatcher")
    # 120 live position streams of one company: each listens on a connection of its own.
    streams = [subscribe_positions(acme) for _ in range(120)]
    listening = [asyncio.create_task(anext(stream)) for stream in streams]  # type: ignore[arg-type]
    try:
        channel = f"t:{acme.slug}:positions"
        for _ in range(100):
            subscribed = dict(await get_redis().pubsub_numsub(channel)).get(channel, 0)
            if subscribed == len(streams) or any(task.done() for task in listening):
                break
            await asyncio.sleep(0.05)
        answer = await _ask(client, bolt, bolt_token)
        assert answer.status_code == 200, answer.text
        assert answer.json()["data"]["viewer"]["tenant"] == bolt.slug
        assert not [task for task in listening if task.done()], "a stream failed to subscribe"
    finally:
        for task in listening:
            task.cancel()
        await asyncio.gather(*listening, return_exceptions=True)
        for stream in streams:
            await stream.aclose()


async def test_a_burst_of_requests_waits_for_connections(
    client: httpx.AsyncClient, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, bolt = two_tenants
    acme_token, bolt_token = (
        await token_for(acme, "dispatcher"),
        await token_for(bolt, "dispatcher"),
    )
    pool = get_redis().connection_pool
    # Every connection taken for a moment, as by a burst: the requests wait, then run.
    held = [await pool.get_connection() for _ in range(pool.max_connections)]

    async def give_back_soon() -> None:
        await asyncio.sleep(0.3)
        for connection in held:
            await pool.release(connection)

    *acme_answers, bolt_answer, _ = await asyncio.gather(
        *[_ask(client, acme, acme_token) for _ in range(50)],
        _ask(client, bolt, bolt_token),
        give_back_soon(),
    )
    assert bolt_answer.status_code == 200, bolt_answer.text
    assert {answer.status_code for answer in acme_answers} == {200}


async def test_no_connection_within_the_wait_is_a_503_with_retry_after(
    client: httpx.AsyncClient,
    two_tenants: tuple[TenantInfo, TenantInfo],
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, bolt = two_tenants
    bolt_token = await token_for(bolt, "dispatcher")
    pool = get_redis().connection_pool
    held = [await pool.get_connection() for _ in range(pool.max_connections)]
    try:
        with caplog.at_level(logging.INFO):
            answer = await _ask(client, bolt, bolt_token)
            sign_in = await client.post(
                "/auth/sign-in",
                json={"email": "ann@example.com", "password": "wrong password"},
                headers={"X-Tenant": bolt.slug},
            )
    finally:
        for connection in held:
            await pool.release(connection)
    assert answer.status_code == 503, answer.text
    assert answer.headers["Retry-After"] == "2"
    assert answer.json()["errors"][0]["extensions"]["code"] == "unavailable"
    # Any other door: the same 503, in its own error shape.
    assert sign_in.status_code == 503, sign_in.text
    assert sign_in.headers["Retry-After"] == "2"
    assert sign_in.json()["error"]["code"] == "unavailable"
    assert "Traceback" not in answer.text + sign_in.text
    ours = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(ours) == 2, [r.getMessage() for r in ours]  # one line per request
    assert all(r.exc_info is None and "RedisBusy" in r.getMessage() for r in ours)
    # And once the connections are back, the same request runs.
    assert (await _ask(client, bolt, bolt_token)).status_code == 200

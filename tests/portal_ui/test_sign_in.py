"""The portal's sign-in endpoints over HTTP: same answer for anyone, 429s, a token at the end."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable

import dramatiq
import httpx
import pytest

from patone.app import create_app
from patone.core.common.permissions import SYSTEM
from patone.core.domain import customers
from patone.core.identity.tokens import TENANT_AUDIENCE, Kind, verify_token
from patone.plugins import config as plugins
from patone.settings import load_settings
from patone.tenants.registry import TenantInfo
from tests.conftest import MakePlan, MakeTenant
from tests.core.notifications.conftest import enable_providers
from tests.fakes import SmtpFake, TwilioFake

SECRET = "portal-sign-in-secret"
PHONE = "+14155552671"
Client = Callable[[TenantInfo], httpx.AsyncClient]


@pytest.fixture
async def client_for() -> AsyncIterator[Client]:
    app = create_app(load_settings(secret_key=SECRET, base_domain="patone.test"))
    opened: list[httpx.AsyncClient] = []

    def open_for(tenant: TenantInfo) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=("203.0.113.5", 4000))
        client = httpx.AsyncClient(
            transport=transport, base_url=f"http://{tenant.slug}.patone.test"
        )
        opened.append(client)
        return client

    yield open_for
    for client in opened:
        await client.aclose()


async def test_known_and_unknown_addresses_get_the_same_answer(
    two_tenants: tuple[TenantInfo, TenantInfo],
    runtime: plugins.PluginRuntime,
    broker: dramatiq.Broker,
    client_for: Client,
) -> None:
    acme, bolt = two_tenants
    await customers.create_customer(acme, SYSTEM, {"name": "Ann", "email": "ann@example.com"})
    answers = [
        await client_for(tenant).post("/portal/auth/request", json={"email": "ann@example.com"})
        for tenant in (acme, bolt)
    ]
    answers.append(
        await client_for(acme).post("/portal/auth/request", json={"email": "nobody@example.com"})
    )
    assert {a.status_code for a in answers} == {202}
    assert len({a.text for a in answers}) == 1
    assert answers[0].headers["x-content-type-options"] == "nosniff"


async def test_a_texted_code_becomes_a_customer_token(
    two_tenants: tuple[TenantInfo, TenantInfo],
    runtime: plugins.PluginRuntime,
    broker: dramatiq.Broker,
    twilio: TwilioFake,
    smtp: SmtpFake,
    client_for: Client,
) -> None:
    acme, bolt = two_tenants
    await enable_providers(acme, twilio, smtp)
    customer = await customers.create_customer(acme, SYSTEM, {"name": "Ann", "phone": PHONE})
    client = client_for(acme)
    asked = await client.post("/portal/auth/request", json={"phone": PHONE})
    assert asked.status_code == 202
    for _ in range(400):
        if twilio.forms:
            break
        await asyncio.sleep(0.05)
    match = re.match(r"(\d{6}) ", twilio.forms[0]["Body"][0])
    assert match
    proof = {"phone": PHONE, "code": match.group(1)}

    elsewhere = await client_for(bolt).post("/portal/auth/verify", json=proof)
    assert elsewhere.status_code == 401 and elsewhere.json()["error"]["code"] == "invalid_code"
    signed_in = await client.post("/portal/auth/verify", json=proof)
    assert signed_in.status_code == 200 and signed_in.headers["cache-control"] == "no-store"
    body = signed_in.json()
    claims = verify_token(SECRET, body["access_token"], audience=TENANT_AUDIENCE, tenant=acme)
    assert claims.kind is Kind.customer and claims.subject == str(customer.id)
    again = await client.post("/portal/auth/verify", json=proof)
    assert again.status_code == 401


async def test_bad_input_is_a_400_naming_the_field(
    two_tenants: tuple[TenantInfo, TenantInfo], client_for: Client
) -> None:
    acme, _ = two_tenants
    client = client_for(acme)
    bad_phone = await client.post("/portal/auth/request", json={"phone": "12"})
    assert bad_phone.status_code == 400 and bad_phone.json()["error"]["field"] == "phone"
    not_json = await client.post("/portal/auth/request", content=b"phone=1")
    assert not_json.status_code == 400 and not_json.json()["error"]["code"] == "invalid"
    assert "Traceback" not in not_json.text


async def test_an_overlong_address_is_refused_before_it_is_validated(
    two_tenants: tuple[TenantInfo, TenantInfo], client_for: Client
) -> None:
    acme, _ = two_tenants
    client = client_for(acme)
    for body, field in (
        ({"email": "a" * 250 + "@example.com"}, "email"),
        ({"phone": "1" * 100}, "phone"),
    ):
        answer = await client.post("/portal/auth/request", json=body)
        assert answer.status_code == 400, answer.text
        error = answer.json()["error"]
        # The length verdict, not the address validator's: it never saw the string.
        assert (error["code"], error["field"]) == ("too_long", field)


async def test_guessing_codes_is_a_429_with_retry_after_per_account(
    make_plan: MakePlan, make_tenant: MakeTenant, client_for: Client
) -> None:
    plan = await make_plan(sign_ins_per_account_per_hour=3, sign_ins_per_ip_per_hour=100)
    acme, bolt = await make_tenant("acme", plan=plan), await make_tenant("bolt", plan=plan)
    client = client_for(acme)
    guesses = [
        await client.post("/portal/auth/verify", json={"phone": PHONE, "code": f"{n:06d}"})
        for n in range(5)
    ]
    assert [g.status_code for g in guesses] == [401, 401, 401, 429, 429]
    limited = guesses[-1]
    assert 1 <= int(limited.headers["retry-after"]) <= 3600
    error = limited.json()["error"]
    assert error["code"] == "rate_limited" and error["retry_after"] == int(
        limited.headers["retry-after"]
    )
    assert error["request_id"] == limited.headers["x-request-id"]
    # Another phone from the same address, and the same phone on Bolt, are not blocked.
    other = await client.post("/portal/auth/verify", json={"phone": "+14155550100", "code": "1"})
    assert other.status_code == 401
    theirs = await client_for(bolt).post("/portal/auth/verify", json={"phone": PHONE, "code": "1"})
    assert theirs.status_code == 401

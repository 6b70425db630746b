"""Customers sign in with an emailed link or a texted code: once, in time, on their company only.

Real worker, real plugins, the SMTP and Twilio fakes; two companies in every test.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import dramatiq
import pytest

from patone.core.common.permissions import SYSTEM
from patone.core.domain import customers
from patone.core.identity import customer_sign_in
from patone.core.identity.customer_sign_in import SignInFailed
from patone.core.identity.ratelimits import RateLimited
from patone.core.identity.tokens import TENANT_AUDIENCE, InvalidToken, Kind, verify_token
from patone.core.runtime.clock import use_clock
from patone.core.runtime.db import engine
from patone.core.runtime.errors import ValidationFailed
from patone.plugins import config as plugins
from patone.tenants.isolation import tenant_transaction
from patone.tenants.registry import TenantInfo
from tests.conftest import MakePlan, MakeTenant
from tests.core.notifications.conftest import enable_providers
from tests.fakes import SmtpFake, TwilioFake
from tests.support import running_worker

SECRET = "customer-sign-in-secret"
IP = "203.0.113.20"
PHONE = "+14155552671"
EMAIL = "ann@example.com"


@pytest.fixture
async def companies(
    two_tenants: tuple[TenantInfo, TenantInfo],
    runtime: plugins.PluginRuntime,
    twilio: TwilioFake,
    smtp: SmtpFake,
) -> tuple[TenantInfo, TenantInfo]:
    """Acme and Bolt, both with SMS and email providers and a customer with the same phone."""
    for tenant in two_tenants:
        await enable_providers(tenant, twilio, smtp)
    await customers.create_customer(
        two_tenants[0], SYSTEM, {"name": "Ann Lee", "phone": PHONE, "email": EMAIL}
    )
    await customers.create_customer(two_tenants[1], SYSTEM, {"name": "Ann Bolt", "phone": PHONE})
    return two_tenants


async def _wait_for(found: Any, seconds: float = 20) -> Any:
    for _ in range(int(seconds * 20)):
        value = found()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError("nothing arrived")


async def _texted_code(twilio: TwilioFake, count: int = 1) -> str:
    forms = await _wait_for(lambda: twilio.forms if len(twilio.forms) >= count else None)
    match = re.match(r"(\d{6}) is your .* sign-in code", forms[count - 1]["Body"][0])
    assert match, forms[count - 1]["Body"]
    return match.group(1)


async def _emailed_token(smtp: SmtpFake, tenant: TenantInfo) -> str:
    [message] = await _wait_for(lambda: smtp.messages)
    assert message["To"] == EMAIL and message["Subject"] == "Sign in to Acme Towing"
    body = message.get_payload(decode=True).decode()
    match = re.search(rf"http://{tenant.slug}\.patone\.test/portal/sign-in/([\w-]+)", body)
    assert match, body
    return match.group(1)


async def _actions(tenant: TenantInfo) -> list[tuple[str, str]]:
    async with tenant_transaction(tenant):
        rows = await engine.fetch(
            "SELECT actor_type, action FROM activity_log WHERE action LIKE 'sign_in%' ORDER BY id"
        )
    return [(r["actor_type"], r["action"]) for r in rows]


async def _stored(tenant: TenantInfo) -> list[dict[str, Any]]:
    async with tenant_transaction(tenant):
        return [dict(r) for r in await engine.fetch("SELECT * FROM customer_sign_ins")]


async def test_an_emailed_link_signs_the_customer_in_once(
    companies: tuple[TenantInfo, TenantInfo], broker: dramatiq.Broker, smtp: SmtpFake
) -> None:
    acme, bolt = companies
    await customer_sign_in.request_sign_in(acme, {"email": "Ann@example.com"}, ip=IP)
    token = await _emailed_token(smtp, acme)
    [stored] = await _stored(acme)
    assert token not in str(stored) and stored["secret_hash"] != token  # kept hashed only

    # The link of Acme means nothing on Bolt.
    with pytest.raises(SignInFailed):
        await customer_sign_in.verify_sign_in(bolt, SECRET, {"token": token}, ip=IP)
    answer = await customer_sign_in.verify_sign_in(acme, SECRET, {"token": token}, ip=IP)
    claims = verify_token(SECRET, answer.access_token, audience=TENANT_AUDIENCE, tenant=acme)
    assert claims.kind is Kind.customer and claims.subject == str(stored["customer_id"])
    assert answer.customer_id == stored["customer_id"] and answer.expires_in == 900
    with pytest.raises(InvalidToken):
        verify_token(SECRET, answer.access_token, audience=TENANT_AUDIENCE, tenant=bolt)

    with pytest.raises(SignInFailed) as again:
        await customer_sign_in.verify_sign_in(acme, SECRET, {"token": token}, ip=IP)
    assert again.value.status == 401 and again.value.field == "token"
    assert await _actions(acme) == [
        ("customer", "sign_in.requested"),
        ("customer", "sign_in"),
        ("anonymous", "sign_in.failed"),
    ]
    assert await _actions(bolt) == [("anonymous", "sign_in.failed")]


async def test_a_link_expires_after_15_minutes(
    companies: tuple[TenantInfo, TenantInfo], broker: dramatiq.Broker, smtp: SmtpFake
) -> None:
    acme, _ = companies
    await customer_sign_in.request_sign_in(acme, {"email": EMAIL}, ip=IP)
    token = await _emailed_token(smtp, acme)
    later = datetime.now(UTC) + timedelta(minutes=15, seconds=5)
    with use_clock(lambda: later), pytest.raises(SignInFailed):
        await customer_sign_in.verify_sign_in(acme, SECRET, {"token": token}, ip=IP)


async def test_a_texted_code_works_once_and_not_on_another_company(
    companies: tuple[TenantInfo, TenantInfo], broker: dramatiq.Broker, twilio: TwilioFake
) -> None:
    acme, bolt = companies
    await customer_sign_in.request_sign_in(acme, {"phone": "(415) 555-2671"}, ip=IP)
    code = await _texted_code(twilio)
    assert twilio.forms[0]["To"] == [PHONE]
    proof = {"phone": PHONE, "code": code}
    # Bolt has a customer with the same phone, but issued no code: refused there.
    with pytest.raises(SignInFailed):
        await customer_sign_in.verify_sign_in(bolt, SECRET, proof, ip=IP)
    answer = await customer_sign_in.verify_sign_in(acme, SECRET, proof, ip=IP)
    assert verify_token(SECRET, answer.access_token, audience=TENANT_AUDIENCE, tenant=acme)
    with pytest.raises(SignInFailed) as again:
        await customer_sign_in.verify_sign_in(acme, SECRET, proof, ip=IP)
    assert again.value.code == "invalid_code" and again.value.field == "code"


async def test_five_wrong_codes_void_the_code_and_a_new_one_voids_the_old(
    companies: tuple[TenantInfo, TenantInfo], broker: dramatiq.Broker, twilio: TwilioFake
) -> None:
    acme, bolt = companies
    await customer_sign_in.request_sign_in(acme, {"phone": PHONE}, ip=IP)
    code = await _texted_code(twilio)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for _ in range(5):
        with pytest.raises(SignInFailed):
            await customer_sign_in.verify_sign_in(
                acme, SECRET, {"phone": PHONE, "code": wrong}, ip=IP
            )
    with pytest.raises(SignInFailed):  # the right code, too late: the code is void
        await customer_sign_in.verify_sign_in(acme, SECRET, {"phone": PHONE, "code": code}, ip=IP)
    [void] = await _stored(acme)
    assert void["attempts"] == 5 and void["voided_at"] is not None and void["used_at"] is None

    await customer_sign_in.request_sign_in(acme, {"phone": PHONE}, ip=IP)
    first = await _texted_code(twilio, 2)
    await customer_sign_in.request_sign_in(acme, {"phone": PHONE}, ip=IP)
    second = await _texted_code(twilio, 3)
    pending = [r for r in await _stored(acme) if r["voided_at"] is None]
    assert len(pending) == 1  # sending a new code voided the one before
    if first != second:
        with pytest.raises(SignInFailed):
            await customer_sign_in.verify_sign_in(
                acme, SECRET, {"phone": PHONE, "code": first}, ip=IP
            )
    await customer_sign_in.verify_sign_in(acme, SECRET, {"phone": PHONE, "code": second}, ip=IP)
    assert ("customer", "sign_in") in await _actions(acme)
    assert await _stored(bolt) == []


async def test_a_code_expires_after_10_minutes(
    companies: tuple[TenantInfo, TenantInfo], broker: dramatiq.Broker, twilio: TwilioFake
) -> None:
    acme, _ = companies
    await customer_sign_in.request_sign_in(acme, {"phone": PHONE}, ip=IP)
    code = await _texted_code(twilio)
    later = datetime.now(UTC) + timedelta(minutes=10, seconds=5)
    with use_clock(lambda: later), pytest.raises(SignInFailed):
        await customer_sign_in.verify_sign_in(acme, SECRET, {"phone": PHONE, "code": code}, ip=IP)


async def test_unknown_addresses_get_the_same_answer_and_no_message(
    companies: tuple[TenantInfo, TenantInfo],
    broker: dramatiq.Broker,
    twilio: TwilioFake,
    smtp: SmtpFake,
) -> None:
    acme, bolt = companies
    # Ann's email is Acme's, not Bolt's: on Bolt it is an unknown address.
    assert await customer_sign_in.request_sign_in(bolt, {"email": EMAIL}, ip=IP) is None
    assert await customer_sign_in.request_sign_in(acme, {"phone": "+14155550100"}, ip=IP) is None
    for tenant in (acme, bolt):
        await _wait_for_action(tenant, "sign_in.unknown_address")
    assert smtp.messages == [] and twilio.forms == []
    assert await _stored(acme) == [] and await _stored(bolt) == []


async def _wait_for_action(tenant: TenantInfo, action: str) -> None:
    for _ in range(400):
        if ("anonymous", action) in await _actions(tenant):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{action} never logged")


async def test_bad_input_names_the_field(companies: tuple[TenantInfo, TenantInfo]) -> None:
    acme, _ = companies
    with pytest.raises(ValidationFailed) as bad:
        await customer_sign_in.request_sign_in(acme, {"phone": "not a phone"}, ip=IP)
    assert bad.value.field == "phone"
    with pytest.raises(ValidationFailed):
        await customer_sign_in.request_sign_in(acme, {"phone": PHONE, "email": EMAIL}, ip=IP)
    with pytest.raises(ValidationFailed):
        await customer_sign_in.verify_sign_in(acme, SECRET, {"phone": PHONE}, ip=IP)


async def test_requests_are_limited_per_address_and_per_ip(
    make_plan: MakePlan, make_tenant: MakeTenant, runtime: plugins.PluginRuntime
) -> None:
    plan = await make_plan(code_requests_per_address_per_hour=2, code_requests_per_ip_per_hour=4)
    acme, bolt = await make_tenant("acme", plan=plan), await make_tenant("bolt", plan=plan)
    async with running_worker() as _:
        for _ in range(2):
            await customer_sign_in.request_sign_in(acme, {"phone": PHONE}, ip=IP)
        with pytest.raises(RateLimited) as limited:
            await customer_sign_in.request_sign_in(acme, {"phone": PHONE}, ip=IP)
        assert limited.value.retry_after > 0
        # Other addresses from the same IP, up to the IP's limit.
        await customer_sign_in.request_sign_in(acme, {"email": "x@example.com"}, ip=IP)
        await customer_sign_in.request_sign_in(acme, {"email": "y@example.com"}, ip=IP)
        with pytest.raises(RateLimited):
            await customer_sign_in.request_sign_in(acme, {"email": "z@example.com"}, ip=IP)
        # Bolt's budget is its own.
        await customer_sign_in.request_sign_in(bolt, {"phone": PHONE}, ip=IP)

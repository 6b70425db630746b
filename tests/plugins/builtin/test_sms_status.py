"""Twilio's delivery reports reach the delivery log through the plugin's signed route."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from twilio.request_validator import RequestValidator

from patone.app import create_app
from patone.core.notifications import planning, sending
from patone.settings import load_settings
from patone.tenants.registry import TenantInfo
from tests.core.conftest import runtime  # noqa: F401 (fixture)
from tests.core.notifications.conftest import (
    created_event,
    enable_providers,
    log_of,
    new_request,
)
from tests.fakes import TWILIO_TOKEN, FaultPlan, SmtpFake, TwilioFake


@pytest.fixture
async def app_client() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(load_settings(secret_key="status-test", base_domain="patone.test"))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://patone.test"
    ) as client:
        yield client


async def _sms(tenant: TenantInfo) -> dict[str, Any]:
    request = await new_request(tenant)
    await planning.plan(tenant, [created_event(request, 1)])
    return next(r for r in await log_of(tenant) if r["channel"] == "sms")


def _signed(url: str, form: dict[str, str], token: str = TWILIO_TOKEN) -> dict[str, str]:
    return {"X-Twilio-Signature": RequestValidator(token).compute_signature(url, form)}


async def test_a_report_for_a_lost_answer_marks_it_sent_and_stops_the_retry(
    two_tenants: tuple[TenantInfo, TenantInfo],
    runtime: Any,  # noqa: F811
    twilio: TwilioFake,
    smtp: SmtpFake,
    app_client: httpx.AsyncClient,
) -> None:
    acme, bolt = two_tenants
    await enable_providers(acme, twilio, smtp)
    row = await _sms(acme)
    twilio.plan = FaultPlan(lose=1.0)  # Twilio queues the SMS, the answer never arrives
    with pytest.raises(sending.SendFailed):
        await sending.send_notifications(acme.slug, [row["id"]])
    [after] = [r for r in await log_of(acme) if r["id"] == row["id"]]
    assert after["status"] == "retrying" and after["ambiguous_attempts"] == 1

    our_id = sending.message_id(acme.slug, row["id"])
    url = f"http://{acme.slug}.patone.test/plugins/sms-twilio/status?n={our_id}"
    form = {"MessageSid": "SM" + "a" * 32, "MessageStatus": "sent", "AccountSid": "AC"}
    forged = await app_client.post(url, data=form, headers=_signed(url, form, "not-the-token"))
    assert forged.status_code == 403
    answered = await app_client.post(url, data=form, headers=_signed(url, form))
    assert answered.status_code == 204
    [known] = [r for r in await log_of(acme) if r["id"] == row["id"]]
    assert known["status"] == "sent" and known["provider_id"] == "SM" + "a" * 32

    # The pending retry finds it sent: Twilio is not asked again.
    twilio.plan = FaultPlan()
    assert await sending.send_notifications(acme.slug, [row["id"]]) == {row["id"]: "duplicate"}
    assert twilio.ledger.duplicates() == (0, 0) and len(twilio.forms) == 1

    delivered = {**form, "MessageStatus": "delivered"}
    assert (
        await app_client.post(url, data=delivered, headers=_signed(url, delivered))
    ).status_code == 204
    [final] = [r for r in await log_of(acme) if r["id"] == row["id"]]
    assert (final["status"], final["provider_status"]) == ("delivered", "delivered")

    # Bolt has not enabled Twilio: its address has no such route; a report naming Acme's
    # message at Bolt's address changes nothing.
    other = f"http://{bolt.slug}.patone.test/plugins/sms-twilio/status?n={our_id}"
    refused = await app_client.post(other, data=form, headers=_signed(other, form))
    assert refused.status_code == 404
    assert (await log_of(bolt)) == []


async def test_failed_delivery_reports_carry_twilios_error(
    two_tenants: tuple[TenantInfo, TenantInfo],
    runtime: Any,  # noqa: F811
    twilio: TwilioFake,
    smtp: SmtpFake,
    app_client: httpx.AsyncClient,
) -> None:
    acme, _ = two_tenants
    await enable_providers(acme, twilio, smtp)
    row = await _sms(acme)
    assert await sending.send_notifications(acme.slug, [row["id"]]) == {row["id"]: "sent"}
    [sent] = [r for r in await log_of(acme) if r["id"] == row["id"]]
    url = f"http://{acme.slug}.patone.test/plugins/sms-twilio/status"  # no id: found by SID
    form = {"MessageSid": sent["provider_id"], "MessageStatus": "undelivered", "ErrorCode": "30003"}
    assert (await app_client.post(url, data=form, headers=_signed(url, form))).status_code == 204
    [failed] = [r for r in await log_of(acme) if r["id"] == row["id"]]
    assert failed["status"] == "undelivered" and failed["error"] == "Twilio error 30003"
    strange = {**form, "MessageStatus": "teleported"}
    assert (
        await app_client.post(url, data=strange, headers=_signed(url, strange))
    ).status_code == 400

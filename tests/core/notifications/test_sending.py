"""Events become notifications that reach the providers' fakes once, or end visibly."""

from __future__ import annotations

import asyncio

import dramatiq
import pytest

from patone.core.common.permissions import SYSTEM
from patone.core.domain import service_requests
from patone.core.notifications import sending
from patone.core.runtime.db import engine
from patone.plugins.manager import DEFAULT_TIMEOUT
from patone.tenants.isolation import tenant_transaction
from patone.tenants.registry import TenantInfo
from tests.core.notifications.conftest import (
    created_event,
    enable_providers,
    log_of,
    new_driver,
    new_request,
    relay,
    settled,
)
from tests.fakes import FaultPlan, SmtpFake, TwilioFake
from tests.support import plugin_runtime


async def test_a_new_request_texts_and_emails_the_customer_of_that_company_only(
    two_tenants: tuple[TenantInfo, TenantInfo],
    broker: dramatiq.Broker,
    twilio: TwilioFake,
    smtp: SmtpFake,
) -> None:
    acme, bolt = two_tenants
    await enable_providers(acme, twilio, smtp)
    mine = await new_request(acme)
    await new_request(bolt, phone="+14155559999")
    await relay(broker, acme, bolt)

    rows = await settled(acme, count=2)
    by_channel = {r["channel"]: r for r in rows}
    assert set(by_channel) == {"sms", "email"}  # no dispatcher has an account: no push rows
    sms, mail = by_channel["sms"], by_channel["email"]
    assert sms["status"] == "sent" and sms["provider"] == "sms-twilio"
    assert sms["provider_id"].startswith("SM") and sms["address"] == "+14155552671"
    assert f"#{mine.number}" in sms["body"] and sms["attempts"] == 1
    assert mail["status"] == "sent" and mail["address"] == "ann@example.com"
    # What the providers got: one text, one email, carrying our ids.
    assert twilio.ledger.taken == {sending.message_id(acme.slug, sms["id"]): ["ok"]}
    [form] = twilio.forms
    assert form["To"] == ["+14155552671"]
    assert form["StatusCallback"] == [
        f"http://{acme.slug}.patone.test/plugins/sms-twilio/status"
        f"?n={sending.message_id(acme.slug, sms['id'])}"
    ]
    [message] = smtp.messages
    assert message["To"] == "ann@example.com" and f"#{mine.number}" in message["Subject"]
    assert message.is_multipart()  # text and HTML
    # Bolt has no SMS provider and no SMTP server: its email goes to the log, its SMS nowhere.
    theirs = {r["channel"]: r["status"] for r in await settled(bolt, count=2)}
    assert theirs == {"sms": "no_provider", "email": "logged"}
    assert all("9999" not in f["To"][0] for f in twilio.forms)


async def test_the_same_event_relayed_twice_notifies_once(
    two_tenants: tuple[TenantInfo, TenantInfo],
    broker: dramatiq.Broker,
    twilio: TwilioFake,
    smtp: SmtpFake,
) -> None:
    acme, _ = two_tenants
    await enable_providers(acme, twilio, smtp)
    await new_request(acme)
    await relay(broker, acme)
    await settled(acme, count=2)
    async with tenant_transaction(acme):  # the relay died before it committed: again
        await engine.execute("UPDATE outbox SET published_at = NULL")
    await relay(broker, acme)
    await asyncio.sleep(1.5)
    rows = await settled(acme, count=2)
    assert len(rows) == 2 and all(r["attempts"] == 1 for r in rows)
    assert twilio.ledger.duplicates() == (0, 0) and smtp.ledger.duplicates() == (0, 0)
    assert len(twilio.forms) == 1 and len(smtp.messages) == 1


async def test_assignment_notifies_the_customer_with_the_drivers_name(
    two_tenants: tuple[TenantInfo, TenantInfo],
    broker: dramatiq.Broker,
    twilio: TwilioFake,
    smtp: SmtpFake,
) -> None:
    acme, _ = two_tenants
    await enable_providers(acme, twilio, smtp)
    request = await new_request(acme)
    driver = await new_driver(acme)
    await service_requests.assign_driver(acme, SYSTEM, request.id, driver.id)
    await service_requests.transition(acme, SYSTEM, request.id, "en_route")
    await relay(broker, acme)
    rows = await settled(acme, count=5)
    texts = [r["body"] for r in rows if r["channel"] == "sms" and r["event"] != "request.created"]
    assert any("Dave Ortiz will help you" in t for t in texts)
    assert any("Dave Ortiz is on the way" in t for t in texts)
    # The driver has no device registered: the push rule for them is logged, not lost.
    driver_push = [r for r in rows if r["recipient_kind"] == "driver"]
    assert [r["status"] for r in driver_push] == ["no_address"]
    assert "device registered for push" in driver_push[0]["error"]


async def test_refusals_are_retried_and_permanent_errors_are_not(
    two_tenants: tuple[TenantInfo, TenantInfo],
    broker: dramatiq.Broker,
    twilio: TwilioFake,
    smtp: SmtpFake,
) -> None:
    acme, _ = two_tenants
    await enable_providers(acme, twilio, smtp)
    twilio.plan = FaultPlan(refuse=1.0)
    twilio.opted_out.add("+14155550000")
    await new_request(acme)
    await new_request(acme, phone="+14155550000")
    await relay(broker, acme)
    for _ in range(100):  # the first SMS is refused (503) and waits for its retry
        rows = await log_of(acme)
        if any(r["channel"] == "sms" and r["attempts"] >= 2 for r in rows):
            break
        await asyncio.sleep(0.1)
    twilio.plan = FaultPlan()  # Twilio is back
    rows = await settled(acme, count=4)
    texts = sorted((r["address"], r["status"]) for r in rows if r["channel"] == "sms")
    assert texts == [("+14155550000", "opted_out"), ("+14155552671", "sent")]
    retried = next(r for r in rows if r["address"] == "+14155552671")
    assert retried["attempts"] >= 2 and retried["ambiguous_attempts"] == 0
    assert twilio.ledger.duplicates() == (0, 0)


async def test_lost_answers_and_time_outs_are_retried_and_counted_never_silent(
    two_tenants: tuple[TenantInfo, TenantInfo],
    broker: dramatiq.Broker,
    twilio: TwilioFake,
    smtp: SmtpFake,
) -> None:
    acme, _ = two_tenants
    await enable_providers(acme, twilio, smtp)
    twilio.plan = FaultPlan(lose=1.0)
    smtp.plan = FaultPlan(timeout=1.0, stall=1.5)
    await new_request(acme)
    await relay(broker, acme)
    for _ in range(100):
        rows = await log_of(acme)
        if rows and all(r["ambiguous_attempts"] >= 1 for r in rows):
            break
        await asyncio.sleep(0.1)
    twilio.plan, smtp.plan = FaultPlan(), FaultPlan()
    rows = await settled(acme, count=2)
    assert all(r["status"] == "sent" and r["ambiguous_attempts"] >= 1 for r in rows)
    # The providers took each message more than once, every extra copy after an ambiguous
    # answer (counted by the policy), none after a clean one.
    for fake in (twilio, smtp):
        ours, ambiguous = fake.ledger.duplicates()
        assert ours == 0 and ambiguous >= 1


async def test_a_notification_whose_job_was_lost_is_sent_by_the_sweep(
    two_tenants: tuple[TenantInfo, TenantInfo],
    broker: dramatiq.Broker,
    twilio: TwilioFake,
    smtp: SmtpFake,
) -> None:
    from patone.core.notifications import planning, sweep_tenant

    acme, bolt = two_tenants
    await enable_providers(acme, twilio, smtp)
    request = await new_request(acme)
    event = created_event(request, 1)
    assert len(await planning.plan(acme, [event])) == 2  # written, but no job was queued (lost)
    assert await sweep_tenant(acme.slug) == 0  # too fresh to be called lost
    async with tenant_transaction(acme):
        await engine.execute("UPDATE notifications SET updated_at = now() - interval '20 minutes'")
    assert await sweep_tenant(acme.slug) == 2
    assert await sweep_tenant(bolt.slug) == 0
    rows = await settled(acme, count=2)
    assert {r["status"] for r in rows} == {"sent"} and len(twilio.forms) == 1


async def test_a_claim_waits_for_a_live_attempt_and_follows_the_policy_for_a_dead_one(
    two_tenants: tuple[TenantInfo, TenantInfo],
    runtime: object,
    twilio: TwilioFake,
    smtp: SmtpFake,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from patone.core.notifications import planning

    acme, _ = two_tenants
    await enable_providers(acme, twilio, smtp)
    request = await new_request(acme)
    event = created_event(request, 5)
    await planning.plan(acme, [event])
    sms = next(r for r in await log_of(acme) if r["channel"] == "sms")
    async with tenant_transaction(acme):  # another worker is sending it right now
        await engine.execute(
            "UPDATE notifications SET status = 'sending', lease_until = now() + interval '1 min' "
            "WHERE id = $1",
            sms["id"],
        )
    with pytest.raises(sending.NotificationBusy):
        await sending.send_notifications(acme.slug, [sms["id"]])
    async with tenant_transaction(acme):  # ... and died during its call
        await engine.execute(
            "UPDATE notifications SET lease_until = now() - interval '1 s' WHERE id = $1",
            sms["id"],
        )
    monkeypatch.setitem(sending.AMBIGUOUS_POLICY, "sms", "give_up")
    assert await sending.send_notifications(acme.slug, [sms["id"]]) == {sms["id"]: "unknown"}
    [after] = [r for r in await log_of(acme) if r["id"] == sms["id"]]
    assert (after["status"], after["ambiguous_attempts"]) == ("unknown", 1)
    assert twilio.forms == []  # given up: not sent again


async def test_a_bad_event_in_a_batch_holds_back_only_itself(
    two_tenants: tuple[TenantInfo, TenantInfo],
    broker: dramatiq.Broker,
    twilio: TwilioFake,
    smtp: SmtpFake,
) -> None:
    acme, bolt = two_tenants
    await enable_providers(acme, twilio, smtp)
    async with tenant_transaction(acme):  # a malformed event, committed before a good one
        await engine.execute(
            "INSERT INTO outbox (topic, entity, entity_id, payload) "
            "VALUES ('request.created', 'service_request', 'not-a-number', '{}')"
        )
    await new_request(acme)
    await new_request(bolt, phone="+14155559999")
    await relay(broker, acme, bolt)  # each company's events go out as one batch
    rows = await settled(acme, count=2)
    assert {r["status"] for r in rows} == {"sent"}  # the batch split: the good event went on
    assert len(twilio.forms) == 1 and len(smtp.messages) == 1
    assert {r["channel"]: r["status"] for r in await settled(bolt, count=2)} == {
        "sms": "no_provider",
        "email": "logged",
    }


async def test_a_batch_retries_only_what_did_not_go_out(
    two_tenants: tuple[TenantInfo, TenantInfo],
    runtime: object,
    twilio: TwilioFake,
    smtp: SmtpFake,
) -> None:
    from patone.core.notifications import planning

    acme, bolt = two_tenants
    await enable_providers(acme, twilio, smtp)
    events = []
    for n in range(3):
        request = await new_request(acme, phone=f"+1415555267{n}")
        events.append(created_event(request, 100 + n))
    ids = await planning.plan(acme, events)
    assert len(ids) == 6  # an SMS and an email for each of the three
    twilio.plan = FaultPlan(refuse=1.0)  # Twilio refuses everything for now
    with pytest.raises(sending.SendFailed, match="3 notification"):
        await sending.send_notifications(acme.slug, ids)
    statuses = {r["id"]: (r["channel"], r["status"], r["attempts"]) for r in await log_of(acme)}
    assert sorted(statuses.values()) == [("email", "sent", 1)] * 3 + [("sms", "retrying", 1)] * 3
    twilio.plan = FaultPlan()
    again = await sending.send_notifications(acme.slug, ids)  # the batch's retry
    emails = [i for i, (channel, _, _) in statuses.items() if channel == "email"]
    assert {again[i] for i in emails} == {"duplicate"}  # not sent again
    assert {again[i] for i in ids if i not in emails} == {"sent"}
    assert len(smtp.messages) == 3 and twilio.ledger.duplicates() == (0, 0)
    assert all(r["attempts"] == (2 if r["channel"] == "sms" else 1) for r in await log_of(acme))
    assert await log_of(bolt) == []


async def test_a_send_job_sees_providers_turned_on_just_before_not_a_stale_cache(
    two_tenants: tuple[TenantInfo, TenantInfo],
    runtime: object,
    twilio: TwilioFake,
    smtp: SmtpFake,
) -> None:
    from patone.core.notifications import planning
    from patone.plugins import config as plugins

    acme, bolt = two_tenants
    assert "sms-twilio" not in await plugins.enabled_plugins(acme)  # cached in this process
    stale = plugins.get_runtime().enabled_cache[plugins.enabled_cache_key(acme)]
    await enable_providers(acme, twilio, smtp)
    # Another worker process still holds the settings from before the change in its cache.
    plugins.get_runtime().enabled_cache[plugins.enabled_cache_key(acme)] = stale
    request = await new_request(acme)
    event = created_event(request, 7)
    ids = await planning.plan(acme, [event])
    assert set((await sending.send_notifications(acme.slug, ids)).values()) == {"sent"}
    assert len(twilio.forms) == 1 and len(smtp.messages) == 1  # not "no provider", not the log
    assert await log_of(bolt) == []


async def test_a_provider_change_whose_version_bump_was_lost_still_sends(
    two_tenants: tuple[TenantInfo, TenantInfo],
    runtime: object,
    twilio: TwilioFake,
    smtp: SmtpFake,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A worker's copy from before the providers were turned on, held under the version the
    change should have bumped (Redis failed just then): the send job reads the database before
    ending a message as "no provider", and says the copy was stale."""
    from patone.core.notifications import planning
    from patone.plugins import config as plugins

    acme, bolt = two_tenants
    assert "sms-twilio" not in await plugins.enabled_plugins(acme)
    stale = plugins.get_runtime().enabled_cache[plugins.enabled_cache_key(acme)]
    await enable_providers(acme, twilio, smtp)
    version = await plugins._version(acme)
    plugins.get_runtime().enabled_cache[plugins.enabled_cache_key(acme)] = (
        stale[0],
        version,
        stale[2],
    )
    request = await new_request(acme)
    ids = await planning.plan(acme, [created_event(request, 7)])
    assert set((await sending.send_notifications(acme.slug, ids)).values()) == {"sent"}
    assert len(twilio.forms) == 1 and len(smtp.messages) == 1
    assert "cached plugin settings were stale" in caplog.text
    assert await log_of(bolt) == []


def test_a_send_job_may_run_as_long_as_its_batch_is_leased_to_it() -> None:
    """A job stopped by Dramatiq's time limit while its rows are still leased would leave a
    live lease nobody holds: the limit is longer than the lease of a full batch with the
    default plugin time-out."""
    with plugin_runtime(entry_points=False, timeout=DEFAULT_TIMEOUT):
        assert sending.lease_seconds(sending.BATCH) < sending.TIME_LIMIT_MS / 1000
        assert sending.lease_seconds(1) < sending.lease_seconds(sending.BATCH)

"""SMS through the real Twilio SDK against a local fake speaking Twilio's REST wire format."""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import parse_qs

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from patone.plugins import config as plugins
from patone.plugins.types import DeliveryFailed, SmsMessage
from patone.tenants.registry import TenantInfo
from tests.conftest import actor_for
from tests.fakes import TWILIO_SID, TWILIO_TOKEN, FakeDns, TwilioFake
from tests.support import plugin_runtime

ADMIN = actor_for("admin")
SID = "AC" + "0" * 31 + "1"
TOKEN = "a-very-secret-auth-token"


@pytest.fixture
def runtime() -> Iterator[None]:
    with plugin_runtime():
        yield


def twilio_fake(server: HTTPServer, sent: list[dict[str, list[str]]]) -> None:
    """POST /2010-04-01/Accounts/{sid}/Messages.json, as Twilio answers it."""

    def create(request: Request) -> Response:
        assert request.authorization is not None
        assert (request.authorization.username, request.authorization.password) == (SID, TOKEN)
        form = parse_qs(request.get_data(as_text=True))
        if form["To"] == ["+14155550000"]:  # this recipient texted STOP
            body = {
                "code": 21610,
                "message": "Attempt to send to unsubscribed recipient",
                "status": 400,
                "more_info": "https://www.twilio.com/docs/errors/21610",
            }
            return Response(json.dumps(body), status=400, content_type="application/json")
        sent.append(form)
        body = {"sid": f"SM{len(sent):032d}", "status": "queued", "to": form["To"][0],
                "from": form["From"][0], "body": form["Body"][0], "account_sid": SID}  # fmt: skip
        return Response(json.dumps(body), status=201, content_type="application/json")

    server.expect_request(
        f"/2010-04-01/Accounts/{SID}/Messages.json", method="POST"
    ).respond_with_handler(create)


async def test_sms_goes_through_the_twilio_sdk_to_the_fake(
    two_tenants: tuple[TenantInfo, TenantInfo], httpserver: HTTPServer, runtime: None
) -> None:
    acme, bolt = two_tenants
    sent: list[dict[str, list[str]]] = []
    twilio_fake(httpserver, sent)
    state = await plugins.configure_plugin(
        acme,
        ADMIN,
        "sms-twilio",
        enabled=True,
        config={
            "account_sid": SID,
            "auth_token": TOKEN,
            "from_number": "+15005550006",
            "api_base_url": httpserver.url_for("/").rstrip("/"),
            "status_callback_url": httpserver.url_for("/sms/status"),
        },
    )
    assert state.config["auth_token"] == "********"
    answer = await plugins.call_first(
        acme, "send_sms", message=SmsMessage(to="+14155552671", body="Your truck is 5 min away")
    )
    assert answer is not None and answer.plugin == "sms-twilio"
    assert answer.value.status == "queued" and answer.value.provider_id.startswith("SM")
    [form] = sent
    assert form["To"] == ["+14155552671"] and form["From"] == ["+15005550006"]
    assert form["Body"] == ["Your truck is 5 min away"]
    assert form["StatusCallback"] == [httpserver.url_for("/sms/status")]

    stopped = await plugins.call_first(
        acme, "send_sms", message=SmsMessage(to="+14155550000", body="hello")
    )
    assert stopped is not None and stopped.value.status == "opted_out"
    assert len(sent) == 1
    # Bolt has no SMS provider: nothing answers and nothing is sent.
    assert await plugins.call_first(bolt, "send_sms", message=SmsMessage(to="+1", body="x")) is None
    assert len(sent) == 1


async def test_bad_twilio_settings_are_refused_field_by_field(
    two_tenants: tuple[TenantInfo, TenantInfo], runtime: None
) -> None:
    from patone.core.runtime.errors import ValidationFailed

    acme, _ = two_tenants
    with pytest.raises(ValidationFailed) as caught:
        await plugins.configure_plugin(
            acme,
            ADMIN,
            "sms-twilio",
            enabled=True,
            config={"account_sid": "nope", "auth_token": "short", "from_number": "12"},
        )
    assert {e.field for e in caught.value.errors} == {
        "config.account_sid",
        "config.auth_token",
        "config.from_number",
    }


async def test_each_way_of_failing_says_whether_twilio_may_have_the_message(
    two_tenants: tuple[TenantInfo, TenantInfo], runtime: None
) -> None:
    from patone.plugins.types import DeliveryFailed
    from tests.fakes import FaultPlan, TwilioFake
    from tests.test_embedded import _free_port

    acme, bolt = two_tenants
    fake = TwilioFake(SID, TOKEN).start()

    async def failure(base_url: str) -> DeliveryFailed:
        config = {"account_sid": SID, "auth_token": TOKEN, "from_number": "+15005550006",
                  "api_base_url": base_url, "timeout": 0.5}  # fmt: skip
        await plugins.configure_plugin(acme, ADMIN, "sms-twilio", enabled=True, config=config)
        answer = await plugins.call_first(
            acme, "send_sms", fall_through=False, message=SmsMessage(to="+14155552671", body="x")
        )
        assert answer is not None and isinstance(answer.exception, DeliveryFailed)
        return answer.exception

    try:
        closed = await failure(f"http://127.0.0.1:{_free_port()}")  # nobody listens
        assert "unreachable" in str(closed) and not closed.ambiguous and not closed.permanent
        fake.plan = FaultPlan(refuse=1.0)  # Twilio's 503: it did not take it
        refused = await failure(fake.url)
        assert "503" in str(refused) and not refused.ambiguous and not refused.permanent
        fake.plan = FaultPlan(lose=1.0)  # taken, and the connection dropped before the answer
        lost = await failure(fake.url)
        assert "connection lost" in str(lost) and lost.ambiguous
        fake.plan = FaultPlan(timeout=1.0, stall=1.0)  # taken, answered after our 0.5 s
        late = await failure(fake.url)
        assert "no answer in 0.5 s" in str(late) and late.ambiguous
        assert fake.ledger.calls == {"refuse": 1, "lose": 1, "timeout": 1}
        assert (
            await plugins.call_first(bolt, "send_sms", message=SmsMessage(to="+1", body="x"))
            is None
        )
    finally:
        fake.stop()


async def test_a_retired_client_is_closed_only_after_its_calls_can_have_ended(
    two_tenants: tuple[TenantInfo, TenantInfo], runtime: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    from patone.plugins.builtin import sms_twilio
    from tests.fakes import TwilioFake

    await sms_twilio.close_clients()  # the tests' loop starts with no Twilio client
    monkeypatch.setattr(sms_twilio, "CLIENTS_PER_LOOP", 1)  # one company's client per loop
    first, second = TwilioFake(SID, TOKEN).start(), TwilioFake(SID, TOKEN).start()
    try:
        for tenant, fake in zip(two_tenants, (first, second), strict=True):
            config = {"account_sid": SID, "auth_token": TOKEN, "from_number": "+15005550006",
                      "api_base_url": fake.url, "timeout": 0.5}  # fmt: skip
            await plugins.configure_plugin(tenant, ADMIN, "sms-twilio", enabled=True, config=config)
        acme, bolt = two_tenants
        sent = await plugins.call_first(acme, "send_sms", message=SmsMessage(to="+1415", body="a"))
        assert sent is not None and sent.error is None
        clients = sms_twilio._clients[asyncio.get_running_loop()]
        [acme_client] = clients.values()
        sent = await plugins.call_first(bolt, "send_sms", message=SmsMessage(to="+1415", body="b"))
        assert sent is not None and sent.error is None
        assert acme_client not in clients.values()  # retired to make room for Bolt's
        session = acme_client.http_client.session
        assert not session.closed  # a call of Acme's may still be under way
        await asyncio.sleep(1.7)  # its time-out (0.5 s) and a second of grace
        assert session.closed
        assert len(first.forms) == 1 and len(second.forms) == 1
    finally:
        await sms_twilio.close_clients()
        first.stop()
        second.stop()


async def test_twilio_is_called_at_the_checked_address_only(
    two_tenants: tuple[TenantInfo, TenantInfo],
    twilio: TwilioFake,
    dns: FakeDns,
) -> None:
    acme, bolt = two_tenants
    port = twilio.url.rsplit(":", 1)[1]
    config = {"account_sid": TWILIO_SID, "auth_token": TWILIO_TOKEN, "from_number": "+15005550006",
              "api_base_url": f"http://api.twilio.example:{port}", "timeout": 1}  # fmt: skip
    message = SmsMessage(to="+14155550100", body="on its way")
    with plugin_runtime() as runtime:  # private addresses allowed: the fake is local
        # Resolved once per request and sent there: a second look-up would find nothing.
        dns.answer("api.twilio.example", "127.0.0.1", "10.255.255.1")
        await plugins.configure_plugin(acme, ADMIN, "sms-twilio", enabled=True, config=config)
        sent = await plugins.call_first(acme, "send_sms", message=message)
        assert sent is not None and sent.error is None and len(twilio.forms) == 1
        assert dns.lookups["api.twilio.example"] == 1
        # Private addresses refused: the name was public when saved, is loopback when sending.
        runtime.allow_private_urls = False
        dns.answer("api.twilio.example", "93.184.216.34", "127.0.0.1")
        await plugins.configure_plugin(acme, ADMIN, "sms-twilio", config={"timeout": 2})
        [result] = await plugins.call_all(acme, "send_sms", message=message)
        assert result.error is not None and "(127.0.0.1, loopback)" in result.error
        assert isinstance(result.exception, DeliveryFailed) and result.exception.permanent
        assert len(twilio.forms) == 1
        assert await plugins.call_first(bolt, "send_sms", message=message) is None

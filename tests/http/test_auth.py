"""The /auth JSON endpoints through the real app, database, Redis, broker and SMTP fake."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pyotp
import pytest

from patone.app import create_app
from patone.core.identity import credentials, sessions, two_factor
from patone.core.identity.tokens import TENANT_AUDIENCE, Kind, verify_token
from patone.core.runtime.db import engine
from patone.settings import load_settings
from patone.tenants.isolation import tenant_transaction
from patone.tenants.registry import TenantInfo
from tests.conftest import MakePlan, MakeTenant, actor_for
from tests.fakes import SmtpFake
from tests.support import (
    app_client,
    enable_email,
    invite,
    plugin_runtime,
    running_worker,
    totp_code,
)

SECRET = "auth-routes-test-secret"
GOOD = "correct horse battery staple"
OTHER = "violet otter juggles lanterns"


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(SECRET) as client:
        yield client


async def post(
    client: httpx.AsyncClient, tenant: TenantInfo, path: str, body: Any, **headers: str
) -> httpx.Response:
    return await client.post(
        path, json=body, headers={"Host": f"{tenant.slug}.patone.test", **headers}
    )


def error_without_request_id(response: httpx.Response) -> dict[str, Any]:
    error = dict(response.json()["error"])
    error.pop("request_id")
    return error


async def test_setup_then_sign_in_gives_a_bearer_token_that_opens_the_api(
    client: httpx.AsyncClient, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, bolt = two_tenants
    token = await invite(acme)
    await invite(bolt)
    crossed = await post(client, bolt, "/auth/setup", {"token": token, "password": GOOD})
    assert crossed.status_code == 400 and crossed.json()["error"]["field"] == "token"
    weak = await post(client, acme, "/auth/setup", {"token": token, "password": "password1234"})
    assert weak.status_code == 400
    assert weak.json()["error"]["field"] == "password"
    assert "common" in weak.json()["error"]["message"]
    done = await post(client, acme, "/auth/setup", {"token": token, "password": GOOD})
    assert done.status_code == 200, done.text
    again = await post(client, acme, "/auth/setup", {"token": token, "password": OTHER})
    assert again.status_code == 400 and "already used" in again.json()["error"]["message"]

    signed = await post(
        client, acme, "/auth/sign-in", {"email": "ann@example.com", "password": GOOD}
    )
    assert signed.status_code == 200, signed.text
    body = signed.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 900
    assert body["must_change_password"] is False
    assert signed.headers["cache-control"] == "no-store"
    claims = verify_token(SECRET, body["access_token"], audience=TENANT_AUDIENCE, tenant=acme)
    assert claims.kind is Kind.staff and claims.tenant == acme.slug
    refreshed = await client.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
        headers={"Host": f"{acme.slug}.patone.test"},
    )
    assert (
        refreshed.status_code == 200 and refreshed.json()["refresh_token"] != body["refresh_token"]
    )
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    api = await post(client, acme, "/graphql", {"query": "{ users { email } }"}, **headers)
    assert api.status_code == 200 and api.json()["data"]["users"][0]["email"] == "ann@example.com"
    elsewhere = await post(client, bolt, "/graphql", {"query": "{ users { email } }"}, **headers)
    assert elsewhere.status_code == 401  # Acme's token on Bolt


async def test_sign_in_failures_look_the_same_and_lockout_is_a_429_with_retry_after(
    client: httpx.AsyncClient, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, bolt = two_tenants
    await credentials.complete_setup(acme, await invite(acme), GOOD)
    await credentials.complete_setup(bolt, await invite(bolt), GOOD)
    answers = []
    for email in ("ann@example.com", "nobody@example.com"):
        response = await post(client, acme, "/auth/sign-in", {"email": email, "password": OTHER})
        answers.append((response.status_code, error_without_request_id(response)))
    assert answers[0] == answers[1]
    assert answers[0] == (
        401,
        {"code": "invalid_credentials", "message": "the email or password is wrong"},
    )

    for _ in range(4):
        locked = await post(
            client, acme, "/auth/sign-in", {"email": "ann@example.com", "password": OTHER}
        )
    assert locked.status_code == 429 and locked.headers["retry-after"] == "60"
    assert locked.json()["error"]["code"] == "locked"
    refused = await post(
        client, acme, "/auth/sign-in", {"email": "ann@example.com", "password": GOOD}
    )
    assert refused.status_code == 429 and 0 < int(refused.headers["retry-after"]) <= 60
    fine = await client.post(  # API clients may name the company in X-Tenant
        "/auth/sign-in",
        json={"email": "ann@example.com", "password": GOOD},
        headers={"X-Tenant": bolt.slug},
    )
    assert fine.status_code == 200


async def test_bad_bodies_name_the_field(
    client: httpx.AsyncClient, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, _ = two_tenants
    missing = await post(client, acme, "/auth/sign-in", {"email": "ann@example.com"})
    assert missing.status_code == 400 and missing.json()["error"]["field"] == "password"
    odd = await client.post(
        "/auth/sign-in", content=b"[1", headers={"Host": f"{acme.slug}.patone.test"}
    )
    assert odd.status_code == 400 and odd.json()["error"]["code"] == "invalid_json"
    bad = await post(client, acme, "/auth/reset-password", {"email": "not an address"})
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "email"
    nowhere = await client.post("/auth/sign-in", json={"email": "a@b.c", "password": "x"})
    assert nowhere.status_code == 404 and nowhere.json()["error"]["code"] == "tenant_required"


async def test_reset_answers_202_alike_and_its_emailed_link_sets_a_new_password(
    client: httpx.AsyncClient, two_tenants: tuple[TenantInfo, TenantInfo], smtp: SmtpFake
) -> None:
    acme, bolt = two_tenants
    ann = await credentials.complete_setup(acme, await invite(acme), GOOD)
    await credentials.complete_setup(bolt, await invite(bolt), GOOD)
    browser, _ = await sessions.start(acme, ann, ip="192.0.2.1", user_agent="Laptop")
    old_sessions = {}
    for tenant in (acme, bolt):
        signed = await post(
            client, tenant, "/auth/sign-in", {"email": "ann@example.com", "password": GOOD}
        )
        old_sessions[tenant.slug] = signed.json()
    with plugin_runtime():
        await enable_email(acme, smtp, from_address="it@acme.example")
        async with running_worker():
            known = await post(client, acme, "/auth/reset-password", {"email": "ann@example.com"})
            unknown = await post(
                client, acme, "/auth/reset-password", {"email": "nobody@example.com"}
            )
            for _ in range(300):
                if smtp.messages:
                    break
                await asyncio.sleep(0.1)
    assert known.status_code == unknown.status_code == 202
    assert known.json() == unknown.json()
    [message] = smtp.messages
    assert not message.is_multipart()  # plain text: a link, no tracking HTML
    text = message.get_payload(decode=True).decode()  # type: ignore[union-attr]
    [url] = [word for word in text.split() if "/reset-password/" in word]
    token = url.rsplit("/", 1)[1]

    confirm = {"token": token, "password": "a brand new passphrase"}
    crossed = await post(client, bolt, "/auth/reset-password/confirm", confirm)
    assert crossed.status_code == 400 and crossed.json()["error"]["field"] == "token"
    assert await sessions.load(acme, browser) is not None
    done = await post(client, acme, "/auth/reset-password/confirm", confirm)
    assert done.status_code == 200, done.text
    assert await sessions.load(acme, browser) is None  # a reset signs out everywhere
    twice = await post(client, acme, "/auth/reset-password/confirm", confirm)
    assert twice.status_code == 400 and "already used" in twice.json()["error"]["message"]
    signed = await post(
        client,
        acme,
        "/auth/sign-in",
        {"email": "ann@example.com", "password": "a brand new passphrase"},
    )
    assert signed.status_code == 200
    # The reset signed Ann out of Acme everywhere; her new sign-in works at once; Bolt's Ann
    # (another account) keeps hers.
    viewer = {"query": "{ viewer { tenant } }"}
    for tenant, session, status in (
        (acme, old_sessions[acme.slug], 401),
        (acme, signed.json(), 200),
        (bolt, old_sessions[bolt.slug], 200),
    ):
        bearer = {"Authorization": f"Bearer {session['access_token']}"}
        assert (await post(client, tenant, "/graphql", viewer, **bearer)).status_code == status
    spent = await client.post(
        "/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": old_sessions[acme.slug]["refresh_token"],
        },
        headers={"Host": f"{acme.slug}.patone.test"},
    )
    assert spent.status_code == 400 and spent.json()["error"] == "invalid_grant"
    async with tenant_transaction(bolt):
        tokens = await engine.fetch("SELECT 1 FROM user_tokens WHERE purpose = 'reset'")
    assert tokens == []


async def test_changing_ones_password_needs_a_token_and_the_current_password(
    client: httpx.AsyncClient, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, _ = two_tenants
    await credentials.complete_setup(acme, await invite(acme), GOOD)
    change = {"current_password": GOOD, "password": OTHER}
    anonymous = await post(client, acme, "/auth/change-password", change)
    assert anonymous.status_code == 401
    signed = await post(
        client, acme, "/auth/sign-in", {"email": "ann@example.com", "password": GOOD}
    )
    bearer = {"Authorization": f"Bearer {signed.json()['access_token']}"}
    wrong = await post(
        client, acme, "/auth/change-password", {**change, "current_password": OTHER}, **bearer
    )
    assert wrong.status_code == 400 and wrong.json()["error"]["field"] == "current_password"
    done = await post(client, acme, "/auth/change-password", change, **bearer)
    assert done.status_code == 200, done.text
    # Every token issued before the change stops working: the client signs in again.
    stale = await post(client, acme, "/auth/change-password", change, **bearer)
    assert stale.status_code == 401
    refresh = {"grant_type": "refresh_token", "refresh_token": signed.json()["refresh_token"]}
    refused = await client.post("/oauth/token", data=refresh, headers={"X-Tenant": acme.slug})
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    again = await post(
        client, acme, "/auth/sign-in", {"email": "ann@example.com", "password": OTHER}
    )
    assert again.status_code == 200


async def enrol_by_api(
    client: httpx.AsyncClient, tenant: TenantInfo, email: str, password: str
) -> str:
    """Sign in as a user who must enrol, enrol with the restricted token; the TOTP secret."""
    first = await post(client, tenant, "/auth/sign-in", {"email": email, "password": password})
    assert first.status_code == 403, first.text
    assert first.json()["error"]["code"] == "two_factor_enrolment_required"
    bearer = {"Authorization": f"Bearer {first.json()['error']['enrolment_token']}"}
    started = await post(client, tenant, "/auth/two-factor/enrol", {}, **bearer)
    assert started.status_code == 200, started.text
    assert started.json()["qr_svg"].startswith("<svg")
    secret = started.json()["secret"]
    confirmed = await post(
        client, tenant, "/auth/two-factor/confirm", {"code": pyotp.TOTP(secret).now()}, **bearer
    )
    assert confirmed.status_code == 200, confirmed.text
    assert len(confirmed.json()["recovery_codes"]) == 10
    return secret


async def test_an_admin_invites_a_driver_who_signs_in_and_cannot_change_prices(
    client: httpx.AsyncClient, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, bolt = two_tenants
    await credentials.complete_setup(acme, await invite(acme, role="admin"), GOOD)
    secret = await enrol_by_api(client, acme, "ann@example.com", GOOD)
    signed = await post(
        client,
        acme,
        "/auth/sign-in",
        {"email": "ann@example.com", "password": GOOD, "code": totp_code(secret, 1)},
    )
    assert signed.status_code == 200, signed.text
    admin = {"Authorization": f"Bearer {signed.json()['access_token']}"}
    invite_driver = (
        'mutation { createUser(input: {email: "dave@example.com", name: "Dave Ortiz", '
        'role: "driver"}) { user { id email mustChangePassword } setupLink '
        "userErrors { field message } } }"
    )
    with plugin_runtime():
        created = await post(client, acme, "/graphql", {"query": invite_driver}, **admin)
    payload = created.json()["data"]["createUser"]
    assert payload["userErrors"] == [] and payload["user"]["email"] == "dave@example.com"
    link = payload["setupLink"]
    assert link.startswith(f"http://{acme.slug}.patone.test/setup/")
    driver_password = "tow truck on the ring road"
    setup = await post(
        client, acme, "/auth/setup", {"token": link.rsplit("/", 1)[1], "password": driver_password}
    )
    assert setup.status_code == 200, setup.text

    flag = (
        "mutation($id: ID!) { updateUser(id: $id, input: {mustChangePassword: true}) "
        "{ user { mustChangePassword } userErrors { message } } }"
    )
    flagged = await post(
        client, acme, "/graphql",
        {"query": flag, "variables": {"id": payload["user"]["id"]}}, **admin,
    )  # fmt: skip
    assert flagged.json()["data"]["updateUser"]["user"]["mustChangePassword"] is True

    flagged_sign_in = await post(
        client, acme, "/auth/sign-in", {"email": "dave@example.com", "password": driver_password}
    )
    assert flagged_sign_in.status_code == 403
    assert flagged_sign_in.json()["error"]["code"] == "password_change_required"
    restricted = flagged_sign_in.json()["error"]["password_change_token"]
    api = await post(
        client, acme, "/graphql", {"query": "{ users { email } }"},
        Authorization=f"Bearer {restricted}",
    )  # fmt: skip
    assert api.status_code == 401  # the restricted token opens nothing but the password change
    new_password = "ring road tow truck at dawn"
    changed = await post(
        client, acme, "/auth/change-password",
        {"current_password": driver_password, "password": new_password},
        Authorization=f"Bearer {restricted}",
    )  # fmt: skip
    assert changed.status_code == 200, changed.text
    dave = await post(
        client, acme, "/auth/sign-in", {"email": "dave@example.com", "password": new_password}
    )
    assert dave.status_code == 200 and dave.json()["must_change_password"] is False
    prices = (
        'mutation { updateServiceType(code: "jump_start", input: {basePrice: 1}) '
        "{ serviceType { basePrice } userErrors { code message } } }"
    )
    refused = await post(
        client, acme, "/graphql", {"query": prices},
        Authorization=f"Bearer {dave.json()['access_token']}",
    )  # fmt: skip
    answer = refused.json()["data"]["updateServiceType"]
    assert answer["serviceType"] is None
    assert answer["userErrors"][0]["code"] == "forbidden"
    assert "service_types.manage" in answer["userErrors"][0]["message"]
    nobody = await post(
        client, bolt, "/auth/sign-in", {"email": "dave@example.com", "password": new_password}
    )
    assert nobody.status_code == 401


async def test_two_factor_at_sign_in_over_json(
    client: httpx.AsyncClient, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, bolt = two_tenants
    await credentials.complete_setup(acme, await invite(acme, role="admin"), GOOD)
    await credentials.complete_setup(bolt, await invite(bolt, role="admin"), GOOD)
    await two_factor.set_required_roles(bolt, actor_for("admin"), [])

    enrolling = await post(
        client, acme, "/auth/sign-in", {"email": "ann@example.com", "password": GOOD}
    )
    restricted = {"Authorization": f"Bearer {enrolling.json()['error']['enrolment_token']}"}
    for path in ("/graphql", "/auth/change-password"):
        body = {"query": "{ users { email } }"} if path == "/graphql" else {
            "current_password": GOOD, "password": OTHER,
        }  # fmt: skip
        refused = await post(client, acme, path, body, **restricted)
        assert refused.status_code == 401, (path, refused.text)
    secret = await enrol_by_api(client, acme, "ann@example.com", GOOD)

    no_code = await post(
        client, acme, "/auth/sign-in", {"email": "ann@example.com", "password": GOOD}
    )
    assert no_code.status_code == 401
    assert {k: v for k, v in error_without_request_id(no_code).items() if k != "message"} == {
        "code": "two_factor_required",
        "field": "code",
    }
    wrong_password = await post(
        client, acme, "/auth/sign-in", {"email": "ann@example.com", "password": OTHER}
    )
    assert wrong_password.json()["error"]["code"] == "invalid_credentials"  # no hint of 2FA
    wrong = await post(
        client,
        acme,
        "/auth/sign-in",
        {"email": "ann@example.com", "password": GOOD, "code": "000000"},
    )
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_code"
    signed = await post(
        client,
        acme,
        "/auth/sign-in",
        {"email": "ann@example.com", "password": GOOD, "code": totp_code(secret, 1)},
    )
    assert signed.status_code == 200 and signed.json()["access_token"]
    # Bolt requires no role to use two-factor: its admin signs in with the password alone.
    bolt_admin = await post(
        client, bolt, "/auth/sign-in", {"email": "ann@example.com", "password": GOOD}
    )
    assert bolt_admin.status_code == 200, bolt_admin.text


async def test_sign_in_and_link_use_are_rate_limited_with_retry_after(
    client: httpx.AsyncClient, make_plan: MakePlan, make_tenant: MakeTenant
) -> None:
    plan = await make_plan(sign_ins_per_ip_per_hour=100, sign_ins_per_account_per_hour=2)
    acme = await make_tenant("acme", plan=plan)
    bolt = await make_tenant("bolt", plan=plan)
    await credentials.complete_setup(acme, await invite(acme), GOOD)
    await credentials.complete_setup(bolt, await invite(bolt), GOOD)
    attempt = {"email": "ann@example.com", "password": OTHER}
    answers = [await post(client, acme, "/auth/sign-in", attempt) for _ in range(3)]
    assert [a.status_code for a in answers] == [401, 401, 429]
    assert answers[2].json()["error"]["code"] == "rate_limited"
    assert 0 < int(answers[2].headers["retry-after"]) <= 3600
    right = await post(client, acme, "/auth/sign-in", {**attempt, "password": GOOD})
    assert right.status_code == 429
    elsewhere = await post(client, bolt, "/auth/sign-in", {**attempt, "password": GOOD})
    assert elsewhere.status_code == 200
    guesses = [
        await post(client, acme, "/auth/setup", {"token": "x" * 43, "password": GOOD})
        for _ in range(3)
    ]
    assert [g.status_code for g in guesses] == [400, 400, 429]


async def test_a_password_change_over_json_ends_the_users_sessions(
    client: httpx.AsyncClient, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, bolt = two_tenants
    ann = await credentials.complete_setup(acme, await invite(acme), GOOD)
    bolt_ann = await credentials.complete_setup(bolt, await invite(bolt), GOOD)
    browser, _ = await sessions.start(acme, ann, ip="192.0.2.1", user_agent="Laptop")
    elsewhere, _ = await sessions.start(bolt, bolt_ann, ip="192.0.2.1", user_agent="Laptop")
    signed = await post(
        client, acme, "/auth/sign-in", {"email": "ann@example.com", "password": GOOD}
    )
    changed = await post(
        client, acme, "/auth/change-password", {"current_password": GOOD, "password": OTHER},
        Authorization=f"Bearer {signed.json()['access_token']}",
    )  # fmt: skip
    assert changed.status_code == 200
    assert await sessions.load(acme, browser) is None
    assert await sessions.load(bolt, elsewhere) is not None


async def test_overlong_fields_are_refused_by_name_before_anything_checks_them(
    client: httpx.AsyncClient, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, _ = two_tenants
    long_email = "a" * 250 + "@example.com"
    cases = [
        ("/auth/sign-in", {"email": long_email, "password": GOOD}, "email"),
        ("/auth/sign-in", {"email": "ann@example.com", "password": "p" * 300}, "password"),
        ("/auth/reset-password", {"email": long_email}, "email"),
        ("/auth/setup", {"token": "t" * 40, "password": "p" * 300}, "password"),
    ]
    for path, body, field in cases:
        answer = await post(client, acme, path, body)
        assert answer.status_code == 400, answer.text
        error = answer.json()["error"]
        # "too_long", not the email validator's or the password policy's verdict: neither ran.
        assert (error["code"], error["field"]) == ("too_long", field), (path, error)


async def test_reset_requests_are_limited_per_address_alike_for_known_and_unknown(
    client: httpx.AsyncClient, two_tenants: tuple[TenantInfo, TenantInfo], smtp: SmtpFake
) -> None:
    acme, bolt = two_tenants
    await credentials.complete_setup(acme, await invite(acme), GOOD)
    await credentials.complete_setup(bolt, await invite(bolt), GOOD)
    with plugin_runtime():
        await enable_email(acme, smtp, from_address="it@acme.example")
        async with running_worker():
            known = [
                await post(client, acme, "/auth/reset-password", {"email": "ann@example.com"})
                for _ in range(7)
            ]
            unknown = [
                await post(client, acme, "/auth/reset-password", {"email": "nobody@example.com"})
                for _ in range(7)
            ]
            elsewhere = await post(
                client, bolt, "/auth/reset-password", {"email": "ann@example.com"}
            )
            for _ in range(300):
                if len(smtp.messages) >= 5:
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(1)
    # The plan's code limit per address (5 an hour): the same answers whether or not the
    # address has an account, so the limit tells nobody who has one.
    assert [r.status_code for r in known] == [202] * 5 + [429] * 2
    assert [r.status_code for r in unknown] == [r.status_code for r in known]
    assert known[-1].json()["error"]["code"] == "rate_limited"
    assert int(known[-1].headers["Retry-After"]) > 0
    assert elsewhere.status_code == 202  # another company's counters are its own
    assert len(smtp.messages) == 5  # and Ann's last link was not voided by more requests


async def test_guessing_from_one_address_never_locks_the_owner_out_from_another(
    two_tenants: tuple[TenantInfo, TenantInfo], smtp: SmtpFake
) -> None:
    acme, bolt = two_tenants
    await credentials.complete_setup(acme, await invite(acme, role="admin"), GOOD)
    await credentials.complete_setup(bolt, await invite(bolt, role="manager"), GOOD)
    app = create_app(load_settings(secret_key=SECRET, base_domain="patone.test"))

    def from_address(ip: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=(ip, 4000))
        return httpx.AsyncClient(transport=transport, base_url="http://patone.test")

    async with from_address("203.0.113.5") as home:
        secret = await enrol_by_api(home, acme, "ann@example.com", GOOD)
    with plugin_runtime():
        await enable_email(acme, smtp, from_address="it@acme.example")
        async with (
            running_worker(),
            from_address("198.51.100.66") as attacker,
            from_address("192.0.2.44") as travelling,
        ):
            guesses = {}
            for email in ("ann@example.com", "nobody@example.com"):
                guesses[email] = [
                    (
                        await post(
                            attacker, acme, "/auth/sign-in", {"email": email, "password": OTHER}
                        )
                    ).status_code
                    for _ in range(21)
                ]
            # From the guessing address: four tries, then a wait. Even the right password and
            # code wait there (a guess during the wait teaches nothing), and an account that
            # does not exist is treated exactly the same.
            assert guesses["ann@example.com"] == [401] * 4 + [429] * 17
            assert guesses["nobody@example.com"] == guesses["ann@example.com"]
            fresh = {"email": "ann@example.com", "password": GOOD, "code": totp_code(secret, 1)}
            assert (await post(attacker, acme, "/auth/sign-in", fresh)).status_code == 429
            # From anywhere else the owner signs in with the password and the code.
            signed = await post(travelling, acme, "/auth/sign-in", fresh)
            assert signed.status_code == 200, signed.text
            for _ in range(300):
                if smtp.messages:
                    break
                await asyncio.sleep(0.1)
            # Bolt's Ann, another person, heard nothing and signs in from the guessing address.
            other = {"email": "ann@example.com", "password": GOOD}
            assert (await post(attacker, bolt, "/auth/sign-in", other)).status_code == 200
    # The owner is told: an email and an entry in the company's activity log.
    [message] = smtp.messages
    assert message["To"] == "ann@example.com"
    text = message.get_payload(decode=True).decode()  # type: ignore[union-attr]
    assert "198.51.100.66" in text and "192.0.2.44" in text
    async with tenant_transaction(acme):
        rows = await engine.fetch(
            "SELECT after FROM activity_log WHERE action = 'user.sign_in_after_failures'"
        )
    [after] = [json.loads(row["after"]) for row in rows]
    # Five wrong passwords: the fifth locked the address (the rest were refused unchecked).
    assert after["ip"] == "192.0.2.44" and after["failed_from"] == {"198.51.100.66": 5}

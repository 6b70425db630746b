"""Signing in and choosing passwords through the staff pages, on two companies."""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest

from patone.core.common import activity
from patone.core.common.permissions import SYSTEM
from patone.core.identity import credentials, sessions, users
from patone.tenants.registry import TenantInfo
from tests.admin_ui.conftest import BASE_DOMAIN, Browser, start_session
from tests.admin_ui.test_guard import form_token, set_cookie_headers
from tests.fakes import SmtpFake
from tests.support import enable_email, invite, plugin_runtime, running_worker

GOOD = "correct horse battery staple"
NEW = "violet otter juggles lanterns"


async def member(tenant: TenantInfo, email: str = "ann@example.com", role: str = "manager") -> int:
    """A staff member who has chosen the password GOOD."""
    return await credentials.complete_setup(tenant, await invite(tenant, email, role), GOOD)


async def sign_in(
    client: httpx.AsyncClient, email: str, password: str, next_page: str = ""
) -> httpx.Response:
    page = await client.get("/admin/sign-in" + (f"?next={next_page}" if next_page else ""))
    data = {"csrf_token": form_token(page), "email": email, "password": password}
    if next_page:
        data["next"] = next_page
    return await client.post("/admin/sign-in", data=data)


def field_error(page: httpx.Response, field: str) -> str:
    match = re.search(rf'<p class="error" id="{field}-error">([^<]*)</p>', page.text)
    assert match, page.text
    return match.group(1)


async def test_signing_in_opens_a_session_with_a_safe_cookie(
    two_tenants: tuple[TenantInfo, TenantInfo], browser: Browser
) -> None:
    acme, bolt = two_tenants
    ann = await member(acme)
    await member(bolt)
    for scheme, secure in (("http", False), ("https", True)):
        client = await browser(acme, scheme=scheme)
        response = await sign_in(client, "Ann@Example.com", GOOD, "/admin/account/sessions")
        assert response.status_code == 303
        assert response.headers["location"] == "/admin/account/sessions"
        (cookie,) = set_cookie_headers(response, sessions.COOKIE_NAME)
        flags = {part.strip().lower() for part in cookie.split(";")[1:]}
        assert {"httponly", "samesite=lax", "path=/"} <= flags
        assert ("secure" in flags) is secure
        assert not any(flag.startswith(("domain", "max-age", "expires")) for flag in flags)
    listed = await sessions.list_sessions(acme, ann)
    assert len(listed) == 2
    assert {(s.ip, s.user_agent) for s in listed} == {("198.51.100.7", "TestBrowser/1.0")}
    log, _ = await activity.list_activity(acme, SYSTEM, entity="user", entity_id=str(ann))
    actions = [row.action for row in log]
    assert actions.count("user.signed_in") == 2 and actions.count("session.started") == 2


async def test_sign_in_form_needs_its_double_submit_token(
    two_tenants: tuple[TenantInfo, TenantInfo], browser: Browser
) -> None:
    acme, bolt = two_tenants
    ann = await member(acme)
    client = await browser(acme)
    page = await client.get("/admin/sign-in")
    (cookie,) = set_cookie_headers(page, "patone_csrf")
    assert {"httponly", "samesite=lax", "path=/"} <= {p.strip().lower() for p in cookie.split(";")}
    token = form_token(page)
    assert client.cookies["patone_csrf"] == token
    assert not set_cookie_headers(await client.get("/admin/sign-in"), "patone_csrf")  # kept

    bolt_client = await browser(bolt)
    bolt_token = form_token(await bolt_client.get("/admin/sign-in"))
    credentials_given = {"email": "ann@example.com", "password": GOOD}
    refused = [
        await client.post("/admin/sign-in", data=credentials_given),
        await client.post("/admin/sign-in", data={**credentials_given, "csrf_token": "x.y"}),
        # A pair from another company's page, planted as cookie and field: not ours for acme.
        await (await browser(acme)).post(
            "/admin/sign-in",
            data={**credentials_given, "csrf_token": bolt_token},
            headers={"Cookie": f"patone_csrf={bolt_token}"},
        ),
        # The field alone, from a browser that never got the cookie.
        await (await browser(acme)).post(
            "/admin/sign-in", data={**credentials_given, "csrf_token": token}
        ),
    ]
    for response in refused:
        assert response.status_code == 403
        assert not set_cookie_headers(response, sessions.COOKIE_NAME)
    assert await sessions.list_sessions(acme, ann) == []
    log, _ = await activity.list_activity(acme, SYSTEM, entity="user", entity_id=str(ann))
    assert not [row for row in log if row.action.startswith(("user.sign", "session."))]


async def test_wrong_password_and_unknown_address_get_the_same_page(
    two_tenants: tuple[TenantInfo, TenantInfo], browser: Browser
) -> None:
    acme, _ = two_tenants
    await member(acme)
    client = await browser(acme)
    wrong = await sign_in(client, "ann@example.com", "not the password at all")
    unknown = await sign_in(client, "nobody@example.com", "not the password at all")
    assert wrong.status_code == unknown.status_code == 401
    assert "The email or password is wrong." in wrong.text
    assert wrong.text.replace("ann@example.com", "X") == unknown.text.replace(
        "nobody@example.com", "X"
    )
    assert "not the password at all" not in wrong.text
    empty = await sign_in(client, "ann@example.com", "")
    assert empty.status_code == 400 and field_error(empty, "password") == "password is required"


async def test_repeated_failures_lock_the_account_with_retry_after(
    two_tenants: tuple[TenantInfo, TenantInfo], browser: Browser
) -> None:
    acme, bolt = two_tenants
    await member(acme)
    await member(bolt)
    client = await browser(acme)
    statuses = [
        (await sign_in(client, "ann@example.com", f"wrong guess {n}")).status_code
        for n in range(credentials.LOCK_AFTER)
    ]
    assert statuses == [401] * (credentials.LOCK_AFTER - 1) + [429]
    locked = await sign_in(client, "ann@example.com", GOOD)
    assert locked.status_code == 429 and int(locked.headers["retry-after"]) > 0
    assert "Too many failed sign-ins" in locked.text
    assert (await sign_in(await browser(bolt), "ann@example.com", GOOD)).status_code == 303


async def test_a_planted_session_cookie_is_ended_by_signing_in(
    two_tenants: tuple[TenantInfo, TenantInfo], browser: Browser
) -> None:
    acme, _ = two_tenants
    ann = await member(acme)
    mallory = await member(acme, "mallory@example.com")
    planted = await start_session(acme, mallory)
    client = await browser(acme)
    client.cookies.set(sessions.COOKIE_NAME, planted, domain=f"{acme.slug}.{BASE_DOMAIN}")
    # Signed in (as mallory), the sign-in page sends the browser on; sign out first.
    assert (await client.get("/admin/sign-in")).status_code == 303
    client.cookies.clear()
    client.cookies.set(sessions.COOKIE_NAME, planted, domain=f"{acme.slug}.{BASE_DOMAIN}")
    page = await client.get("/admin/")
    assert page.status_code == 200
    response = await client.post(
        "/admin/sign-in",
        data={"csrf_token": form_token(page), "email": "ann@example.com", "password": GOOD},
    )
    assert response.status_code == 303
    assert await sessions.load(acme, planted) is None
    (new_cookie,) = set_cookie_headers(response, sessions.COOKIE_NAME)
    assert planted not in new_cookie
    assert [s.user_id for s in await sessions.list_sessions(acme, ann)] == [ann]


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example", "/elsewhere"])
async def test_sign_in_never_sends_you_to_another_site(
    two_tenants: tuple[TenantInfo, TenantInfo], browser: Browser, target: str
) -> None:
    acme, _ = two_tenants
    await member(acme)
    response = await sign_in(await browser(acme), "ann@example.com", GOOD, target)
    assert response.headers["location"] == "/admin/"


async def test_a_flagged_account_must_choose_a_new_password_first(
    two_tenants: tuple[TenantInfo, TenantInfo], browser: Browser
) -> None:
    acme, bolt = two_tenants
    ann = await member(acme)
    await member(bolt)
    other_id = await start_session(acme, ann, "Old phone")
    await users.update_user(acme, SYSTEM, ann, {"must_change_password": True})
    client = await browser(acme)
    signed = await sign_in(client, "ann@example.com", GOOD, "/admin/account/sessions")
    assert signed.headers["location"] == "/admin/account/password"
    for elsewhere in ("/admin/", "/admin/account/sessions"):
        bounced = await client.get(elsewhere)
        assert bounced.headers["location"] == "/admin/account/password"
    page = await client.get("/admin/account/password")
    assert "needs a new password" in page.text
    token = form_token(page)

    weak = await client.post(
        "/admin/account/password",
        data={"csrf_token": token, "current_password": GOOD, "password": "password1234"},
    )
    assert weak.status_code == 400 and "common" in field_error(weak, "password")
    assert 'aria-describedby="password-hint password-error"' in weak.text
    wrong = await client.post(
        "/admin/account/password",
        data={"csrf_token": token, "current_password": "nope nope nope", "password": NEW},
    )
    assert field_error(wrong, "current_password") == "the current password is wrong"
    done = await client.post(
        "/admin/account/password",
        data={"csrf_token": token, "current_password": GOOD, "password": NEW},
    )
    assert done.headers["location"] == "/admin/"
    assert (await client.get("/admin/")).status_code == 200
    assert await sessions.load(acme, other_id) is None  # the old phone is signed out
    fresh = await sign_in(await browser(acme), "ann@example.com", NEW)
    assert fresh.headers["location"] == "/admin/"
    assert (await sign_in(await browser(bolt), "ann@example.com", GOOD)).status_code == 303


async def test_setup_link_page_refuses_a_weak_password_next_to_the_field(
    two_tenants: tuple[TenantInfo, TenantInfo], browser: Browser
) -> None:
    acme, bolt = two_tenants
    token = await invite(acme)
    await invite(bolt)
    client = await browser(acme)
    page = await client.get(f"/setup/{token}")
    assert page.status_code == 200
    assert "Welcome to Acme Towing" in page.text
    assert '<meta name="referrer" content="no-referrer">' in page.text
    csrf_token = form_token(page)

    weak = await client.post(
        f"/setup/{token}", data={"csrf_token": csrf_token, "password": "password1234"}
    )
    assert weak.status_code == 400
    assert "common" in field_error(weak, "password") and 'aria-invalid="true"' in weak.text
    named = await client.post(
        f"/setup/{token}", data={"csrf_token": csrf_token, "password": "ann@example.com rocks"}
    )
    assert field_error(named, "password")

    elsewhere = await browser(bolt)
    crossed = await elsewhere.post(
        f"/setup/{token}",
        data={"csrf_token": form_token(await elsewhere.get(f"/setup/{token}")), "password": GOOD},
    )
    assert crossed.status_code == 400 and "This link is not valid." in crossed.text

    done = await client.post(f"/setup/{token}", data={"csrf_token": csrf_token, "password": GOOD})
    assert done.headers["location"] == "/admin/sign-in?notice=password_set"
    assert "Your password is set" in (await client.get(done.headers["location"])).text
    again = await client.post(f"/setup/{token}", data={"csrf_token": csrf_token, "password": NEW})
    assert again.status_code == 400 and "already used" in again.text
    assert (await sign_in(client, "ann@example.com", GOOD)).status_code == 303


async def test_reset_pages_answer_alike_and_the_emailed_link_signs_out_everywhere(
    two_tenants: tuple[TenantInfo, TenantInfo], browser: Browser, smtp: SmtpFake
) -> None:
    acme, bolt = two_tenants
    ann = await member(acme)
    await member(bolt)
    old_session = await start_session(acme, ann, "Stolen laptop")
    client = await browser(acme)
    token = form_token(await client.get("/reset-password"))

    malformed = await client.post("/reset-password", data={"csrf_token": token, "email": "ann@"})
    assert malformed.status_code == 400 and field_error(malformed, "email")
    with plugin_runtime(tenant_url=f"http://{{slug}}.{BASE_DOMAIN}"):
        await enable_email(acme, smtp, from_address="it@acme.example")
        async with running_worker():
            known = await client.post(
                "/reset-password", data={"csrf_token": token, "email": "ann@example.com"}
            )
            unknown = await client.post(
                "/reset-password", data={"csrf_token": token, "email": "nobody@example.com"}
            )
            for _ in range(300):
                if smtp.messages:
                    break
                await asyncio.sleep(0.1)
    assert known.status_code == unknown.status_code == 200
    assert known.text == unknown.text and "a link to reset its" in known.text
    [message] = smtp.messages
    text = message.get_payload(decode=True).decode()  # type: ignore[union-attr]
    [url] = [word for word in text.split() if "/reset-password/" in word]
    path = httpx.URL(url).path

    page = await client.get(path)
    weak = await client.post(path, data={"csrf_token": form_token(page), "password": "qwerty"})
    assert weak.status_code == 400 and field_error(weak, "password")
    assert await sessions.load(acme, old_session) is not None  # nothing changed yet
    done = await client.post(path, data={"csrf_token": form_token(page), "password": NEW})
    assert done.headers["location"] == "/admin/sign-in?notice=password_reset"
    assert await sessions.load(acme, old_session) is None
    twice = await client.post(path, data={"csrf_token": form_token(page), "password": GOOD})
    assert twice.status_code == 400 and "already used" in twice.text
    assert (await sign_in(client, "ann@example.com", NEW)).status_code == 303
    assert (await sign_in(await browser(bolt), "ann@example.com", GOOD)).status_code == 303


async def test_the_reset_page_shows_the_wait_once_an_address_asked_too_often(
    two_tenants: tuple[TenantInfo, TenantInfo], browser: Browser
) -> None:
    acme, bolt = two_tenants
    await member(acme)
    client = await browser(acme)
    token = form_token(await client.get("/reset-password"))
    with plugin_runtime(tenant_url=f"http://{{slug}}.{BASE_DOMAIN}"):
        async with running_worker():
            answers = {
                email: [
                    await client.post("/reset-password", data={"csrf_token": token, "email": email})
                    for _ in range(6)
                ]
                for email in ("ann@example.com", "nobody@example.com")
            }
            other = await browser(bolt)
            elsewhere = await other.post(
                "/reset-password",
                data={
                    "csrf_token": form_token(await other.get("/reset-password")),
                    "email": "ann@example.com",
                },
            )
    for pages in answers.values():
        assert [page.status_code for page in pages] == [200] * 5 + [429]
        assert "Try again in" in field_error(pages[-1], "email")
        assert int(pages[-1].headers["Retry-After"]) > 0
    assert elsewhere.status_code == 200

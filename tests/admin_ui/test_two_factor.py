"""Two-factor on the staff pages: the code page and the enrolment page between password and
session, and /admin/account/two-factor; on two companies with different policies."""

from __future__ import annotations

import html
import re
from urllib.parse import unquote

import httpx

from patone.core.identity import credentials, sessions, two_factor
from patone.tenants.registry import TenantInfo
from tests.admin_ui.conftest import Browser
from tests.admin_ui.test_guard import form_token, set_cookie_headers
from tests.admin_ui.test_sign_in import GOOD, member, sign_in
from tests.conftest import MakePlan, MakeTenant, actor_for
from tests.support import totp_code, wrong_totp_code


def secret_on(page: httpx.Response) -> str:
    match = re.search(r'<code class="secret">([A-Z2-7]+)</code>', page.text)
    assert match, page.text
    return match.group(1)


def recovery_codes_on(page: httpx.Response) -> list[str]:
    return re.findall(r"<li><code>([a-z0-9-]{19})</code></li>", page.text)


async def submit(client: httpx.AsyncClient, path: str, **fields: str) -> httpx.Response:
    """Fill in the form of the page at `path` and send it."""
    page = await client.get(path)
    return await client.post(path, data={"csrf_token": form_token(page), **fields})


async def enrol_on_pages(client: httpx.AsyncClient) -> str:
    """Set up two-factor from the account page of a signed-in browser; the secret."""
    page = await client.get("/admin/account/two-factor")
    begun = await client.post(
        "/admin/account/two-factor/begin", data={"csrf_token": form_token(page)}
    )
    secret = secret_on(begun)
    done = await client.post(
        "/admin/account/two-factor/confirm",
        data={"csrf_token": form_token(begun), "code": totp_code(secret)},
    )
    assert done.status_code == 200 and len(recovery_codes_on(done)) == 10
    return secret


async def test_the_code_page_stands_between_the_password_and_the_session(
    two_tenants: tuple[TenantInfo, TenantInfo], browser: Browser
) -> None:
    acme, bolt = two_tenants
    ann = await member(acme, role="manager")
    await member(bolt, role="manager")
    setup = await browser(acme)
    await sign_in(setup, "ann@example.com", GOOD)
    secret = await enrol_on_pages(setup)

    client = await browser(acme)
    first = await sign_in(client, "ann@example.com", GOOD, "/admin/account/sessions")
    assert first.status_code == 303 and first.headers["location"] == "/admin/sign-in/code"
    assert set_cookie_headers(first, sessions.COOKIE_NAME) == []  # no session yet
    (pending,) = set_cookie_headers(first, "patone_sign_in")
    flags = {part.strip().lower() for part in pending.split(";")[1:]}
    assert {"httponly", "samesite=lax", "path=/admin/sign-in", "max-age=300"} <= flags
    assert (await client.get("/admin/")).headers["location"].startswith("/admin/sign-in")

    page = await client.get("/admin/sign-in/code")
    assert page.status_code == 200 and 'autocomplete="one-time-code"' in page.text
    no_csrf = await client.post("/admin/sign-in/code", data={"code": totp_code(secret, 1)})
    assert no_csrf.status_code == 403
    wrong = await client.post(
        "/admin/sign-in/code", data={"csrf_token": form_token(page), "code": "000000"}
    )
    assert wrong.status_code == 401 and 'id="code-error"' in wrong.text
    pending_value = client.cookies.get("patone_sign_in")
    right = await client.post(
        "/admin/sign-in/code", data={"csrf_token": form_token(page), "code": totp_code(secret, 1)}
    )
    assert right.status_code == 303 and right.headers["location"] == "/admin/account/sessions"
    assert set_cookie_headers(right, sessions.COOKIE_NAME)
    assert (await client.get("/admin/")).status_code == 200
    assert len(await sessions.list_sessions(acme, ann)) == 2

    # The pending sign-in worked once: replaying its cookie starts nothing.
    replay = await browser(acme)
    replay.cookies.set("patone_sign_in", pending_value or "", path="/admin/sign-in")
    token = form_token(await replay.get("/admin/sign-in"))
    assert (await replay.get("/admin/sign-in/code")).status_code == 303
    again = await replay.post(
        "/admin/sign-in/code", data={"csrf_token": token, "code": totp_code(secret, 1)}
    )
    assert again.status_code == 303
    assert again.headers["location"] == "/admin/sign-in?notice=expired"
    # Bolt's Ann, without two-factor, goes straight in.
    assert (await sign_in(await browser(bolt), "ann@example.com", GOOD)).headers[
        "location"
    ] == "/admin/"


async def test_an_admin_without_two_factor_enrols_before_reaching_anything(
    two_tenants: tuple[TenantInfo, TenantInfo], browser: Browser
) -> None:
    acme, bolt = two_tenants
    ann = await member(acme, role="admin")
    await member(bolt, role="admin")
    await two_factor.set_required_roles(bolt, actor_for("admin"), [])

    client = await browser(acme)
    first = await sign_in(client, "ann@example.com", GOOD, "/admin/account/sessions")
    assert first.headers["location"] == "/admin/sign-in/two-factor"
    assert (await client.get("/admin/")).headers["location"].startswith("/admin/sign-in")
    assert (await client.get("/admin/account/two-factor")).status_code == 303
    page = await client.get("/admin/sign-in/two-factor")
    assert page.status_code == 200 and "<svg" in page.text and "requires two-factor" in page.text
    secret = secret_on(page)
    assert secret_on(await client.get("/admin/sign-in/two-factor")) == secret  # a reload
    wrong = await client.post(
        "/admin/sign-in/two-factor", data={"csrf_token": form_token(page), "code": "000000"}
    )
    assert wrong.status_code == 400 and secret_on(wrong) == secret
    assert not (await two_factor.status(acme, ann)).enabled
    done = await client.post(
        "/admin/sign-in/two-factor",
        data={"csrf_token": form_token(page), "code": totp_code(secret)},
    )
    assert done.status_code == 200
    codes = recovery_codes_on(done)
    assert len(codes) == 10 and 'href="/admin/account/sessions"' in done.text
    assert set_cookie_headers(done, sessions.COOKIE_NAME)
    assert (await client.get("/admin/")).status_code == 200
    status = await client.get("/admin/account/two-factor")
    assert "<strong>on</strong>" in status.text and not recovery_codes_on(status)
    assert "stays on" in status.text  # the role requires it: no way to switch it off

    # Next time: the code page; a recovery code works once.
    later = await browser(acme)
    assert (await sign_in(later, "ann@example.com", GOOD)).headers["location"] == (
        "/admin/sign-in/code"
    )
    used = await submit(later, "/admin/sign-in/code", code=codes[0])
    assert used.status_code == 303 and used.headers["location"] == "/admin/"
    retry = await browser(acme)
    await sign_in(retry, "ann@example.com", GOOD)
    assert (await submit(retry, "/admin/sign-in/code", code=codes[0])).status_code == 401

    # Bolt requires no role: its admin goes in with the password alone.
    bolt_client = await browser(bolt)
    assert (await sign_in(bolt_client, "ann@example.com", GOOD)).headers["location"] == "/admin/"


async def test_wrong_codes_on_the_page_lead_to_the_lockout(
    two_tenants: tuple[TenantInfo, TenantInfo], browser: Browser
) -> None:
    acme, _ = two_tenants
    await member(acme, role="manager")
    setup = await browser(acme)
    await sign_in(setup, "ann@example.com", GOOD)
    secret = await enrol_on_pages(setup)
    client = await browser(acme)
    await sign_in(client, "ann@example.com", GOOD)
    answers = [
        (await submit(client, "/admin/sign-in/code", code="000000")).status_code
        for _ in range(credentials.LOCK_AFTER)
    ]
    assert answers == [401] * (credentials.LOCK_AFTER - 1) + [429]
    locked = await sign_in(client, "ann@example.com", GOOD)
    assert locked.status_code == 429 and "try again in 1 minute" in locked.text.lower()
    assert int(locked.headers["retry-after"]) <= 60
    assert (await client.get("/admin/sign-in/code")).headers["location"] == (
        "/admin/sign-in?notice=expired"
    )
    assert secret  # enrolled, yet no code got in


async def test_the_sign_in_form_is_rate_limited_and_shows_the_wait(
    make_plan: MakePlan, make_tenant: MakeTenant, browser: Browser
) -> None:
    plan = await make_plan(sign_ins_per_ip_per_hour=2, sign_ins_per_account_per_hour=50)
    acme = await make_tenant("acme", plan=plan)
    bolt = await make_tenant("bolt", plan=plan)
    await member(acme, role="manager")
    await member(bolt, role="manager")
    client = await browser(acme)
    tries = [await sign_in(client, f"x{n}@example.com", "nope nope nope") for n in range(3)]
    assert [t.status_code for t in tries] == [401, 401, 429]
    assert re.search(r"Try again in \d+ minutes?\.", tries[2].text)
    assert 0 < int(tries[2].headers["retry-after"]) <= 3600
    assert (await sign_in(client, "ann@example.com", GOOD)).status_code == 429
    assert (await sign_in(await browser(bolt), "ann@example.com", GOOD)).status_code == 303


async def test_the_account_page_regenerates_codes_and_turns_two_factor_off(
    two_tenants: tuple[TenantInfo, TenantInfo], browser: Browser
) -> None:
    acme, bolt = two_tenants
    ann = await member(acme, role="dispatcher")
    await member(bolt, role="dispatcher")
    client = await browser(acme)
    await sign_in(client, "ann@example.com", GOOD)
    off = await client.get("/admin/account/two-factor")
    assert "<strong>off</strong>" in off.text
    secret = await enrol_on_pages(client)
    page = await client.get("/admin/account/two-factor")
    assert "10 unused recovery codes" in page.text
    wrong = await client.post(
        "/admin/account/two-factor/recovery-codes",
        data={"csrf_token": form_token(page), "regenerate_code": "000000"},
    )
    assert wrong.status_code == 400 and 'id="regenerate_code-error"' in wrong.text
    fresh = await client.post(
        "/admin/account/two-factor/recovery-codes",
        data={"csrf_token": form_token(page), "regenerate_code": totp_code(secret, 1)},
    )
    assert len(recovery_codes_on(fresh)) == 10
    disabled = await client.post(
        "/admin/account/two-factor/disable",
        data={"csrf_token": form_token(page), "disable_code": recovery_codes_on(fresh)[0]},
    )
    assert disabled.headers["location"] == "/admin/account/two-factor?notice=disabled"
    assert not (await two_factor.status(acme, ann)).enabled
    bolt_page = await (await browser(bolt, session_id=None)).get("/admin/account/two-factor")
    assert bolt_page.status_code == 303  # signed out there: nothing shown


async def test_the_set_up_page_says_which_account_and_company_it_is_for(
    two_tenants: tuple[TenantInfo, TenantInfo], browser: Browser
) -> None:
    acme, bolt = two_tenants
    await member(acme, role="admin")  # must enrol at sign-in
    await member(bolt, email="bo@example.com", role="manager")

    at_sign_in = await browser(acme)
    await sign_in(at_sign_in, "ann@example.com", GOOD)
    page = await at_sign_in.get("/admin/sign-in/two-factor")
    assert "<strong>ann@example.com</strong> at <strong>Acme Towing</strong>" in page.text
    wrong = await at_sign_in.post(
        "/admin/sign-in/two-factor", data={"csrf_token": form_token(page), "code": "000000"}
    )
    assert "<strong>ann@example.com</strong>" in wrong.text

    signed_in = await browser(bolt)
    await sign_in(signed_in, "bo@example.com", GOOD)
    account = await signed_in.get("/admin/account/two-factor")
    begun = await signed_in.post(
        "/admin/account/two-factor/begin", data={"csrf_token": form_token(account)}
    )
    assert f"<strong>bo@example.com</strong> at <strong>{bolt.name}</strong>" in begun.text
    assert "ann@example.com" not in begun.text and "Acme" not in begun.text


async def test_recovery_codes_can_be_copied_and_downloaded_without_inline_script(
    two_tenants: tuple[TenantInfo, TenantInfo], browser: Browser
) -> None:
    acme, bolt = two_tenants
    await member(acme, role="manager")
    await member(bolt, role="manager")
    client = await browser(acme)
    await sign_in(client, "ann@example.com", GOOD)
    page = await client.get("/admin/account/two-factor")
    begun = await client.post(
        "/admin/account/two-factor/begin", data={"csrf_token": form_token(page)}
    )
    done = await client.post(
        "/admin/account/two-factor/confirm",
        data={"csrf_token": form_token(begun), "code": totp_code(secret_on(begun))},
    )
    codes = recovery_codes_on(done)
    assert len(codes) == 10

    link = re.search(r'<a href="(data:[^"]+)" download="([^"]+)">Download as .txt</a>', done.text)
    assert link, done.text
    assert link.group(2) == f"{acme.slug}-recovery-codes.txt"
    kind, _, body = unquote(html.unescape(link.group(1))).partition(",")
    assert kind == "data:text/plain;charset=utf-8"
    assert body.split("\n")[2:12] == codes and "Acme Towing" in body

    # The copy button is a real button, run by a script of our own host (the CSP forbids
    # inline scripts): no script text in the page.
    assert '<button type="button" id="copy-codes" data-copy="recovery-codes" hidden>' in done.text
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", done.text, re.S)
    assert scripts == [(' type="module" src="/admin/static/recovery_codes.js"', "")]
    csp = done.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "unsafe-inline" not in csp
    module = await client.get("/admin/static/recovery_codes.js")
    assert module.status_code == 200 and "javascript" in module.headers["content-type"]
    assert "navigator.clipboard.writeText" in module.text


async def test_signing_in_with_the_code_that_just_set_up_two_factor_says_to_wait(
    two_tenants: tuple[TenantInfo, TenantInfo], browser: Browser
) -> None:
    acme, bolt = two_tenants
    await member(acme, role="manager")
    await member(bolt, role="manager")
    setup = await browser(acme)
    await sign_in(setup, "ann@example.com", GOOD)
    page = await setup.get("/admin/account/two-factor")
    begun = await setup.post(
        "/admin/account/two-factor/begin", data={"csrf_token": form_token(page)}
    )
    secret = secret_on(begun)
    used = totp_code(secret)
    done = await setup.post(
        "/admin/account/two-factor/confirm", data={"csrf_token": form_token(begun), "code": used}
    )
    assert done.status_code == 200

    client = await browser(acme)
    await sign_in(client, "ann@example.com", GOOD)
    again = await submit(client, "/admin/sign-in/code", code=used)
    assert again.status_code == 401
    assert "this code was just used to set up two-factor; wait for the next code" in (
        html.unescape(again.text).lower()
    )
    wrong = await submit(client, "/admin/sign-in/code", code=wrong_totp_code(secret))
    assert wrong.status_code == 401 and "just used" not in wrong.text
    right = await submit(client, "/admin/sign-in/code", code=totp_code(secret, 1))
    assert right.status_code == 303 and right.headers["location"] == "/admin/"

"""The gate in front of the staff pages: sessions per company, cookies, CSRF, lifetimes."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx

from patone.core.common import activity
from patone.core.common.permissions import SYSTEM
from patone.core.identity import sessions, users
from patone.core.runtime.clock import use_clock
from patone.tenants.registry import TenantInfo
from tests.admin_ui.conftest import Browser, make_user, staff_app, start_session


def form_token(page: httpx.Response) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match, page.text
    return match.group(1)


def set_cookie_headers(response: httpx.Response, name: str) -> list[str]:
    return [h for h in response.headers.get_list("set-cookie") if h.startswith(name + "=")]


async def test_signed_out_visitors_go_to_sign_in_and_come_back_after(
    two_tenants: tuple[TenantInfo, TenantInfo], browser: Browser
) -> None:
    acme, _ = two_tenants
    client = await browser(acme)
    for path in ("/admin/", "/admin/account/sessions"):
        response = await client.get(path)
        assert response.status_code == 303
        assert response.headers["location"] == f"/admin/sign-in?next={path}"
    posted = await client.post("/admin/account/sessions/revoke-all", data={"csrf_token": "x"})
    assert (posted.status_code, posted.headers["location"]) == (303, "/admin/sign-in")


async def test_a_session_of_one_company_is_refused_on_another(
    two_tenants: tuple[TenantInfo, TenantInfo], browser: Browser
) -> None:
    acme, bolt = two_tenants
    acme_sam = await make_user(acme)
    await make_user(bolt)  # same email and same id in bolt
    session_id = await start_session(acme, acme_sam.id)

    at_acme = await browser(acme, session_id=session_id)
    home = await at_acme.get("/admin/")
    assert home.status_code == 200
    assert "Acme Towing" in home.text and "sam@example.com" in home.text

    at_bolt = await browser(bolt, session_id=session_id)
    refused = await at_bolt.get("/admin/")
    assert refused.status_code == 303 and refused.headers["location"].startswith("/admin/sign-in")
    # The browser is told to drop the cookie that means nothing here...
    cleared = set_cookie_headers(refused, sessions.COOKIE_NAME)
    assert cleared and "Max-Age=0" in cleared[0]
    # ...and the session itself lives on at acme.
    assert (await at_acme.get("/admin/")).status_code == 200


async def test_session_cookie_flags(
    two_tenants: tuple[TenantInfo, TenantInfo], browser: Browser
) -> None:
    acme, _ = two_tenants
    sam = await make_user(acme)
    for scheme, secure in (("http", False), ("https", True)):
        client = await browser(acme, scheme=scheme, session_id=await start_session(acme, sam.id))
        page = await client.get("/admin/")
        signed_out = await client.post("/admin/sign-out", data={"csrf_token": form_token(page)})
        assert signed_out.status_code == 303
        (cookie,) = set_cookie_headers(signed_out, sessions.COOKIE_NAME)
        flags = {part.strip().lower() for part in cookie.split(";")}
        assert {"httponly", "samesite=lax", "path=/"} <= flags
        assert ("secure" in flags) is secure
    # A setting forces Secure behind a proxy that terminates TLS.
    forced = await browser(
        acme,
        app=staff_app(session_cookie_secure=True),
        session_id=await start_session(acme, sam.id),
    )
    page = await forced.get("/admin/")
    signed_out = await forced.post("/admin/sign-out", data={"csrf_token": form_token(page)})
    assert "secure" in set_cookie_headers(signed_out, sessions.COOKIE_NAME)[0].lower()


async def test_a_form_post_without_the_csrf_token_is_refused_and_changes_nothing(
    two_tenants: tuple[TenantInfo, TenantInfo], browser: Browser
) -> None:
    acme, bolt = two_tenants
    sam = await make_user(acme)
    laptop = await start_session(acme, sam.id, "Laptop")
    phone = await start_session(acme, sam.id, "Phone")
    bolt_sam = await make_user(bolt)
    bolt_session = await start_session(bolt, bolt_sam.id)
    client = await browser(acme, session_id=laptop)
    real_token = form_token(await client.get("/admin/account/sessions"))
    wrong_token = real_token[:-1] + ("B" if real_token.endswith("A") else "A")
    phone_token = form_token(await (await browser(acme, session_id=phone)).get("/admin/"))
    bolt_token = form_token(await (await browser(bolt, session_id=bolt_session)).get("/admin/"))

    attempts = [
        {"data": {}},
        {"data": {"csrf_token": ""}},
        {"data": {"csrf_token": wrong_token}},
        {"data": {"csrf_token": phone_token}},  # another session's token, same user
        {"data": {"csrf_token": bolt_token}},
        {"files": {"upload": ("a.txt", b"x")}, "data": {}},  # multipart without the field
        {"content": b'{"csrf_token": "x"}', "headers": {"Content-Type": "application/json"}},
    ]
    for attempt in attempts:
        response = await client.post("/admin/account/sessions/revoke-all", **attempt)  # type: ignore[arg-type]
        assert response.status_code == 403, attempt
        assert "Nothing was changed" in response.text
        assert "Acme Towing" in response.text
    assert len(await sessions.list_sessions(acme, sam.id)) == 2
    log, _ = await activity.list_activity(acme, SYSTEM, entity="user", entity_id=str(sam.id))
    assert "session.revoked_all" not in [row.action for row in log]

    # A script may send the token in a header instead of a form field.
    header = await client.post(
        "/admin/account/sessions/revoke-all", headers={"X-CSRF-Token": real_token}
    )
    assert header.status_code == 303
    assert await sessions.list_sessions(acme, sam.id) == []
    assert await sessions.load(bolt, bolt_session) is not None


async def test_idle_session_expires(
    two_tenants: tuple[TenantInfo, TenantInfo], browser: Browser
) -> None:
    acme, _ = two_tenants
    sam = await make_user(acme)
    app = staff_app(session_idle_timeout=60)
    client = await browser(acme, app=app, session_id=await start_session(acme, sam.id))
    start = datetime.now(UTC)
    with use_clock(lambda: start + timedelta(seconds=50)):
        assert (await client.get("/admin/")).status_code == 200
    with use_clock(lambda: start + timedelta(seconds=100)):  # 50 s idle: the session slid
        assert (await client.get("/admin/")).status_code == 200
    with use_clock(lambda: start + timedelta(seconds=161)):  # 61 s idle
        expired = await client.get("/admin/")
    assert expired.status_code == 303 and expired.headers["location"].startswith("/admin/sign-in")
    assert await sessions.list_sessions(acme, sam.id) == []


async def test_a_deactivated_users_sessions_stop_working(
    two_tenants: tuple[TenantInfo, TenantInfo], browser: Browser
) -> None:
    acme, bolt = two_tenants
    sam = await make_user(acme)
    bolt_sam = await make_user(bolt)
    client = await browser(acme, session_id=await start_session(acme, sam.id))
    other = await start_session(acme, sam.id, "Phone")
    bolt_client = await browser(bolt, session_id=await start_session(bolt, bolt_sam.id))
    assert (await client.get("/admin/")).status_code == 200

    await users.update_user(acme, SYSTEM, sam.id, {"active": False})
    refused = await client.get("/admin/")
    assert refused.status_code == 303 and refused.headers["location"].startswith("/admin/sign-in")
    # All of them are ended, so reactivating the account does not bring them back.
    await users.update_user(acme, SYSTEM, sam.id, {"active": True})
    assert await sessions.load(acme, other) is None
    assert (await bolt_client.get("/admin/")).status_code == 200


async def test_staff_pages_need_a_company_host(browser: Browser) -> None:
    client = await browser(None)
    response = await client.get("/admin/")
    assert response.status_code == 404
    assert "your company&#39;s own address" in response.text

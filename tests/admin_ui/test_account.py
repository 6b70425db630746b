"""`/admin/account/sessions`, the home page and signing out."""

from __future__ import annotations

from patone.core.common import activity
from patone.core.common.permissions import SYSTEM
from patone.core.identity import sessions
from patone.tenants.registry import TenantInfo
from tests.admin_ui.conftest import Browser, make_user, start_session
from tests.admin_ui.test_guard import form_token


async def test_home_says_who_you_are_in_your_company(
    two_tenants: tuple[TenantInfo, TenantInfo], browser: Browser
) -> None:
    acme, bolt = two_tenants
    sam = await make_user(acme, "sam@acme.example", role="manager")
    await make_user(bolt, "kim@bolt.example")
    client = await browser(acme, session_id=await start_session(acme, sam.id))
    home = await client.get("/admin/")
    assert home.status_code == 200
    assert home.headers["cache-control"] == "no-store"
    assert "<title>Home · Acme Towing</title>" in home.text
    assert "Sam Stone" in home.text and "sam@acme.example" in home.text and "Manager" in home.text
    assert "issue" not in home.text.lower()  # the product speaks of itself, not of its issues
    assert "Bolt" not in home.text and "kim@bolt.example" not in home.text
    css = await client.get("/admin/static/admin.css")
    assert css.status_code == 200 and "text/css" in css.headers["content-type"]
    missing = await client.get("/admin/no-such-page")
    assert missing.status_code == 404 and "Page not found · Acme Towing" in missing.text


async def test_session_list_shows_each_browser_and_revokes_one(
    two_tenants: tuple[TenantInfo, TenantInfo], browser: Browser
) -> None:
    acme, bolt = two_tenants
    sam = await make_user(acme)
    laptop = await browser(acme, session_id=await start_session(acme, sam.id, "Laptop/1"))
    phone_id = await start_session(acme, sam.id, "Phone/2 <script>")
    phone = await browser(acme, session_id=phone_id)
    bolt_sam = await make_user(bolt)
    await start_session(bolt, bolt_sam.id, "BoltBrowser/9")

    assert (await laptop.get("/admin/")).status_code == 200  # last seen: the laptop, now
    page = await laptop.get("/admin/account/sessions")
    assert page.status_code == 200
    assert "Unknown browser" in page.text and "Laptop/1" in page.text  # kept, to recognise it
    assert "192.0.2.10" in page.text
    assert "Phone/2 &lt;script&gt;" in page.text and "<script>" not in page.text
    assert "BoltBrowser" not in page.text
    assert page.text.count("Sign out this session") == 1  # not offered for this browser
    assert "This browser" in page.text

    phone_key = sessions.session_key(phone_id)
    revoked = await laptop.post(
        "/admin/account/sessions/revoke",
        data={"csrf_token": form_token(page), "session": phone_key},
    )
    assert revoked.status_code == 303
    notice = await laptop.get(revoked.headers["location"])
    assert "That session is signed out." in notice.text and "Phone/2" not in notice.text
    assert (await phone.get("/admin/")).status_code == 303
    assert (await laptop.get("/admin/")).status_code == 200

    again = await laptop.post(
        "/admin/account/sessions/revoke",
        data={"csrf_token": form_token(page), "session": phone_key},
    )
    assert "already ended" in (await laptop.get(again.headers["location"])).text
    log, _ = await activity.list_activity(acme, SYSTEM, entity="user", entity_id=str(sam.id))
    revokes = [row for row in log if row.action == "session.revoked"]
    assert len(revokes) == 1 and revokes[0].actor_id == str(sam.id)


async def test_sign_out_everywhere_ends_every_session_of_the_user(
    two_tenants: tuple[TenantInfo, TenantInfo], browser: Browser
) -> None:
    acme, bolt = two_tenants
    sam = await make_user(acme)
    kim = await make_user(acme, "kim@example.com")
    laptop = await browser(acme, session_id=await start_session(acme, sam.id))
    phone = await browser(acme, session_id=await start_session(acme, sam.id, "Phone"))
    kims = await browser(acme, session_id=await start_session(acme, kim.id))
    bolt_sam = await make_user(bolt)
    bolts = await browser(bolt, session_id=await start_session(bolt, bolt_sam.id))

    page = await laptop.get("/admin/account/sessions")
    response = await laptop.post(
        "/admin/account/sessions/revoke-all", data={"csrf_token": form_token(page)}
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/admin/sign-in?notice=everywhere"
    assert "You are signed out everywhere." in (await laptop.get(response.headers["location"])).text
    for signed_out in (laptop, phone):
        assert (await signed_out.get("/admin/")).status_code == 303
    for still_in in (kims, bolts):
        assert (await still_in.get("/admin/")).status_code == 200
    assert await sessions.list_sessions(acme, sam.id) == []


async def test_sign_out_ends_this_browser_only(
    two_tenants: tuple[TenantInfo, TenantInfo], browser: Browser
) -> None:
    acme, _ = two_tenants
    sam = await make_user(acme)
    laptop = await browser(acme, session_id=await start_session(acme, sam.id))
    phone = await browser(acme, session_id=await start_session(acme, sam.id, "Phone"))
    page = await laptop.get("/admin/")
    response = await laptop.post("/admin/sign-out", data={"csrf_token": form_token(page)})
    assert response.headers["location"] == "/admin/sign-in?notice=signed_out"
    assert (await laptop.get("/admin/")).status_code == 303
    assert (await phone.get("/admin/")).status_code == 200
    log, _ = await activity.list_activity(acme, SYSTEM, entity="user", entity_id=str(sam.id))
    assert "session.signed_out" in [row.action for row in log]


CHROME_ON_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
SAFARI_ON_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1"
)


async def test_the_session_list_names_each_browser_and_system(
    two_tenants: tuple[TenantInfo, TenantInfo], browser: Browser
) -> None:
    acme, bolt = two_tenants
    sam = await make_user(acme)
    laptop = await browser(acme, session_id=await start_session(acme, sam.id, CHROME_ON_WINDOWS))
    await start_session(acme, sam.id, SAFARI_ON_IPHONE)
    bolt_sam = await make_user(bolt)
    await start_session(
        bolt, bolt_sam.id, "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Firefox/133.0"
    )

    page = await laptop.get("/admin/account/sessions")
    assert "Chrome 131 on Windows" in page.text and "Safari 17 on iOS" in page.text
    assert "Mozilla/5.0" not in page.text and "AppleWebKit" not in page.text
    assert "Firefox" not in page.text  # Bolt's session is Bolt's

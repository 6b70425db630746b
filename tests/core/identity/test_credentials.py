"""Staff credentials against the real database, Redis, SMTP fake and a real worker."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta
from email.message import Message
from typing import Any

import pytest
from argon2 import PasswordHasher, Type

from patone.core.common.permissions import SYSTEM
from patone.core.identity import credentials, users
from patone.core.identity.credentials import AccountLocked, InvalidLink, SignInFailed
from patone.core.identity.passwords import HASHER, WeakPassword
from patone.core.runtime.clock import now, use_clock
from patone.core.runtime.db import engine
from patone.tenants.isolation import tenant_transaction
from patone.tenants.registry import TenantInfo
from tests.conftest import actor_for
from tests.fakes import SmtpFake
from tests.support import enable_email, plugin_runtime, running_worker

ADMIN = actor_for("admin")
GOOD = "correct horse battery staple"
OTHER = "violet otter juggles lanterns"
IP = "203.0.113.9"


def base(tenant: TenantInfo) -> str:
    return f"http://{tenant.slug}.patone.test"


def token_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


async def invite(
    tenant: TenantInfo, email: str = "ann@example.com", name: str = "Ann Lee", role: str = "admin"
) -> credentials.Invitation:
    return await credentials.invite_user(
        tenant, ADMIN, {"email": email, "name": name, "role": role}, base_url=base(tenant)
    )


async def staff_with_password(
    tenant: TenantInfo, email: str = "ann@example.com", password: str = GOOD
) -> int:
    invitation = await invite(tenant, email)
    return await credentials.complete_setup(tenant, token_of(invitation.link.url), password)


async def user_row(tenant: TenantInfo, user_id: int) -> dict[str, Any]:
    async with tenant_transaction(tenant):
        rows = await engine.fetch("SELECT * FROM users WHERE id = $1", user_id)
    return dict(rows[0])


async def actions(tenant: TenantInfo) -> list[tuple[str, str, str]]:
    """(actor type, actor id, action) of the activity log, oldest first."""
    async with tenant_transaction(tenant):
        rows = await engine.fetch(
            "SELECT actor_type, actor_id, action FROM activity_log ORDER BY id"
        )
    return [(r["actor_type"], r["actor_id"], r["action"]) for r in rows]


def later(delta: timedelta) -> Any:
    moved = now() + delta
    return use_clock(lambda: moved)


# --- set-up links ----------------------------------------------------------------------------


async def test_a_setup_link_works_once_and_only_for_its_own_company(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, bolt = two_tenants
    mine, theirs = await invite(acme), await invite(bolt)
    assert mine.link.url.startswith(f"{base(acme)}/setup/")
    assert mine.link.expires_at - now() > timedelta(hours=71, minutes=59)
    token = token_of(mine.link.url)
    async with tenant_transaction(acme):  # only the hash is stored
        stored = await engine.fetch("SELECT token_hash FROM user_tokens")
    assert [r["token_hash"] for r in stored] == [credentials.token_hash(token)]

    with pytest.raises(InvalidLink, match="not valid") as crossed:
        await credentials.complete_setup(bolt, token, GOOD)
    assert crossed.value.field == "token"
    user_id = await credentials.complete_setup(acme, token, GOOD)
    assert user_id == mine.user["id"]
    with pytest.raises(InvalidLink, match="already used"):
        await credentials.complete_setup(acme, token, OTHER)

    signed_in = await credentials.authenticate(acme, "ANN@example.com", GOOD, ip=IP)
    assert (signed_in.user_id, signed_in.role) == (user_id, "admin")
    # Bolt's Ann has no password yet, and Bolt's log saw nothing of Acme's set-up.
    assert await credentials.has_password(bolt, "ann@example.com") is False
    with pytest.raises(SignInFailed):
        await credentials.authenticate(bolt, "ann@example.com", GOOD, ip=IP)
    assert ("user", str(user_id), "user.password_set") in await actions(acme)
    assert not any(a[2] == "user.password_set" for a in await actions(bolt))
    assert token_of(theirs.link.url) != token


async def test_a_setup_link_expires_after_72_hours_and_a_new_one_replaces_it(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, bolt = two_tenants
    first = await invite(acme)
    await invite(bolt)
    with (
        later(credentials.SETUP_TTL + timedelta(seconds=1)),
        pytest.raises(InvalidLink, match="expired"),
    ):
        await credentials.complete_setup(acme, token_of(first.link.url), GOOD)
    assert await credentials.has_password(acme, "ann@example.com") is False

    second = await credentials.issue_setup_link(acme, ADMIN, "ann@example.com", base_url=base(acme))
    with pytest.raises(InvalidLink, match="replaced"):
        await credentials.complete_setup(acme, token_of(first.link.url), GOOD)
    await credentials.complete_setup(acme, token_of(second.url), GOOD)
    assert await credentials.has_password(acme, "ann@example.com")
    assert await credentials.has_password(bolt, "ann@example.com") is False


async def test_issuing_a_setup_link_needs_users_manage_and_an_active_user(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, bolt = two_tenants
    await invite(acme)
    with pytest.raises(Exception, match=r"users\.manage"):
        await credentials.issue_setup_link(
            acme, actor_for("dispatcher"), "ann@example.com", base_url=base(acme)
        )
    with pytest.raises(Exception, match="not an active user") as missing:
        await credentials.issue_setup_link(bolt, ADMIN, "ann@example.com", base_url=base(bolt))
    assert getattr(missing.value, "field", None) == "email"


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short1!", "at least 12 characters"),
        ("Password123!", "most common passwords"),
        ("ann.lee.rocks.2026", "name or email"),
    ],
)
async def test_a_weak_password_is_refused_with_its_reason_and_nothing_changes(
    two_tenants: tuple[TenantInfo, TenantInfo], password: str, reason: str
) -> None:
    acme, bolt = two_tenants
    invitation = await invite(acme)
    token = token_of(invitation.link.url)
    before = await user_row(acme, invitation.user["id"])
    with pytest.raises(WeakPassword, match=reason) as refused:
        await credentials.complete_setup(acme, token, password)
    assert refused.value.field == "password"
    assert await user_row(acme, invitation.user["id"]) == before
    assert not any(a[2] == "user.password_set" for a in await actions(acme))
    await credentials.complete_setup(acme, token, GOOD)  # the link still works
    assert await credentials.has_password(bolt, "ann@example.com") is False


# --- sign-in ---------------------------------------------------------------------------------


async def test_every_failed_sign_in_gets_the_same_answer_in_similar_time(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, bolt = two_tenants
    await staff_with_password(acme)
    await staff_with_password(bolt, "bob@example.com")
    gone = await staff_with_password(acme, "gone@example.com")
    await users.update_user(acme, ADMIN, gone, {"active": False})
    await invite(acme, "new@example.com", "Nia New")

    attempts = {
        "wrong password": ("ann@example.com", OTHER),
        "unknown email": ("nobody@example.com", OTHER),
        "other company's user": ("bob@example.com", OTHER),
        "inactive user, right password": ("gone@example.com", GOOD),
        "no password yet": ("new@example.com", OTHER),
    }
    answers, times = set(), {}
    for case, (email, password) in attempts.items():
        spent = []
        for _ in range(3):  # under the lockout threshold
            started = time.perf_counter()
            with pytest.raises(SignInFailed) as failed:
                await credentials.authenticate(acme, email, password, ip=IP)
            spent.append(time.perf_counter() - started)
            answers.add((failed.value.status, failed.value.code, failed.value.message))
        times[case] = min(spent)
    assert answers == {(401, "invalid_credentials", "the email or password is wrong")}
    # Each answer costs one argon2 verification; none is several times quicker than another.
    assert max(times.values()) < 3 * min(times.values()), times
    failures = [a for a in await actions(acme) if a[2] == "user.sign_in_failed"]
    assert len(failures) == 15 and {a[:2] for a in failures} == {("anonymous", IP)}
    assert not any(a[2] == "user.sign_in_failed" for a in await actions(bolt))


async def test_lockout_trips_after_five_failures_and_backs_off_exponentially(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, bolt = two_tenants
    await staff_with_password(acme)
    await staff_with_password(bolt)
    start = now()
    clock = {"at": start}
    with use_clock(lambda: clock["at"]):
        for _ in range(4):
            with pytest.raises(SignInFailed):
                await credentials.authenticate(acme, "ann@example.com", OTHER, ip=IP)
        with pytest.raises(AccountLocked) as locked:
            await credentials.authenticate(acme, "ann@example.com", OTHER, ip=IP)
        assert (locked.value.status, locked.value.retry_after) == (429, 60)
        assert "try again in 1 minute" in locked.value.message
        # Locked: even the right password is refused, unchecked.
        clock["at"] = start + timedelta(seconds=30)
        with pytest.raises(AccountLocked) as still:
            await credentials.authenticate(acme, "ann@example.com", GOOD, ip=IP)
        assert 29 <= still.value.retry_after <= 31
        # Bolt's Ann is another person: unaffected.
        await credentials.authenticate(bolt, "ann@example.com", GOOD, ip=IP)

        waits = []
        clock["at"] = start + timedelta(seconds=61)
        for _ in range(4):  # each failure after a lock doubles the next one
            with pytest.raises(AccountLocked) as again:
                await credentials.authenticate(acme, "ann@example.com", OTHER, ip=IP)
            waits.append(again.value.retry_after)
            clock["at"] += timedelta(seconds=again.value.retry_after + 1)
        assert waits == [120, 240, 480, 960]

        await credentials.authenticate(acme, "ann@example.com", GOOD, ip=IP)
        with pytest.raises(SignInFailed):  # the count starts again from zero
            await credentials.authenticate(acme, "ann@example.com", OTHER, ip=IP)

    log = [a[2] for a in await actions(acme)]
    assert log.count("user.locked") == 5 and log.count("user.sign_in_refused_locked") == 1
    assert log.count("user.sign_in_failed") == 10 and log[-2:] == [
        "user.signed_in",
        "user.sign_in_failed",
    ]
    assert "user.locked" not in [a[2] for a in await actions(bolt)]


def test_lock_time_doubles_up_to_an_hour() -> None:
    assert [credentials.lock_seconds(n) for n in range(1, 13)] == [
        0, 0, 0, 0, 60, 120, 240, 480, 960, 1920, 3600, 3600,
    ]  # fmt: skip


async def test_an_address_with_no_account_locks_out_the_same_way(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, bolt = two_tenants
    await staff_with_password(acme)
    answers = {}
    for email in ("ann@example.com", "nobody@example.com"):
        seen = []
        for _ in range(6):
            try:
                await credentials.authenticate(acme, email, OTHER, ip=IP)
            except (SignInFailed, AccountLocked) as error:
                seen.append((error.status, error.message, getattr(error, "retry_after", None)))
        answers[email] = [(s, m, r and min(r, 60)) for s, m, r in seen]
    assert answers["ann@example.com"] == answers["nobody@example.com"]
    assert answers["nobody@example.com"][4][0] == 429
    log = [a[2] for a in await actions(acme)]
    assert log.count("user.locked") == 2 and log.count("user.sign_in_refused_locked") == 2
    with pytest.raises(SignInFailed):  # the count is per company
        await credentials.authenticate(bolt, "nobody@example.com", OTHER, ip=IP)


async def test_a_hash_made_with_old_parameters_is_replaced_at_sign_in(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, bolt = two_tenants
    user_id = await staff_with_password(acme)
    bolt_id = await staff_with_password(bolt)
    weak = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1, type=Type.ID)
    old_hash = weak.hash(GOOD)
    for tenant, uid in ((acme, user_id), (bolt, bolt_id)):
        async with tenant_transaction(tenant):
            await engine.execute("UPDATE users SET password_hash = $2 WHERE id = $1", uid, old_hash)
    await credentials.authenticate(acme, "ann@example.com", GOOD, ip=IP)
    new_hash = (await user_row(acme, user_id))["password_hash"]
    assert new_hash != old_hash and not HASHER.check_needs_rehash(new_hash)
    HASHER.verify(new_hash, GOOD)
    await credentials.authenticate(acme, "ann@example.com", GOOD, ip=IP)
    assert (await user_row(acme, user_id))["password_hash"] == new_hash  # once is enough
    assert (await user_row(bolt, bolt_id))["password_hash"] == old_hash


async def test_a_flagged_user_must_change_their_password(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, bolt = two_tenants
    user_id = await staff_with_password(acme)
    await staff_with_password(bolt)
    flagged = await users.update_user(acme, ADMIN, user_id, {"must_change_password": True})
    assert flagged.must_change_password is True
    signed_in = await credentials.authenticate(acme, "ann@example.com", GOOD, ip=IP)
    assert signed_in.must_change_password is True
    assert (
        await credentials.authenticate(bolt, "ann@example.com", GOOD, ip=IP)
    ).must_change_password is False

    me = await users.actor_for_user(acme, user_id)
    with pytest.raises(Exception, match="current password is wrong") as wrong:
        await credentials.change_password(acme, me, OTHER, "a brand new passphrase")
    assert getattr(wrong.value, "field", None) == "current_password"
    with pytest.raises(WeakPassword):
        await credentials.change_password(acme, me, GOOD, "password1234")
    await credentials.change_password(acme, me, GOOD, OTHER)
    assert (
        await credentials.authenticate(acme, "ann@example.com", OTHER, ip=IP)
    ).must_change_password is False
    with pytest.raises(SignInFailed):
        await credentials.authenticate(acme, "ann@example.com", GOOD, ip=IP)
    assert ("user", str(user_id), "user.password_changed") in await actions(acme)
    await credentials.authenticate(bolt, "ann@example.com", GOOD, ip=IP)  # untouched


# --- reset by email --------------------------------------------------------------------------


async def mail_to(smtp: SmtpFake, address: str, count: int = 1, seconds: float = 30) -> Message:
    for _ in range(int(seconds * 10)):
        found = [m for m in smtp.messages if m["To"] == address]
        if len(found) >= count:
            return found[count - 1]
        await asyncio.sleep(0.1)
    raise AssertionError(f"no email to {address}")


def link_in(message: Message) -> str:
    payload = message.get_payload(0) if message.is_multipart() else message
    assert isinstance(payload, Message)
    text = payload.get_payload(decode=True)
    assert isinstance(text, bytes)
    [line] = [w for w in text.decode().split() if "/reset-password/" in w]
    return line


async def logged(tenant: TenantInfo, action: str, seconds: float = 30) -> list[tuple[str, ...]]:
    for _ in range(int(seconds * 10)):
        found = [a for a in await actions(tenant) if a[2] == action]
        if found:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"{action} never logged")


async def test_reset_by_email_end_to_end_through_smtp_and_a_worker(
    two_tenants: tuple[TenantInfo, TenantInfo], smtp: SmtpFake
) -> None:
    acme, bolt = two_tenants
    with plugin_runtime():
        async with running_worker():
            user_id = await staff_with_password(acme)
            await staff_with_password(bolt)
            await enable_email(acme, smtp, ADMIN)
            with later(timedelta(seconds=-1)):  # locked out a moment ago
                for _ in range(5):
                    with pytest.raises((SignInFailed, AccountLocked)):
                        await credentials.authenticate(acme, "ann@example.com", OTHER, ip=IP)

            await credentials.request_reset(acme, "Ann@Example.com", ip=IP)
            await credentials.request_reset(acme, "nobody@example.com", ip=IP)
            await credentials.request_reset(bolt, "ann@example.com", ip=IP)  # Bolt: email to log
            message = await mail_to(smtp, "ann@example.com")
            await logged(acme, "user.reset_requested")
            await logged(bolt, "user.reset_link_issued")

    assert "Reset your" in message["Subject"] and acme.name in message["Subject"]
    url = link_in(message)
    assert url.startswith(f"http://{acme.slug}.patone.test/reset-password/")
    assert [m["To"] for m in smtp.messages] == ["ann@example.com"]  # none for nobody, none Bolt's
    token = token_of(url)
    with pytest.raises(InvalidLink, match="not valid"):  # not Bolt's
        await credentials.reset_password(bolt, token, "a brand new passphrase")
    with pytest.raises(WeakPassword):
        await credentials.reset_password(acme, token, "password1234")
    with pytest.raises(AccountLocked):
        await credentials.ensure_not_locked(acme, "ann@example.com", ip=IP)
    await credentials.reset_password(acme, token, "a brand new passphrase")
    await credentials.ensure_not_locked(acme, "ann@example.com", ip=IP)  # the reset cleared it
    await credentials.authenticate(acme, "ann@example.com", "a brand new passphrase", ip=IP)
    with pytest.raises(InvalidLink, match="already used"):
        await credentials.reset_password(acme, token, "yet another passphrase")
    await credentials.authenticate(bolt, "ann@example.com", GOOD, ip=IP)  # Bolt's Ann unchanged
    log = await actions(acme)
    assert ("anonymous", IP, "user.reset_link_issued") in log
    assert ("user", str(user_id), "user.password_reset") in log


async def test_a_reset_link_is_refused_after_an_hour(
    two_tenants: tuple[TenantInfo, TenantInfo], smtp: SmtpFake
) -> None:
    acme, bolt = two_tenants
    with plugin_runtime():
        await staff_with_password(acme)
        await staff_with_password(bolt)
        await enable_email(acme, smtp, ADMIN)
        sent: datetime = now()
        assert await credentials.send_password_reset(acme.slug, "ann@example.com") == "sent"
        assert await credentials.send_password_reset(acme.slug, "nobody@example.com") == "unknown"
    token = token_of(link_in(await mail_to(smtp, "ann@example.com")))
    late = sent + credentials.RESET_TTL + timedelta(seconds=1)
    with use_clock(lambda: late), pytest.raises(InvalidLink, match="expired"):
        await credentials.reset_password(acme, token, "a brand new passphrase")
    await credentials.authenticate(acme, "ann@example.com", GOOD, ip=IP)
    await credentials.authenticate(bolt, "ann@example.com", GOOD, ip=IP)


async def test_a_malformed_reset_address_is_refused_naming_the_field(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, _ = two_tenants
    with pytest.raises(Exception, match="email") as refused:
        await credentials.request_reset(acme, "not an address")
    assert getattr(refused.value, "field", None) == "email"


async def test_a_new_tenant_gets_its_first_admin_and_a_setup_link(make_tenant: Any) -> None:
    from patone.platform import provisioning
    from tests.conftest import unique_slug

    slug = unique_slug("first")
    with pytest.raises(Exception, match="email") as bad:
        await provisioning.create_tenant_with_admin(
            slug, admin_email="nope", admin_name="Ada", base_url="http://x.test"
        )
    assert getattr(bad.value, "field", None) == "email"
    from patone.tenants.registry import get_tenant

    assert await get_tenant(slug) is None  # nothing was created
    other = await make_tenant("other")
    created = await provisioning.create_tenant_with_admin(
        slug, admin_email="ada@example.com", admin_name="Ada Admin", base_url=f"http://{slug}.t"
    )
    try:
        assert created.admin["role"] == "admin" and created.link.email == "ada@example.com"
        assert created.link.url.startswith(f"http://{slug}.t/setup/")
        await credentials.complete_setup(created.tenant, token_of(created.link.url), GOOD)
        who = await credentials.authenticate(created.tenant, "ada@example.com", GOOD, ip=IP)
        assert who.role == "admin"
        assert await users.list_users(other, SYSTEM) == []
    finally:
        await provisioning.delete_tenant(slug)
        await provisioning.purge_tenant(slug, force=True)

"""The one staff sign-in flow: rate limits, password, second factor or enrolment, must-change;
always beside a second company whose policy and accounts differ."""

from __future__ import annotations

import json
from typing import Any

import pyotp
import pytest

from patone.core.common.permissions import SYSTEM
from patone.core.identity import credentials, sessions, staff_sign_in, two_factor
from patone.core.identity.credentials import AccountLocked, SignInFailed
from patone.core.identity.ratelimits import RateLimited
from patone.core.identity.staff_sign_in import Step, StepRequired, TwoFactorRequired
from patone.core.runtime.db import engine
from patone.core.runtime.errors import UserError
from patone.tenants.isolation import tenant_transaction
from patone.tenants.registry import TenantInfo
from tests.conftest import MakePlan, MakeTenant, actor_for
from tests.support import totp_code, wrong_totp_code

GOOD = "correct horse battery staple"
OTHER = "violet otter juggles lanterns"
IP = "203.0.113.9"


@pytest.fixture(autouse=True)
def configured() -> None:
    two_factor.configure("staff-sign-in-test-secret")


async def member(tenant: TenantInfo, role: str = "admin", email: str = "ann@example.com") -> int:
    invitation = await credentials.invite_user(
        tenant, SYSTEM, {"email": email, "name": "Ann Lee", "role": role}, base_url="http://x"
    )
    return await credentials.complete_setup(tenant, invitation.link.url.rsplit("/", 1)[1], GOOD)


async def enrolled(tenant: TenantInfo, user_id: int, role: str = "admin") -> tuple[str, list[str]]:
    actor = actor_for(role, user_id)
    enrolment = await two_factor.begin_enrolment(tenant, actor)
    codes = await two_factor.confirm_enrolment(tenant, actor, pyotp.TOTP(enrolment.secret).now())
    return enrolment.secret, codes


async def actions(tenant: TenantInfo, user_id: int) -> list[tuple[str, Any]]:
    async with tenant_transaction(tenant):
        rows = await engine.fetch(
            "SELECT action, after FROM activity_log WHERE entity = 'user' AND entity_id = $1 "
            "ORDER BY id",
            str(user_id),
        )
    return [(row["action"], json.loads(row["after"] or "null")) for row in rows]


async def test_an_account_with_two_factor_needs_the_code_after_the_password(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, bolt = two_tenants
    ann = await member(acme)
    await member(bolt)
    secret, _ = await enrolled(acme, ann)
    with pytest.raises(SignInFailed):  # a wrong password says nothing about two-factor
        await staff_sign_in.sign_in_api(acme, "ann@example.com", OTHER, None, ip=IP)
    with pytest.raises(TwoFactorRequired) as required:
        await staff_sign_in.sign_in_api(acme, "ann@example.com", GOOD, None, ip=IP)
    assert required.value.status == 401 and required.value.field == "code"
    who = await staff_sign_in.sign_in_api(
        acme, "ann@example.com", GOOD, totp_code(secret, 1), ip=IP
    )
    assert who.user_id == ann
    logged = [(action, after) for action, after in await actions(acme, ann)]
    assert [a for a, _ in logged].count("user.sign_in_pending") == 1
    assert logged[-1][0] == "user.signed_in" and logged[-1][1]["two_factor"] is True
    # Bolt's Ann has no two-factor, and Bolt's policy is its own (admins required by default):
    with pytest.raises(StepRequired) as enrol:
        await staff_sign_in.sign_in_api(bolt, "ann@example.com", GOOD, totp_code(secret, 1), ip=IP)
    assert enrol.value.pending.step is Step.enrolment


async def test_wrong_codes_count_toward_the_lockout_even_with_the_right_password(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, bolt = two_tenants
    ann = await member(acme)
    await member(bolt, role="manager")
    secret, _ = await enrolled(acme, ann)
    bad = wrong_totp_code(secret)
    for _ in range(credentials.LOCK_AFTER - 1):
        with pytest.raises(two_factor.InvalidCode):
            await staff_sign_in.sign_in_api(acme, "ann@example.com", GOOD, bad, ip=IP)
    with pytest.raises(AccountLocked) as locked:
        await staff_sign_in.sign_in_api(acme, "ann@example.com", GOOD, bad, ip=IP)
    assert locked.value.retry_after == credentials.LOCK_FIRST
    with pytest.raises(AccountLocked):  # the right code waits out the lock too
        await staff_sign_in.sign_in_api(acme, "ann@example.com", GOOD, totp_code(secret, 1), ip=IP)
    failures = [
        after for action, after in await actions(acme, ann) if action == "user.sign_in_failed"
    ]
    assert [f["reason"] for f in failures] == ["wrong_code"] * credentials.LOCK_AFTER
    assert "user.locked" in [action for action, _ in await actions(acme, ann)]
    # Bolt's account is untouched.
    assert (await staff_sign_in.sign_in_api(bolt, "ann@example.com", GOOD, None, ip=IP)).role == (
        "manager"
    )


async def test_a_replayed_code_is_refused_and_a_recovery_code_works_once(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, bolt = two_tenants
    ann = await member(acme)
    bolt_ann = await member(bolt)
    secret, recovery = await enrolled(acme, ann)
    await enrolled(bolt, bolt_ann)
    used = totp_code(secret, 1)
    await staff_sign_in.sign_in_api(acme, "ann@example.com", GOOD, used, ip=IP)
    with pytest.raises(two_factor.InvalidCode):
        await staff_sign_in.sign_in_api(acme, "ann@example.com", GOOD, used, ip=IP)
    with pytest.raises(two_factor.InvalidCode):  # Acme's recovery code means nothing at Bolt
        await staff_sign_in.sign_in_api(bolt, "ann@example.com", GOOD, recovery[0], ip=IP)
    spelled = recovery[0].upper().replace("-", " ")
    await staff_sign_in.sign_in_api(acme, "ann@example.com", GOOD, spelled, ip=IP)
    with pytest.raises(two_factor.InvalidCode):
        await staff_sign_in.sign_in_api(acme, "ann@example.com", GOOD, recovery[0], ip=IP)
    assert (await two_factor.status(acme, ann)).recovery_codes_left == 9


async def test_a_role_that_requires_two_factor_must_enrol_first_per_company_policy(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, bolt = two_tenants
    ann = await member(acme)
    await member(bolt)
    await two_factor.set_required_roles(bolt, actor_for("admin"), [])
    # Bolt requires no role: its admin signs in with the password alone.
    assert (await staff_sign_in.sign_in_api(bolt, "ann@example.com", GOOD, None, ip=IP)).role == (
        "admin"
    )
    with pytest.raises(StepRequired) as required:
        await staff_sign_in.sign_in_api(acme, "ann@example.com", GOOD, None, ip=IP)
    error = required.value
    assert error.status == 403 and error.code == "two_factor_enrolment_required"
    token = error.extra["enrolment_token"]
    assert error.extra["expires_in"] == staff_sign_in.PENDING_TTL
    with pytest.raises(staff_sign_in.PendingExpired):  # not a token of Bolt's
        await staff_sign_in.enrolment(bolt, token)
    first = await staff_sign_in.enrolment(acme, token)
    assert first.qr_svg.startswith("<svg") and first.uri.startswith("otpauth://totp/")
    assert (await staff_sign_in.enrolment(acme, token)).secret == first.secret  # a reload
    with pytest.raises(two_factor.InvalidCode):
        await staff_sign_in.confirm_enrolment(acme, token, wrong_totp_code(first.secret))
    pending, codes = await staff_sign_in.confirm_enrolment(
        acme, token, pyotp.TOTP(first.secret).now()
    )
    assert pending.who.user_id == ann and len(codes) == 10
    with pytest.raises(staff_sign_in.PendingExpired):  # one use
        await staff_sign_in.enrolment(acme, token)
    await staff_sign_in.sign_in_api(
        acme, "ann@example.com", GOOD, totp_code(first.secret, 1), ip=IP
    )


async def test_an_abandoned_enrolment_secret_is_not_shown_again_to_a_new_sign_in(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, _ = two_tenants
    await member(acme)
    tokens = []
    for _ in range(2):
        with pytest.raises(StepRequired) as required:
            await staff_sign_in.sign_in_api(acme, "ann@example.com", GOOD, None, ip=IP)
        tokens.append(required.value.pending.token)
    first = await staff_sign_in.enrolment(acme, tokens[0])
    second = await staff_sign_in.enrolment(acme, tokens[1])
    assert first.secret != second.secret


async def test_a_flagged_account_gets_only_a_password_change_token(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, bolt = two_tenants
    ann = await member(acme, role="dispatcher")
    await member(bolt, role="dispatcher")
    async with tenant_transaction(acme):
        await engine.execute("UPDATE users SET must_change_password = true WHERE id = $1", ann)
    with pytest.raises(StepRequired) as required:
        await staff_sign_in.sign_in_api(acme, "ann@example.com", GOOD, None, ip=IP)
    assert required.value.code == "password_change_required"
    token = required.value.extra["password_change_token"]
    with pytest.raises(staff_sign_in.PendingExpired):
        await staff_sign_in.change_password(bolt, token, GOOD, OTHER)
    with pytest.raises(staff_sign_in.PendingExpired):  # not an enrolment token
        await staff_sign_in.enrolment(acme, token)
    await staff_sign_in.change_password(acme, token, GOOD, OTHER)
    with pytest.raises(staff_sign_in.PendingExpired):
        await staff_sign_in.change_password(acme, token, OTHER, "yet another long passphrase")
    who = await staff_sign_in.sign_in_api(acme, "ann@example.com", OTHER, None, ip=IP)
    assert who.must_change_password is False
    await staff_sign_in.sign_in_api(bolt, "ann@example.com", GOOD, None, ip=IP)


async def test_sign_in_attempts_are_rate_limited_before_the_password_is_checked(
    make_plan: MakePlan, make_tenant: MakeTenant
) -> None:
    plan = await make_plan(sign_ins_per_ip_per_hour=100, sign_ins_per_account_per_hour=3)
    acme = await make_tenant("acme", plan=plan)
    bolt = await make_tenant("bolt", plan=plan)
    for tenant in (acme, bolt):
        await member(tenant, role="manager")
    for _ in range(3):
        with pytest.raises(SignInFailed):
            await staff_sign_in.sign_in_api(acme, "ann@example.com", OTHER, None, ip=IP)
    with pytest.raises(RateLimited) as limited:  # even the right password
        await staff_sign_in.sign_in_api(acme, "ANN@example.com", GOOD, None, ip=IP)
    assert 0 < limited.value.retry_after <= 3600
    await staff_sign_in.sign_in_api(bolt, "ann@example.com", GOOD, None, ip=IP)


async def test_changing_or_resetting_a_password_ends_the_other_sessions(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, bolt = two_tenants
    ann = await member(acme, role="manager")
    bolt_ann = await member(bolt, role="manager")
    here, _ = await sessions.start(acme, ann, ip=IP, user_agent="Laptop")
    await sessions.start(acme, ann, ip=IP, user_agent="Phone")
    elsewhere, _ = await sessions.start(bolt, bolt_ann, ip=IP, user_agent="Laptop")
    kept = sessions.session_key(here)
    await credentials.change_password(
        acme, actor_for("manager", ann), GOOD, OTHER, keep_session=kept
    )
    assert [s.key for s in await sessions.list_sessions(acme, ann)] == [kept]
    await credentials.change_password(acme, actor_for("manager", ann), OTHER, GOOD)
    assert await sessions.list_sessions(acme, ann) == []

    await sessions.start(acme, ann, ip=IP, user_agent="Laptop")
    link = await credentials.issue_setup_link(acme, SYSTEM, "ann@example.com", base_url="http://x")
    await credentials.complete_setup(acme, link.url.rsplit("/", 1)[1], OTHER)
    assert await sessions.list_sessions(acme, ann) == []  # a new password by link: signed out
    assert await sessions.load(bolt, elsewhere) is not None  # Bolt's Ann is untouched


async def test_an_overlong_email_or_password_is_refused_before_it_counts_or_is_hashed(
    two_tenants: tuple[TenantInfo, TenantInfo], make_plan: MakePlan, make_tenant: MakeTenant
) -> None:
    acme = await make_tenant("long", plan=await make_plan(sign_ins_per_ip_per_hour=1))
    _, bolt = two_tenants
    await member(acme, role="manager")
    await member(bolt, role="manager")
    for email, password, field in (
        ("a" * 250 + "@example.com", GOOD, "email"),
        ("ann@example.com", "p" * 300, "password"),
    ):
        with pytest.raises(UserError) as refused:
            await staff_sign_in.sign_in_page(acme, email, password, ip=IP)
        assert (refused.value.code, refused.value.field) == ("too_long", field)
    # Neither took the one attempt this address has: the right password still signs in.
    who = await staff_sign_in.sign_in_page(acme, "ann@example.com", GOOD, ip=IP)
    assert isinstance(who, credentials.SignIn)

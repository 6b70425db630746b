"""Two-factor for staff: enrolment with a QR code, codes accepted once, recovery codes,
the per-company policy and the activity log, always beside a second company."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from patone.core.common.permissions import SYSTEM, Actor, PermissionDenied
from patone.core.identity import two_factor, users
from patone.core.runtime.db import engine
from patone.core.runtime.errors import Conflict, UserError
from patone.plugins.secrets import SecretBox
from patone.tenants.isolation import tenant_transaction
from patone.tenants.registry import TenantInfo
from tests.conftest import actor_for
from tests.support import fresh_totp_step, totp_code, wrong_totp_code

SECRET_KEY = "two-factor-test-secret"


@pytest.fixture(autouse=True)
def configured() -> None:
    two_factor.configure(SECRET_KEY)


async def _user(tenant: TenantInfo, role: str = "admin", email: str = "ann@example.com") -> Actor:
    row = await users.create_user(tenant, SYSTEM, {"email": email, "name": "Ann", "role": role})
    return actor_for(role, row.id)


async def _activity(tenant: TenantInfo, user_id: int) -> list[dict[str, Any]]:
    async with tenant_transaction(tenant):
        rows = await engine.fetch(
            "SELECT actor_type, actor_id, action, after FROM activity_log "
            "WHERE entity = 'user' AND entity_id = $1 ORDER BY id",
            str(user_id),
        )
    return [dict(r) for r in rows]


async def _enrolled(tenant: TenantInfo, actor: Actor) -> tuple[str, list[str]]:
    enrolment = await two_factor.begin_enrolment(tenant, actor)
    codes = await two_factor.confirm_enrolment(tenant, actor, totp_code(enrolment.secret))
    return enrolment.secret, codes


async def test_enrolment_gives_a_qr_code_and_switches_on_only_when_confirmed(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, bolt = two_tenants
    ann = await _user(acme)
    enrolment = await two_factor.begin_enrolment(acme, ann)
    assert enrolment.uri.startswith("otpauth://totp/Acme%20Towing:ann%40example.com?")
    assert "issuer=Acme%20Towing" in enrolment.uri and enrolment.secret in enrolment.uri
    assert enrolment.qr_svg.startswith("<svg") and "</svg>" in enrolment.qr_svg
    # Not on until a code from the app confirms the scan worked.
    status = await two_factor.status(acme, int(ann.id))
    assert status.pending and not status.enabled and status.required
    assert not await two_factor.verify(acme, int(ann.id), totp_code(enrolment.secret))
    # The secret is stored sealed under its own key, not the plugin secrets' one.
    async with tenant_transaction(acme):
        rows = await engine.fetch(
            "SELECT secret::text AS secret FROM user_two_factor WHERE user_id = $1", int(ann.id)
        )
    stored = rows[0]["secret"]
    assert enrolment.secret not in stored
    with pytest.raises(ValueError, match="cannot be decrypted"):
        SecretBox(SECRET_KEY).open(json.loads(stored))

    with pytest.raises(two_factor.InvalidCode) as wrong:
        await two_factor.confirm_enrolment(acme, ann, wrong_totp_code(enrolment.secret))
    assert wrong.value.field == "code"
    assert not (await two_factor.status(acme, int(ann.id))).enabled

    codes = await two_factor.confirm_enrolment(acme, ann, totp_code(enrolment.secret))
    assert len(codes) == 10 == len(set(codes))
    assert all(len(c) == 19 and c.count("-") == 3 for c in codes)
    status = await two_factor.status(acme, int(ann.id))
    assert status.enabled and not status.pending and status.recovery_codes_left == 10
    with pytest.raises(Conflict):
        await two_factor.begin_enrolment(acme, ann)
    actions = [a["action"] for a in await _activity(acme, int(ann.id))]
    assert actions == [
        "user.created",
        "two_factor.enrolment_started",
        "two_factor.code_refused",  # the sign-in check before confirming
        "two_factor.code_refused",  # the wrong confirmation
        "two_factor.enrolled",
    ]
    # Recovery codes are stored hashed; the other company holds nothing of it.
    async with tenant_transaction(acme):
        hashes = {
            r["code_hash"] for r in await engine.fetch("SELECT code_hash FROM user_recovery_codes")
        }
    assert not hashes & set(codes) and len(hashes) == 10
    async with tenant_transaction(bolt):
        assert await engine.fetch("SELECT 1 FROM user_two_factor") == []
        assert await engine.fetch("SELECT 1 FROM user_recovery_codes") == []
    assert not (await two_factor.status(bolt, int(ann.id))).enabled


async def test_a_totp_code_is_accepted_once_and_never_an_older_one(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, _ = two_tenants
    ann = await _user(acme)
    fresh_totp_step()
    secret, _ = await _enrolled(acme, ann)
    user_id = int(ann.id)
    # Confirming spent the current step's code: replaying it is refused.
    assert not await two_factor.verify(acme, user_id, totp_code(secret))
    # The next step's code (a phone clock a little ahead) passes once, then the step is spent.
    assert await two_factor.verify(acme, user_id, totp_code(secret, 1))
    assert not await two_factor.verify(acme, user_id, totp_code(secret, 1))
    assert not await two_factor.verify(acme, user_id, totp_code(secret, -1))
    refused = [
        a for a in await _activity(acme, user_id) if a["action"] == "two_factor.code_refused"
    ]
    assert len(refused) == 3
    assert refused[0]["actor_type"] == "user" and refused[0]["actor_id"] == ann.id


async def test_two_requests_racing_with_one_code_let_only_one_in(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, _ = two_tenants
    ann = await _user(acme)
    secret, _ = await _enrolled(acme, ann)
    code = totp_code(secret, 1)
    results = await asyncio.gather(*(two_factor.verify(acme, int(ann.id), code) for _ in range(5)))
    assert sorted(results) == [False, False, False, False, True]


async def test_a_recovery_code_works_once(two_tenants: tuple[TenantInfo, TenantInfo]) -> None:
    acme, bolt = two_tenants
    ann = await _user(acme)
    bob = await _user(bolt)  # another company's user with the same id
    _, codes = await _enrolled(acme, ann)
    assert not await two_factor.verify(bolt, int(bob.id), codes[0])
    # Typed in capitals and without dashes: still the same code.
    assert await two_factor.verify(acme, int(ann.id), codes[0].replace("-", "").upper())
    assert not await two_factor.verify(acme, int(ann.id), codes[0])
    assert (await two_factor.status(acme, int(ann.id))).recovery_codes_left == 9
    used = [
        a
        for a in await _activity(acme, int(ann.id))
        if a["action"] == "two_factor.recovery_code_used"
    ]
    assert len(used) == 1 and json.loads(used[0]["after"]) == {"left": 9}


async def test_wrong_codes_are_refused_and_logged(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, bolt = two_tenants
    ann = await _user(acme)
    secret, _ = await _enrolled(acme, ann)
    for wrong in (wrong_totp_code(secret), "abc", "", "aaaa-bbbb-cccc-dddd"):
        assert not await two_factor.verify(acme, int(ann.id), wrong)
    refused = [
        a for a in await _activity(acme, int(ann.id)) if a["action"] == "two_factor.code_refused"
    ]
    assert len(refused) == 4 and json.loads(refused[0]["after"]) == {"purpose": "sign in"}
    assert await _activity(bolt, int(ann.id)) == []


async def test_disable_and_regenerate_need_a_code(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, _ = two_tenants
    dana = await _user(acme, "dispatcher", "dana@example.com")
    secret, codes = await _enrolled(acme, dana)
    with pytest.raises(two_factor.InvalidCode):
        await two_factor.regenerate_recovery_codes(acme, dana, wrong_totp_code(secret))
    fresh = await two_factor.regenerate_recovery_codes(acme, dana, totp_code(secret, 1))
    assert set(fresh).isdisjoint(codes)
    assert not await two_factor.verify(acme, int(dana.id), codes[1])  # the old ones are void
    with pytest.raises(two_factor.InvalidCode):
        await two_factor.disable(acme, dana, wrong_totp_code(secret))
    assert (await two_factor.status(acme, int(dana.id))).enabled
    await two_factor.disable(acme, dana, fresh[0])
    assert not (await two_factor.status(acme, int(dana.id))).enabled
    actions = [a["action"] for a in await _activity(acme, int(dana.id))]
    assert "two_factor.recovery_codes_regenerated" in actions
    assert actions[-1] == "two_factor.disabled"
    with pytest.raises(UserError) as off:
        await two_factor.disable(acme, dana, totp_code(secret))
    assert off.value.code == "not_enrolled"


async def test_a_required_role_cannot_switch_it_off_but_an_admin_can_reset_it(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, _ = two_tenants
    ann = await _user(acme)
    secret, _ = await _enrolled(acme, ann)
    with pytest.raises(UserError) as kept:
        await two_factor.disable(acme, ann, totp_code(secret, 1))
    assert kept.value.code == "required"
    with pytest.raises(PermissionDenied):
        await two_factor.reset(acme, actor_for("dispatcher"), int(ann.id))
    await two_factor.reset(acme, actor_for("admin", 999), int(ann.id))
    assert not (await two_factor.status(acme, int(ann.id))).enabled
    assert (await _activity(acme, int(ann.id)))[-1]["action"] == "two_factor.reset"


async def test_the_required_roles_are_each_companys_own(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, bolt = two_tenants
    admin = actor_for("admin")
    assert await two_factor.required_roles(acme) == ["admin"]
    assert "admin" in await two_factor.required_roles(acme)
    assert "dispatcher" not in await two_factor.required_roles(acme)

    assert await two_factor.set_required_roles(acme, admin, ["dispatcher", "admin"]) == [
        "admin",
        "dispatcher",
    ]
    assert "dispatcher" in await two_factor.required_roles(acme)
    assert "dispatcher" not in await two_factor.required_roles(bolt)
    assert await two_factor.required_roles(bolt) == ["admin"]

    with pytest.raises(UserError) as unknown:
        await two_factor.set_required_roles(acme, admin, ["admin", "ceo"])
    assert unknown.value.field == "roles" and "ceo" in unknown.value.message
    with pytest.raises(PermissionDenied):
        await two_factor.set_required_roles(acme, actor_for("manager"), [])
    assert await two_factor.required_roles(acme) == ["admin", "dispatcher"]

    assert await two_factor.set_required_roles(acme, admin, []) == []
    assert "admin" not in await two_factor.required_roles(acme)
    async with tenant_transaction(acme):
        logged = await engine.fetch(
            "SELECT action FROM activity_log WHERE action = 'two_factor.policy_changed'"
        )
    assert len(logged) == 2


async def test_only_staff_users_enrol(two_tenants: tuple[TenantInfo, TenantInfo]) -> None:
    acme, _ = two_tenants
    with pytest.raises(UserError) as refused:
        await two_factor.begin_enrolment(acme, Actor(kind="partner", id="client-1"))
    assert refused.value.code == "staff_only"

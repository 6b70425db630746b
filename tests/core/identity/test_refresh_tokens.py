"""Refresh tokens: rotated on every use; a reused one revokes its whole sign-in."""

from __future__ import annotations

import pytest

from patone.core.common import activity
from patone.core.common.permissions import SYSTEM
from patone.core.identity import refresh_tokens, revocation, users
from patone.core.identity.refresh_tokens import InvalidGrant
from patone.core.identity.tokens import TENANT_AUDIENCE, Claims, Kind, verify_token
from patone.tenants.registry import TenantInfo

SECRET = "refresh-test-secret"


async def _user(tenant: TenantInfo, role: str = "dispatcher") -> int:
    row = await users.create_user(
        tenant, SYSTEM, {"email": f"{role}@{tenant.slug}.example", "name": role, "role": role}
    )
    return int(row.id)


def _claims(tenant: TenantInfo, token: str) -> Claims:
    return verify_token(SECRET, token, audience=TENANT_AUDIENCE, tenant=tenant)


async def test_each_refresh_rotates_the_token(two_tenants: tuple[TenantInfo, TenantInfo]) -> None:
    acme, bolt = two_tenants
    first = await refresh_tokens.issue_token_pair(SECRET, acme, await _user(acme))
    assert first.refresh_token.startswith("prt_") and first.expires_in == 900
    second = await refresh_tokens.refresh(SECRET, acme, first.refresh_token)
    third = await refresh_tokens.refresh(SECRET, acme, second.refresh_token)
    assert len({first.refresh_token, second.refresh_token, third.refresh_token}) == 3
    assert _claims(acme, third.access_token).subject == _claims(acme, first.access_token).subject
    assert _claims(acme, first.access_token).role == "dispatcher"  # named for the client
    with pytest.raises(InvalidGrant):  # another company does not know the token
        await refresh_tokens.refresh(SECRET, bolt, third.refresh_token)
    log, _ = await activity.list_activity(acme, SYSTEM, entity="staff")
    assert [e.action for e in log] == ["token.refreshed", "token.refreshed", "token.issued"]
    assert (await activity.list_activity(bolt, SYSTEM, entity="staff"))[0] == []


async def test_reusing_a_used_token_revokes_the_whole_family(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, bolt = two_tenants
    user = await _user(acme)
    stolen = await refresh_tokens.issue_token_pair(SECRET, acme, user)
    legit = await refresh_tokens.refresh(SECRET, acme, stolen.refresh_token)
    latest = await refresh_tokens.refresh(SECRET, acme, legit.refresh_token)
    other_device = await refresh_tokens.issue_token_pair(SECRET, acme, user)
    neighbour = await refresh_tokens.issue_token_pair(SECRET, bolt, await _user(bolt))

    with pytest.raises(InvalidGrant, match="already used"):
        await refresh_tokens.refresh(SECRET, acme, stolen.refresh_token)

    with pytest.raises(InvalidGrant, match="revoked"):
        await refresh_tokens.refresh(SECRET, acme, latest.refresh_token)
    for pair in (legit, latest):  # the family's access tokens that still live are refused too
        assert await revocation.is_revoked(acme.slug, _claims(acme, pair.access_token))
    assert not await revocation.is_revoked(acme.slug, _claims(acme, other_device.access_token))
    assert await refresh_tokens.refresh(SECRET, acme, other_device.refresh_token)
    assert await refresh_tokens.refresh(SECRET, bolt, neighbour.refresh_token)
    log, _ = await activity.list_activity(acme, SYSTEM, entity="staff", entity_id=str(user))
    reuse = [e for e in log if e.action == "token.reuse_detected"]
    assert len(reuse) == 1 and reuse[0].after["revoked"] == 3
    refused = [e for e in log if e.action == "token.refresh_refused"]
    assert [e.after["reason"] for e in refused] == ["the refresh token was revoked: sign in again"]


async def test_a_deactivated_user_cannot_refresh(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, bolt = two_tenants
    user = await _user(acme)
    pair = await refresh_tokens.issue_token_pair(SECRET, acme, user)
    kept = await refresh_tokens.issue_token_pair(SECRET, bolt, await _user(bolt))
    await users.update_user(acme, SYSTEM, user, {"active": False})
    assert await revocation.is_revoked(acme.slug, _claims(acme, pair.access_token))
    assert not await revocation.is_revoked(bolt.slug, _claims(bolt, kept.access_token))
    with pytest.raises(InvalidGrant, match="revoked"):
        await refresh_tokens.refresh(SECRET, acme, pair.refresh_token)
    with pytest.raises(InvalidGrant):
        await refresh_tokens.issue_token_pair(SECRET, acme, user)
    assert await refresh_tokens.refresh(SECRET, bolt, kept.refresh_token)


async def test_signing_out_everywhere_revokes_every_token_of_the_user(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, bolt = two_tenants
    user, colleague = await _user(acme), await _user(acme, "manager")
    phone = await refresh_tokens.issue_token_pair(SECRET, acme, user)
    laptop = await refresh_tokens.issue_token_pair(SECRET, acme, user)
    theirs = await refresh_tokens.issue_token_pair(SECRET, acme, colleague)
    same_id_elsewhere = await refresh_tokens.issue_token_pair(SECRET, bolt, await _user(bolt))

    await refresh_tokens.revoke_all(acme, SYSTEM, Kind.staff, str(user))

    for pair in (phone, laptop):
        assert await revocation.is_revoked(acme.slug, _claims(acme, pair.access_token))
        with pytest.raises(InvalidGrant):
            await refresh_tokens.refresh(SECRET, acme, pair.refresh_token)
    assert not await revocation.is_revoked(acme.slug, _claims(acme, theirs.access_token))
    elsewhere = _claims(bolt, same_id_elsewhere.access_token)
    assert not await revocation.is_revoked(bolt.slug, elsewhere)
    log, _ = await activity.list_activity(acme, SYSTEM, entity="staff", entity_id=str(user))
    assert [e.action for e in log][:3] == [
        "token.refresh_refused",  # the laptop's refresh, after
        "token.refresh_refused",  # the phone's,
        "token.revoked_all",  # the sign-out everywhere
    ]
    signed_in_again = await refresh_tokens.issue_token_pair(SECRET, acme, user)  # same second
    assert not await revocation.is_revoked(acme.slug, _claims(acme, signed_in_again.access_token))

"""Access tokens: genuine ones verify from memory; forged, expired or misplaced ones do not;
signing keys rotate without breaking the tokens already out."""

from __future__ import annotations

import dataclasses
import logging
import re
import time
import uuid

import httpx
import pytest
from joserfc.jwk import ECKey

from patone.app import create_app
from patone.core.identity.signing_keys import (
    Keyring,
    keyring_for,
    rotate,
    rotate_if_due,
    rotate_when_due,
)
from patone.core.identity.tokens import (
    CLOCK_LEEWAY,
    PLATFORM_AUDIENCE,
    TENANT_AUDIENCE,
    InvalidToken,
    Kind,
    issue_token,
    verify_token,
)
from patone.core.runtime.db import engine
from patone.core.runtime.scheduler import registered
from patone.settings import load_settings
from patone.tenants.registry import TenantInfo
from tests.support import forged_token, resigned, token_parts

SECRET = "token-test-secret"


def _staff(tenant: TenantInfo, ttl: int = 900) -> str:
    return issue_token(SECRET, kind=Kind.staff, subject="7", tenant=tenant, ttl=ttl)


def _refused(token: str, tenant: TenantInfo, audience: str = TENANT_AUDIENCE) -> str:
    with pytest.raises(InvalidToken) as refused:
        verify_token(SECRET, token, audience=audience, tenant=tenant)
    return refused.value.message


async def test_a_genuine_token_verifies_for_its_own_tenant_only(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, bolt = two_tenants
    token = _staff(acme)
    header, _ = token_parts(token)
    assert header["alg"] == "ES256" and header["kid"] in keyring_for(SECRET).kids()
    claims = verify_token(SECRET, token, audience=TENANT_AUDIENCE, tenant=acme)
    assert (claims.kind, claims.subject, claims.tenant) == (Kind.staff, "7", acme.slug)
    assert claims.token_id and claims.issued_at <= time.time()
    assert "another company" in _refused(token, bolt)
    _, named = token_parts(token)
    assert (named["tenant"], named["tid"]) == (acme.slug, str(acme.id))
    # A later company under the same slug (the old one purged) has another id: refused, and a
    # token naming only the slug (as tokens did) is refused too.
    assert "another company" in _refused(token, dataclasses.replace(acme, id=uuid.uuid4()))
    header, claims = token_parts(token)
    del claims["tid"]
    slug_only = forged_token(claims, header=header, key=keyring_for(SECRET).signing_key().private)
    assert "another company" in _refused(slug_only, acme)


async def test_forged_tokens_are_refused(two_tenants: tuple[TenantInfo, TenantInfo]) -> None:
    acme, _bolt = two_tenants
    genuine = _staff(acme)
    header, claims = token_parts(genuine)
    public = keyring_for(SECRET).verification_key(str(header["kid"]))
    assert public is not None
    public_pem = public.as_pem(private=False)
    forgeries = {
        "alg none": forged_token(claims, header={"alg": "none", "typ": "JWT"}),
        "alg none with kid": forged_token(claims, header={**header, "alg": "none"}),
        "HS256 with the public key": forged_token(
            claims, header={**header, "alg": "HS256"}, key=public_pem
        ),
        "another key, our kid": resigned(genuine),
        "another key, an unknown kid": forged_token(
            claims, header={"alg": "ES256", "kid": "nobody-knows"}, key=ECKey.generate_key("P-256")
        ),
        "no kid": forged_token(claims, header={"alg": "ES256"}, key=ECKey.generate_key("P-256")),
        "claims changed after signing": ".".join(
            [genuine.split(".")[0], resigned(genuine, sub="1").split(".")[1], genuine.split(".")[2]]
        ),
    }
    accepted = []
    for name, token in forgeries.items():
        try:
            verify_token(SECRET, token, audience=TENANT_AUDIENCE, tenant=acme)
        except InvalidToken:
            continue
        accepted.append(name)
    assert accepted == []


async def test_expired_and_wrong_audience_tokens_are_refused(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, bolt = two_tenants
    genuine = _staff(acme)
    header, claims = token_parts(genuine)
    key = keyring_for(SECRET).signing_key()
    assert header["kid"] == key.kid
    now = int(time.time())
    expired = forged_token(
        {**claims, "iat": now - 120, "exp": now - CLOCK_LEEWAY - 1}, header=header, key=key.private
    )
    assert "expired" in _refused(expired, acme)
    from_the_future = forged_token(
        {**claims, "iat": now + CLOCK_LEEWAY + 60}, header=header, key=key.private
    )
    assert "future" in _refused(from_the_future, acme)
    a_little_skewed = forged_token({**claims, "iat": now + 2}, header=header, key=key.private)
    assert verify_token(SECRET, a_little_skewed, audience=TENANT_AUDIENCE, tenant=acme)
    operator = issue_token(SECRET, kind=Kind.operator, subject="op", tenant=None)
    assert "aud" in _refused(operator, acme)
    assert "aud" in _refused(_staff(bolt), bolt, audience=PLATFORM_AUDIENCE)
    assert verify_token(SECRET, operator, audience=PLATFORM_AUDIENCE).kind is Kind.operator


async def test_verifying_reads_no_database(two_tenants: tuple[TenantInfo, TenantInfo]) -> None:
    acme, bolt = two_tenants
    tokens = [_staff(acme), _staff(bolt)]
    before = sum(engine.statements.values())
    for _ in range(50):
        for token, tenant in zip(tokens, two_tenants, strict=True):
            verify_token(SECRET, token, audience=TENANT_AUDIENCE, tenant=tenant)
    assert sum(engine.statements.values()) == before


async def test_rotation_keeps_old_tokens_valid_and_signs_new_ones_with_the_new_key(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, bolt = two_tenants
    keyring = keyring_for(SECRET)
    old = _staff(acme)
    old_kid = token_parts(old)[0]["kid"]

    pending = await rotate(keyring)  # not yet active: other processes must load it first
    assert token_parts(_staff(acme))[0]["kid"] == old_kid
    assert pending in keyring.kids()

    new_kid = await rotate(keyring, activate_in=0)
    new = _staff(bolt)
    assert token_parts(new)[0]["kid"] == new_kid != old_kid
    assert verify_token(SECRET, old, audience=TENANT_AUDIENCE, tenant=acme).subject == "7"
    assert verify_token(SECRET, new, audience=TENANT_AUDIENCE, tenant=bolt).subject == "7"

    app = create_app(load_settings(secret_key=SECRET))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://localhost"
    ) as client:
        response = await client.get("/.well-known/jwks.json")
    assert response.status_code == 200 and "max-age" in response.headers["cache-control"]
    published = {key["kid"]: key for key in response.json()["keys"]}
    assert {old_kid, new_kid, pending} <= set(published)
    assert all(key["alg"] == "ES256" and "d" not in key for key in published.values())


async def test_a_rotated_key_is_published_at_once_and_signs_only_after_the_cache_lifetime(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, bolt = two_tenants
    old_kid = token_parts(_staff(acme))[0]["kid"]
    app = create_app(load_settings(secret_key=SECRET))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://localhost"
    ) as client:
        before = await client.get("/.well-known/jwks.json")
        # `patone keys rotate` runs in a process of its own, beside the server's keyring.
        kid = await rotate(Keyring(SECRET))
        after = await client.get("/.well-known/jwks.json")

    assert kid not in {key["kid"] for key in before.json()["keys"]}
    assert kid in {key["kid"] for key in after.json()["keys"]}  # published at once
    found = re.search(r"max-age=(\d+)", after.headers["cache-control"])
    assert found is not None
    rows = await engine.fetch(
        "SELECT extract(epoch FROM active_from - now())::float AS wait "
        "FROM platform.signing_keys WHERE kid = $1",
        kid,
    )
    # A verifier that cached the keys just before the rotation has fetched them again, with
    # time to spare, before the new key signs anything.
    assert rows[0]["wait"] >= int(found.group(1)) + 30
    await keyring_for(SECRET).load()
    assert token_parts(_staff(bolt))[0]["kid"] == old_kid


async def test_a_kid_made_by_another_process_is_found_by_reloading(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, _bolt = two_tenants
    elsewhere = keyring_for("another-process-secret")  # same database, its own keyring
    kid = await rotate(elsewhere, activate_in=0)
    token = issue_token("another-process-secret", kind=Kind.partner, subject="pc_x", tenant=acme)
    assert token_parts(token)[0]["kid"] == kid
    keyring_for(SECRET)._last_miss_reload = 0.0  # as if the last reload were long ago
    assert verify_token(SECRET, token, audience=TENANT_AUDIENCE, tenant=acme).subject == "pc_x"


async def test_the_periodic_job_rotates_only_a_key_that_has_grown_old(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, _bolt = two_tenants
    keyring = keyring_for(SECRET)
    _staff(acme)  # a key exists
    assert registered()["signing_keys.rotate"].run is rotate_when_due
    assert await rotate_if_due(keyring) is None
    await engine.execute("UPDATE platform.signing_keys SET created_at = now() - interval '31 days'")
    kid = await rotate_if_due(keyring)
    assert kid is not None and kid in keyring.kids()
    assert await rotate_if_due(keyring) is None


def _key_log(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name.endswith("signing_keys")]


async def test_the_first_key_of_a_new_data_dir_is_created_without_a_warning(
    two_tenants: tuple[TenantInfo, TenantInfo], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with engine.acquire() as connection:
        new_data_dir = connection.transaction()
        await new_data_dir.start()
        try:
            await connection.execute("DELETE FROM platform.signing_keys")
            await Keyring(SECRET).load_from(connection)
        finally:
            await new_data_dir.rollback()  # the other tests' keys stay
    assert _key_log(caplog) == [(logging.INFO, "signing key created")]


async def test_stored_keys_this_secret_cannot_open_are_replaced_with_a_warning(
    two_tenants: tuple[TenantInfo, TenantInfo], caplog: pytest.LogCaptureFixture
) -> None:
    acme, _bolt = two_tenants
    _staff(acme)  # a key sealed with SECRET is stored
    caplog.set_level(logging.INFO)
    await Keyring(f"a-changed-secret-{uuid.uuid4()}").load()
    [(level, message)] = _key_log(caplog)
    assert level == logging.WARNING and "none stored could be opened" in message

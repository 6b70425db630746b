"""Platform operators: created with two-factor on, sign-in needs the password and a code, the
same answer whatever is wrong, and everything in the operators' activity log."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from patone.app import create_app
from patone.core.identity import ratelimits, two_factor
from patone.core.identity.passwords import WeakPassword
from patone.core.runtime.db import engine
from patone.core.runtime.errors import Conflict, ValidationFailed
from patone.platform import operators
from patone.settings import load_settings
from tests.support import totp_code
from tests.test_cli import patone

PASSWORD = "correct horse battery staple"
SECRET_KEY = "operators-test-secret"
MakeOperator = Callable[..., Awaitable[operators.NewOperator]]


@pytest.fixture
async def make_operator() -> AsyncIterator[MakeOperator]:
    two_factor.configure(SECRET_KEY)
    made: list[int] = []

    async def make(name: str = "Olga Operator") -> operators.NewOperator:
        email = f"op-{uuid.uuid4().hex[:8]}@platform.example"
        created = await operators.create_operator(email, name, PASSWORD)
        made.append(created.operator.id)
        return created

    yield make
    await engine.execute("DELETE FROM platform.operators WHERE id = ANY($1::int[])", made)


def _client() -> httpx.AsyncClient:
    """A client on the platform's host from an address of its own, so the per-address sign-in
    limit of one test (or of an earlier run within the hour) does not reach another."""
    app = create_app(load_settings(secret_key=SECRET_KEY, base_domain="patone.test"))
    address = f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"
    transport = httpx.ASGITransport(app=app, client=(address, 4321))
    return httpx.AsyncClient(transport=transport, base_url="http://patone.test")


def _secret(created: operators.NewOperator) -> str:
    return parse_qs(urlparse(created.otpauth_uri).query)["secret"][0]


async def _activity(email: str) -> list[dict[str, Any]]:
    rows = await engine.fetch(
        "SELECT operator_id, action, detail, ip FROM platform.operator_activity "
        "WHERE email = $1 ORDER BY id",
        email,
    )
    return [dict(r) for r in rows]


async def test_sign_in_needs_the_password_and_a_fresh_code(make_operator: MakeOperator) -> None:
    created = await make_operator()
    email, secret = created.operator.email, _secret(created)
    assert created.otpauth_uri.startswith("otpauth://totp/Patone%20Cloud%20platform:")
    assert len(created.recovery_codes) == 10

    with pytest.raises(operators.SignInFailed):
        await operators.sign_in(email, PASSWORD, "")
    with pytest.raises(operators.SignInFailed):
        await operators.sign_in(email, "wrong password entirely", totp_code(secret))
    with pytest.raises(operators.SignInFailed) as unknown:
        await operators.sign_in("nobody@platform.example", PASSWORD, totp_code(secret))
    assert unknown.value.message == "The email, password or two-factor code is not right."

    code = totp_code(secret)  # kept: a fresh one could fall in the next 30-second step
    signed_in = await operators.sign_in(email.upper(), PASSWORD, code, ip="10.0.0.7")
    assert signed_in.id == created.operator.id
    with pytest.raises(operators.SignInFailed):  # the same code again: a replay
        await operators.sign_in(email, PASSWORD, code)
    # A recovery code works once.
    assert (await operators.sign_in(email, PASSWORD, created.recovery_codes[0])).id == signed_in.id
    with pytest.raises(operators.SignInFailed):
        await operators.sign_in(email, PASSWORD, created.recovery_codes[0])

    log = await _activity(email)
    assert [row["action"] for row in log] == [
        "operator.created",
        "sign_in.failed",
        "sign_in.failed",
        "sign_in",
        "sign_in.failed",
        "sign_in",
        "sign_in.failed",
    ]
    reasons = [row["detail"] for row in log if row["action"] == "sign_in.failed"]
    assert '"wrong or reused code"' in reasons[0] and '"wrong password"' in reasons[1]
    assert log[3]["ip"] == "10.0.0.7"
    unknown_log = await _activity("nobody@platform.example")
    assert unknown_log[-1]["operator_id"] is None and '"unknown email"' in unknown_log[-1]["detail"]


async def test_operators_are_created_with_a_strong_password_and_a_unique_email(
    make_operator: MakeOperator,
) -> None:
    created = await make_operator()
    with pytest.raises(WeakPassword) as weak:
        await operators.create_operator("new@platform.example", "New", "password1234")
    assert weak.value.field == "password"
    with pytest.raises(ValidationFailed) as bad:
        await operators.create_operator("not an email", "New", PASSWORD)
    assert bad.value.field == "email"
    with pytest.raises(Conflict):
        await operators.create_operator(created.operator.email.upper(), "Again", PASSWORD)
    rows = await engine.fetch(
        "SELECT password_hash, totp_secret::text AS secret, recovery_codes "
        "FROM platform.operators WHERE id = $1",
        created.operator.id,
    )
    assert rows[0]["password_hash"].startswith("$argon2id$")
    assert _secret(created) not in rows[0]["secret"]
    assert not set(created.recovery_codes) & set(rows[0]["recovery_codes"])


async def test_the_sign_in_route_gives_an_operator_token_and_the_same_refusal_for_everyone(
    make_operator: MakeOperator,
) -> None:
    created = await make_operator()
    async with _client() as client:

        async def attempt(email: str, password: str, code: str) -> httpx.Response:
            return await client.post(
                "/platform/auth/sign-in", json={"email": email, "password": password, "code": code}
            )

        code = totp_code(_secret(created))
        unknown = await attempt("nobody@platform.example", PASSWORD, code)
        wrong = await attempt(created.operator.email, "not the password at all", code)
        assert unknown.status_code == wrong.status_code == 401
        bodies = [r.json()["error"] for r in (unknown, wrong)]
        for body in bodies:
            body.pop("request_id")
        assert bodies[0] == bodies[1] and bodies[0]["code"] == "invalid_credentials"

        missing = await client.post("/platform/auth/sign-in", json={"email": "x", "password": "y"})
        assert missing.status_code == 400 and missing.json()["error"]["field"] == "code"

        ok = await attempt(created.operator.email, PASSWORD, code)
        assert ok.status_code == 200, ok.text
        body = ok.json()
        assert body["token_type"] == "Bearer" and body["expires_in"] == 900
        viewer = await client.post(
            "/platform/graphql",
            json={"query": "{ viewer { email } }"},
            headers={"Authorization": f"Bearer {body['access_token']}"},
        )
        assert viewer.json() == {"data": {"viewer": {"email": created.operator.email}}}

        on_tenant_host = await client.post(
            "/platform/auth/sign-in",
            json={"email": created.operator.email, "password": PASSWORD, "code": code},
            headers={"Host": "acme.patone.test"},
        )
        assert on_tenant_host.status_code == 404


async def test_operator_sign_in_is_rate_limited_per_account_and_per_address(
    make_operator: MakeOperator,
) -> None:
    created = await make_operator()
    other = await make_operator("Otto Operator")
    wrong = {"email": created.operator.email, "password": "not the password at all", "code": "1"}
    async with _client() as client:
        answers = [
            await client.post("/platform/auth/sign-in", json=wrong)
            for _ in range(ratelimits.OPERATOR_SIGN_INS_PER_ACCOUNT_PER_HOUR + 1)
        ]
        assert {a.status_code for a in answers[:-1]} == {401}
        limited = answers[-1]
        assert limited.status_code == 429 and limited.json()["error"]["code"] == "rate_limited"
        assert 0 < int(limited.headers["retry-after"]) <= 3600
        right = {**wrong, "password": PASSWORD, "code": totp_code(_secret(created))}
        assert (await client.post("/platform/auth/sign-in", json=right)).status_code == 429
        others = {"email": other.operator.email, "password": PASSWORD}
        ok = await client.post(
            "/platform/auth/sign-in", json={**others, "code": totp_code(_secret(other))}
        )
        assert ok.status_code == 200  # another operator from the same address
        # Refused attempts give their slot back, so this address has spent the account's
        # allowance plus the other operator's sign-in; spend the rest of its hour.
        used = ratelimits.OPERATOR_SIGN_INS_PER_ACCOUNT_PER_HOUR + 1
        for n in range(ratelimits.OPERATOR_SIGN_INS_PER_IP_PER_HOUR - used):
            await client.post("/platform/auth/sign-in", json={**wrong, "email": f"x{n}@p.example"})
        from_here = await client.post(
            "/platform/auth/sign-in", json={**others, "code": totp_code(_secret(other), 1)}
        )
        assert from_here.status_code == 429  # the address has spent its hour
    async with _client() as elsewhere:
        fine = await elsewhere.post(
            "/platform/auth/sign-in", json={**others, "code": totp_code(_secret(other), 1)}
        )
        assert fine.status_code == 200
        # Guessing from one address never locks the operator out from another.
        owner = await elsewhere.post(
            "/platform/auth/sign-in", json={**right, "code": totp_code(_secret(created), 1)}
        )
        assert owner.status_code == 200, owner.text


def test_operators_create_prints_the_qr_code_and_recovery_codes() -> None:
    email = f"cli-{uuid.uuid4().hex[:8]}@platform.example"
    env = {"PATONE_OPERATOR_PASSWORD": PASSWORD, "SECRET_KEY": SECRET_KEY}
    created = patone("operators", "create", "--email", email, "--name", "Cli Op", env=env)
    assert created.returncode == 0, created.stderr
    assert f"Operator {email} (Cli Op) created." in created.stdout
    assert f"otpauth://totp/Patone%20Cloud%20platform:{email.replace('@', '%40')}" in created.stdout
    assert "▀" in created.stdout or "▄" in created.stdout  # the QR code, drawn in the terminal
    codes = [line.strip() for line in created.stdout.splitlines() if line.count("-") == 3]
    assert len(codes) == 10
    again = patone("operators", "create", "--email", email, "--name", "Cli Op", env=env)
    assert again.returncode == 1 and "already an operator" in again.stderr
    weak = patone(
        "operators", "create", "--email", "w" + email, "--name", "W",
        env={**env, "PATONE_OPERATOR_PASSWORD": "short"},
    )  # fmt: skip
    assert weak.returncode == 1 and "error (password)" in weak.stderr


@pytest.fixture(autouse=True)
async def _drop_cli_operators() -> AsyncIterator[None]:
    yield
    await engine.execute("DELETE FROM platform.operators WHERE email LIKE 'cli-%@platform.example'")

"""Tried as a new user would: start the product, follow the set-up link it prints, choose a
password (a weak one is refused with the reason), enrol two-factor (required of admins), sign in
with a code, use the API, get locked out."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import pyotp

from patone.core.runtime.db import engine
from patone.core.runtime.redis import get_redis, tenant_key
from patone.tenants.isolation import tenant_transaction
from patone.tenants.registry import get_tenant
from tests.demo_product import demo_env, serving
from tests.test_embedded import _free_port

ADMIN = "admin@demo-towing.example"


async def _forget_admin_password() -> None:
    """The shared demo company's admin back to "no password yet" and no two-factor (as a
    fresh install), and its sign-in counters emptied: every run signs in and fails on purpose,
    and the plan allows 20 sign-ins per account an hour (the test database outlives runs)."""
    demo = await get_tenant("demo")
    if demo is None:
        return
    redis = get_redis()
    stale = [key async for key in redis.scan_iter(match=f"{tenant_key('demo', 'rl')}/*")]
    if stale:
        await redis.delete(*stale)
    async with tenant_transaction(demo):
        await engine.execute(
            "UPDATE users SET password_hash = NULL, failed_sign_ins = 0, locked_until = NULL "
            "WHERE email = $1",
            ADMIN,
        )
        await engine.execute(
            "DELETE FROM user_two_factor WHERE user_id IN (SELECT id FROM users WHERE email = $1)",
            ADMIN,
        )


async def test_the_printed_setup_link_leads_to_sign_in_and_lockout(tmp_path: Path) -> None:
    await _forget_admin_password()
    port = _free_port()
    try:
        with serving(demo_env(port), tmp_path / "serve.log") as log:
            log.seek(0)
            printed = log.read()
            found = re.search(r"Set up\s+(http://demo\.localhost:\d+/setup/(\S+))", printed)
            assert found, printed
            assert found.group(1).startswith(f"http://demo.localhost:{port}/setup/")
            assert "patone tokens issue" not in printed
            host = {"Host": f"demo.localhost:{port}"}
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=host) as web:
                token = found.group(2)
                weak = web.post("/auth/setup", json={"token": token, "password": "alexadmin2026"})
                assert weak.status_code == 400
                assert weak.json()["error"]["field"] == "password"
                assert "name or email" in weak.json()["error"]["message"]
                chosen = "seven quiet tow hooks"
                done = web.post("/auth/setup", json={"token": token, "password": chosen})
                assert done.status_code == 200, done.text
                again = web.post("/auth/setup", json={"token": token, "password": chosen})
                assert again.status_code == 400

                enrol = web.post("/auth/sign-in", json={"email": ADMIN, "password": chosen})
                assert enrol.status_code == 403, enrol.text
                assert enrol.json()["error"]["code"] == "two_factor_enrolment_required"
                enrolling = {"Authorization": f"Bearer {enrol.json()['error']['enrolment_token']}"}
                secret = web.post("/auth/two-factor/enrol", json={}, headers=enrolling).json()[
                    "secret"
                ]
                confirmed = web.post(
                    "/auth/two-factor/confirm",
                    json={"code": pyotp.TOTP(secret).now()},
                    headers=enrolling,
                )
                assert confirmed.status_code == 200, confirmed.text
                code = pyotp.TOTP(secret).at(time.time() + 30)  # the current one is spent
                signed = web.post(
                    "/auth/sign-in", json={"email": ADMIN, "password": chosen, "code": code}
                )
                assert signed.status_code == 200, signed.text
                bearer = {"Authorization": f"Bearer {signed.json()['access_token']}"}
                me = web.post("/graphql", json={"query": "{ users { email } }"}, headers=bearer)
                assert ADMIN in {u["email"] for u in me.json()["data"]["users"]}

                wrong = {"email": ADMIN, "password": "not my password at all"}
                codes = [web.post("/auth/sign-in", json=wrong).status_code for _ in range(5)]
                assert codes == [401, 401, 401, 401, 429]
                locked = web.post("/auth/sign-in", json={"email": ADMIN, "password": chosen})
                assert locked.status_code == 429 and int(locked.headers["retry-after"]) <= 60
    finally:
        await _forget_admin_password()

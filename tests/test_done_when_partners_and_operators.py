"""Tried as a new user would, with the real product and CLI: invite a driver, who signs in and
is refused when changing prices; get a partner client and call the API with its token; as a
platform operator, create a company and suspend it through the platform API."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pyotp

from patone.core.runtime.db import engine
from patone.core.runtime.redis import get_redis
from patone.platform import provisioning
from patone.tenants.registry import get_tenant
from tests.demo_product import demo_env, serving
from tests.test_embedded import _free_port


def _cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "patone", *args],
        env={**env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _graphql(web: httpx.Client, path: str, token: str, query: str) -> httpx.Response:
    return web.post(path, json={"query": query}, headers={"Authorization": f"Bearer {token}"})


async def test_a_driver_a_partner_and_an_operator_as_new_users(tmp_path: Path) -> None:
    port = _free_port()
    env = demo_env(port)
    run = uuid.uuid4().hex[:8]
    operator_email = f"ops-{run}@platform.example"
    new_slug = f"ttdone{run}"
    # Operators' sign-ins from one address are limited per hour; the test database outlives runs.
    redis = get_redis()
    spent = [key async for key in redis.scan_iter(match="t:_platform:rl:ip/127.0.0.1/*")]
    if spent:
        await redis.delete(*spent)
    try:
        with serving(env, tmp_path / "serve.log"):
            demo_host = {"Host": f"demo.localhost:{port}"}
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=demo_host) as demo:
                # A driver invited from the command line follows their link and signs in.
                printed = _cli(
                    env, "users", "create", "--tenant", "demo", "--email",
                    f"dan-{run}@demo.example", "--name", "Dan Driver", "--role", "driver",
                )  # fmt: skip
                link = re.search(r"/setup/(\S+)", printed)
                assert link, printed
                chosen = "seven orange cones by exit 12"
                setup = demo.post("/auth/setup", json={"token": link[1], "password": chosen})
                assert setup.status_code == 200, setup.text
                signed = demo.post(
                    "/auth/sign-in", json={"email": f"dan-{run}@demo.example", "password": chosen}
                )
                assert signed.status_code == 200, signed.text
                driver = signed.json()["access_token"]
                prices = _graphql(
                    demo, "/graphql", driver,
                    'mutation { updateServiceType(code: "jump_start", input: {basePrice: 1}) '
                    "{ userErrors { code message } } }",
                ).json()  # fmt: skip
                refused = prices["data"]["updateServiceType"]["userErrors"][0]
                assert refused["code"] == "forbidden", prices

                # A partner client, its token from /oauth/token, and what its scope allows.
                printed = _cli(
                    env, "clients", "create", "--tenant", "demo", "--name",
                    f"Motor Club {run}", "--scope", "requests:read", "--scope", "requests:write",
                )  # fmt: skip
                client_id = re.search(r"client_id\s+(\S+)", printed)
                client_secret = re.search(r"client_secret\s+(\S+)", printed)
                assert client_id and client_secret, printed
                issued = demo.post(
                    "/oauth/token",
                    data={
                        "grant_type": "client_credentials",
                        "scope": "requests:read requests:write",
                    },
                    auth=(client_id[1], client_secret[1]),
                )
                assert issued.status_code == 200, issued.text
                partner = issued.json()["access_token"]
                # It sends a job with the motorist inline and sees that job, none of the
                # company's others.
                sent = _graphql(
                    demo, "/graphql", partner,
                    'mutation { createServiceRequest(input: {motorist: {name: "Robin Roe", '
                    'phone: "+1 415 555 0100"}, serviceType: "jump_start", '
                    "pickup: {lat: 52.52, lng: 13.405}}) "
                    "{ serviceRequest { number } userErrors { code message } } }",
                ).json()  # fmt: skip
                made_job = sent["data"]["createServiceRequest"]
                assert made_job["userErrors"] == [], sent
                jobs = _graphql(
                    demo, "/graphql", partner, "{ serviceRequests(first: 3) { nodes { number } } }"
                ).json()
                assert "errors" not in jobs, jobs
                assert jobs["data"]["serviceRequests"]["nodes"] == [made_job["serviceRequest"]]
                report = _graphql(
                    demo, "/graphql", partner, "{ monthlyReport(year: 2026, month: 1) }"
                ).json()
                assert report["errors"][0]["extensions"]["code"] == "forbidden"
                wrong = demo.post(
                    "/oauth/token",
                    data={"grant_type": "client_credentials"},
                    auth=(client_id[1], "not-the-secret"),
                )
                assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"

            # A platform operator: created with the CLI, two-factor always on.
            printed = _cli(
                {**env, "PATONE_OPERATOR_PASSWORD": "the platform keeps 9 keys"},
                "operators", "create", "--email", operator_email, "--name", "Olu Ops",
            )  # fmt: skip
            secret = re.search(r"secret=([A-Z2-7]+)", printed)
            assert secret, printed
            with httpx.Client(base_url=f"http://127.0.0.1:{port}") as platform:
                without_code = platform.post(
                    "/platform/auth/sign-in",
                    json={"email": operator_email, "password": "the platform keeps 9 keys"},
                )
                assert without_code.status_code in (400, 401)
                signed = platform.post(
                    "/platform/auth/sign-in",
                    json={
                        "email": operator_email,
                        "password": "the platform keeps 9 keys",
                        "code": pyotp.TOTP(secret[1]).now(),
                    },
                )
                assert signed.status_code == 200, signed.text
                operator = signed.json()["access_token"]
                created = _graphql(
                    platform, "/platform/graphql", operator,
                    f'mutation {{ createTenant(input: {{slug: "{new_slug}", name: "New Tows", '
                    f'plan: "free", adminEmail: "ann@{new_slug}.example", adminName: "Ann"}}) '
                    "{ tenant { slug status } admin { setupLink } userErrors { message } } }",
                ).json()  # fmt: skip
                made = created["data"]["createTenant"]
                assert made["tenant"] == {"slug": new_slug, "status": "active"}, created
                assert "/setup/" in made["admin"]["setupLink"]
                suspended = _graphql(
                    platform, "/platform/graphql", operator,
                    f'mutation {{ suspendTenant(slug: "{new_slug}", reason: "invoice unpaid") '
                    "{ tenant { status } userErrors { message } } }",
                ).json()  # fmt: skip
                assert suspended["data"]["suspendTenant"]["userErrors"] == [], suspended
                answer = platform.get(
                    "/api/tenant", headers={"Host": f"{new_slug}.localhost:{port}"}
                )
                assert answer.status_code == 403 and "invoice unpaid" in answer.text
                # A company's token is no key to the platform API.
                wrong_door = _graphql(platform, "/platform/graphql", driver, "{ viewer { email } }")
                assert wrong_door.status_code == 401, wrong_door.text
    finally:
        if await get_tenant(new_slug) is not None:
            await provisioning.delete_tenant(new_slug)
            await provisioning.purge_tenant(new_slug, force=True)
        await engine.execute("DELETE FROM platform.operators WHERE email = $1", operator_email)

"""What many tests set up the same way: the plugin runtime, and a real broker with a worker."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import dramatiq
import httpx
import pyotp
import redis

from patone.app import create_app
from patone.core.common.permissions import SYSTEM, Actor
from patone.core.identity import credentials
from patone.core.work.jobs import configure_broker
from patone.core.work.worker import start_in_process_worker
from patone.plugins import config as plugins
from patone.plugins.manager import PluginManager
from patone.plugins.secrets import SecretBox
from patone.settings import load_settings
from patone.tenants.registry import TenantInfo
from tests.conftest import REDIS_URL
from tests.fakes import SmtpFake


@contextmanager
def plugin_runtime(
    *extra: object,
    entry_points: bool = True,
    timeout: float = 5,
    secret: str = "k",
    allow_private_urls: bool = True,
    tenant_url: str = "http://{slug}.patone.test",
) -> Iterator[plugins.PluginRuntime]:
    """The installed plugins (and `extra` plugin objects) as the process's runtime; the local
    fakes' private addresses allowed unless told otherwise."""
    manager = PluginManager(load_entry_points=entry_points, timeout=timeout)
    for plugin in extra:
        manager.register(plugin)
    runtime = plugins.PluginRuntime(
        manager=manager,
        box=SecretBox(secret),
        allow_private_urls=allow_private_urls,
        tenant_url=tenant_url,
    )
    plugins.set_runtime(runtime)
    try:
        yield runtime
    finally:
        plugins.set_runtime(None)
        manager.close()


@asynccontextmanager
async def app_client(secret: str) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on the whole app signing with `secret`, companies at `{slug}.patone.test`
    (no lifespan: the session fixture has already connected Postgres and Redis)."""
    app = create_app(load_settings(secret_key=secret, base_domain="patone.test"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://patone.test") as client:
        yield client


async def invite(tenant: TenantInfo, email: str = "ann@example.com", role: str = "manager") -> str:
    """A new staff member's set-up token (a manager by default: two-factor is not required of
    them)."""
    invitation = await credentials.invite_user(
        tenant,
        SYSTEM,
        {"email": email, "name": "Ann Lee", "role": role},
        base_url=f"http://{tenant.slug}.patone.test",
    )
    return invitation.link.url.rsplit("/", 1)[1]


def fresh_totp_step(margin: float = 5.0) -> None:
    """Wait, if needed, until the current 30-second TOTP step has `margin` seconds left, so a
    test that compares "this step's code" across a few calls does not straddle two steps."""
    into = time.time() % 30
    if into > 30 - margin:
        time.sleep(30 - into + 0.1)


def totp_code(secret: str, steps_ahead: int = 0) -> str:
    """The authenticator app's code for `secret`, `steps_ahead` 30-second steps from now (a
    later step than one already spent, say by confirming enrolment)."""
    return pyotp.TOTP(secret).at(time.time() + 30 * steps_ahead)


def wrong_totp_code(secret: str) -> str:
    """A six-digit code that is valid in no step near now."""
    valid = {totp_code(secret, offset) for offset in (-1, 0, 1, 2)}
    return next(c for c in (f"{n:06d}" for n in range(1000)) if c not in valid)


async def enable_email(
    tenant: TenantInfo,
    smtp: SmtpFake,
    actor: Actor = SYSTEM,
    *,
    from_address: str = "dispatch@acme.example",
    timeout: float = 5,
) -> None:
    """Turn on the email-smtp plugin for `tenant`, sending through the SMTP fake."""
    await plugins.configure_plugin(
        tenant,
        actor,
        "email-smtp",
        enabled=True,
        config={
            "host": "127.0.0.1",
            "port": smtp.port,
            "from_address": from_address,
            "security": "none",
            "timeout": timeout,
        },
    )


def drop_namespace(namespace: str) -> None:
    """Delete a test broker's keys."""
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{namespace}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@asynccontextmanager
async def running_worker(threads: int = 2) -> AsyncIterator[dramatiq.Broker]:
    """A Redis broker in a namespace of its own (parallel test runs never share queues), set
    as the global broker, with an in-process worker consuming it."""
    namespace = f"patone-test-{uuid.uuid4().hex[:10]}"
    broker = configure_broker(REDIS_URL, namespace=namespace)
    stop = start_in_process_worker(broker, threads=threads)
    try:
        yield broker
    finally:
        await asyncio.to_thread(stop, 5000)
        drop_namespace(namespace)


def forged_token(
    claims: dict[str, object], *, header: dict[str, object], key: object = None
) -> str:
    """A JWT we did not issue: `header` and `claims` signed with `key` (a joserfc key, or raw
    bytes for HS256), or unsigned when the header says `alg: none`."""
    import base64
    import hashlib
    import hmac
    import json

    from joserfc import jwt as jose_jwt

    def part(data: dict[str, object]) -> str:
        raw = json.dumps(data, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    if header["alg"] == "none":
        return f"{part(header)}.{part(claims)}."
    if header["alg"] == "HS256":
        assert isinstance(key, bytes)
        signing_input = f"{part(header)}.{part(claims)}"
        mac = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
    return jose_jwt.encode(header, claims, key)  # type: ignore[arg-type]


def token_parts(token: str) -> tuple[dict[str, object], dict[str, object]]:
    """The header and claims of a JWT, read without checking anything."""
    import base64
    import json

    def read(part: str) -> dict[str, object]:
        return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))  # type: ignore[no-any-return]

    header, claims, _signature = token.split(".")
    return read(header), read(claims)


def resigned(token: str, **changes: object) -> str:
    """A genuine token's header and claims (with `changes`) signed by a key we never had."""
    from joserfc.jwk import ECKey

    header, claims = token_parts(token)
    return forged_token({**claims, **changes}, header=header, key=ECKey.generate_key("P-256"))


async def purge_and_take_slug(tenant: TenantInfo) -> TenantInfo:
    """Purge a company and create a new one under its slug, the operator saying so (the new
    one is purged by `make_tenant` like the old one would have been)."""
    from patone.platform import provisioning

    await provisioning.delete_tenant(tenant.slug)
    await provisioning.purge_tenant(tenant.slug, force=True)
    return await provisioning.create_tenant(tenant.slug, tenant.name, reuse_purged_slug=True)


@contextmanager
def serve_process(secret: str, env: dict[str, str] | None = None) -> Iterator[int]:
    """`patone serve` in its own process on the test database (no demo company; `env` added to
    its environment), healthy before the block starts; yields its port. Killed if SIGTERM does
    not stop it in 20 s (a frozen event loop does not hear it)."""
    from tests.test_embedded import _free_port

    port = _free_port()
    env = {
        **os.environ,
        "SECRET_KEY": secret,
        "PORT": str(port),
        "DEMO_TENANT": "false",
        **(env or {}),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "patone", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(300):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None:
                raise AssertionError("the server exited")
            time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

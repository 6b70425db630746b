"""Security headers on every response (JSON, HTML, errors); HSTS only over HTTPS."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.requests import Request
from starlette.routing import Route

from patone.app import create_app
from patone.core.runtime.web import CONTENT_SECURITY_POLICY, MAX_BODY, SMALL_BODY
from patone.settings import load_settings
from patone.tenants.registry import TenantInfo
from tests.conftest import MakePlan, MakeTenant


def _app(**settings: object):  # type: ignore[no-untyped-def]
    app = create_app(load_settings(**settings))

    async def crash(request: Request) -> None:
        raise RuntimeError("secret internals")

    app.router.routes.append(Route("/crash", crash))
    return app


async def _get(app, url: str, **kwargs: object) -> httpx.Response:  # type: ignore[no-untyped-def]
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    base = url.split("/", 3)
    async with httpx.AsyncClient(transport=transport, base_url="/".join(base[:3])) as client:
        return await client.get("/" + base[3], **kwargs)  # type: ignore[arg-type]


def _has_security_headers(response: httpx.Response) -> None:
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["referrer-policy"] == "strict-origin-when-cross-origin"


async def test_json_html_and_error_responses_all_carry_the_headers() -> None:
    app = _app()
    page = await _get(app, "http://localhost/")
    assert page.headers["content-type"].startswith("text/html")
    missing = await _get(app, "http://localhost/nowhere")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    crash = await _get(app, "http://localhost/crash")
    assert crash.status_code == 500
    for response in (page, missing, crash):
        _has_security_headers(response)
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert "strict-transport-security" not in response.headers


async def test_hsts_only_over_https() -> None:
    app = _app()
    secure = await _get(app, "https://localhost/")
    assert secure.headers["strict-transport-security"].startswith("max-age=31536000")
    _has_security_headers(secure)
    # A forwarded scheme counts only from a proxy the operator said to trust.
    claimed = await _get(app, "http://localhost/", headers={"X-Forwarded-Proto": "https"})
    assert "strict-transport-security" not in claimed.headers
    trusting = _app(trust_proxy_headers=True)
    proxied = await _get(trusting, "http://localhost/", headers={"X-Forwarded-Proto": "https"})
    assert "strict-transport-security" in proxied.headers


async def test_pages_with_a_token_in_the_url_send_no_referrer() -> None:
    for path in ("/setup/abc", "/reset-password/abc", "/portal/sign-in/abc"):
        response = await _get(_app(), f"http://localhost{path}")
        assert response.headers["referrer-policy"] == "no-referrer"


async def test_graphiql_keeps_its_own_policy() -> None:
    response = await _get(_app(), "http://localhost/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 200
    policy = response.headers["content-security-policy"]
    assert "'nonce-" in policy and policy != CONTENT_SECURITY_POLICY
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_error_detail_only_in_debug() -> None:
    quiet = await _get(_app(), "http://localhost/crash")
    error = quiet.json()["error"]
    assert set(error) == {"code", "message", "request_id"}
    assert error["request_id"] == quiet.headers["x-request-id"]
    assert "secret internals" not in quiet.text and "Traceback" not in quiet.text
    loud = await _get(_app(debug=True), "http://localhost/crash")
    assert "secret internals" in loud.json()["error"]["detail"]
    _has_security_headers(loud)


async def test_the_client_address_is_the_one_our_proxy_saw() -> None:
    from patone.core.runtime.web import ClientAddressMiddleware, client_ip

    seen: list[str] = []

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        seen.append(client_ip(scope))

    scope = {
        "type": "http",
        "client": ("10.0.0.2", 5000),
        "headers": [(b"x-forwarded-for", b"1.2.3.4, 198.51.100.7")],  # 1.2.3.4: the client's claim
    }
    for trust in (False, True):
        await ClientAddressMiddleware(app, trust_proxy=trust)(dict(scope), None, None)  # type: ignore[arg-type]
    assert client_ip(scope) == "10.0.0.2"  # without the middleware: never a header
    assert seen == ["10.0.0.2", "198.51.100.7"]


async def test_every_door_takes_the_client_address_from_the_proxy_it_trusts(
    make_plan: MakePlan, make_tenant: MakeTenant
) -> None:
    plan = await make_plan(sign_ins_per_ip_per_hour=1, api_requests_per_minute=1)
    acme, bolt = await make_tenant("ip", plan=plan), await make_tenant("ip", plan=plan)
    doors = [
        ("/auth/sign-in", {"json": {"email": "a@example.com", "password": "wrong password"}}),
        ("/portal/auth/verify", {"json": {"token": "not-a-link-token"}}),
        ("/oauth/token", {"data": {"grant_type": "refresh_token", "refresh_token": "prt_x"}}),
    ]
    for trust, tenant in ((False, acme), (True, bolt)):
        transport = httpx.ASGITransport(app=_app(trust_proxy_headers=trust))
        async with httpx.AsyncClient(
            transport=transport, base_url=f"http://{tenant.slug}.localhost"
        ) as client:
            for n, (path, body) in enumerate(doors):
                # Each door its own addresses: sign-in and the portal share the limit per address.
                first, second = f"198.51.100.{n}", f"198.51.100.{n + 100}"
                statuses = [
                    (
                        await client.post(path, headers={"X-Forwarded-For": hop}, **body)  # type: ignore[arg-type]
                    ).status_code
                    for hop in (first, second, f"10.1.1.1, {first}")
                ]
                # Trusted, each hop is its own client (the third repeats the first); not
                # trusted, all three are the one connection.
                assert (statuses[1] == 429) is not trust, (path, trust, statuses)
                assert statuses[2] == 429, (path, trust, statuses)


CHUNK = 65_536
JSON_TYPE = {"Content-Type": "application/json"}
FORM_TYPE = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.mark.parametrize(
    ("path", "headers", "limit"),
    [
        ("/auth/sign-in", JSON_TYPE, SMALL_BODY),
        ("/auth/reset-password", JSON_TYPE, SMALL_BODY),
        ("/auth/setup", JSON_TYPE, SMALL_BODY),
        ("/oauth/token", FORM_TYPE, 8192),
        ("/oauth/revoke", FORM_TYPE, 8192),
        ("/portal/auth/request", JSON_TYPE, SMALL_BODY),
        ("/portal/auth/verify", JSON_TYPE, SMALL_BODY),
        ("/admin/sign-in", FORM_TYPE, MAX_BODY),
        ("/plugins/sms-twilio/status", FORM_TYPE, MAX_BODY),
        ("platform:/platform/auth/sign-in", JSON_TYPE, SMALL_BODY),
    ],
)
async def test_every_door_stops_reading_a_body_at_its_limit(
    two_tenants: tuple[TenantInfo, TenantInfo], path: str, headers: dict[str, str], limit: int
) -> None:
    acme, _ = two_tenants
    host = "patone.test" if path.startswith("platform:") else f"{acme.slug}.patone.test"
    sent = 0

    async def thirty_megabytes() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(30_000_000 // CHUNK):
            sent += CHUNK
            yield b"a" * CHUNK

    app = create_app(load_settings(base_domain="patone.test"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=f"http://{host}") as client:
        started = time.perf_counter()
        answer = await client.post(
            path.removeprefix("platform:"), content=thirty_megabytes(), headers=headers
        )
        took = time.perf_counter() - started
        assert answer.status_code == 413, answer.text
        assert sent <= limit + CHUNK  # streamed: it stopped reading past the limit
        assert took < 1

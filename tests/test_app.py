"""The app shell: request ids, JSON errors without tracebacks, health, logs."""

from __future__ import annotations

import json
import logging

import httpx
import pytest
from starlette.requests import Request
from starlette.routing import Route

from patone.app import create_app
from patone.core.runtime.errors import UserError
from patone.settings import load_settings


def _app(debug: bool = False):  # type: ignore[no-untyped-def]
    app = create_app(load_settings(debug=debug))

    async def crash(request: Request) -> None:
        raise RuntimeError("secret internals")

    async def refuse(request: Request) -> None:
        raise UserError("invalid", "phone must be E.164", field="phone")

    app.router.routes.extend([Route("/crash", crash), Route("/refuse", refuse)])
    return app


async def _get(app, path: str, **kwargs: object) -> httpx.Response:  # type: ignore[no-untyped-def]
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        return await client.get(path, **kwargs)  # type: ignore[arg-type]


async def test_crash_is_a_json_500_with_request_id_and_no_traceback() -> None:
    response = await _get(_app(), "/crash")
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["code"] == "internal_error"
    assert error["request_id"] == response.headers["x-request-id"]
    assert "secret internals" not in response.text and "Traceback" not in response.text


async def test_debug_mode_shows_the_traceback() -> None:
    response = await _get(_app(debug=True), "/crash")
    assert "secret internals" in response.json()["error"]["detail"]


async def test_user_errors_carry_code_field_and_message() -> None:
    response = await _get(_app(), "/refuse")
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["field"], error["message"]) == (
        "invalid",
        "phone",
        "phone must be E.164",
    )


async def test_unknown_path_is_a_json_404() -> None:
    response = await _get(_app(), "/nope")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    ("supplied", "kept"), [("abc-123.x_y", True), ("bad id with spaces", False), ("x" * 65, False)]
)
async def test_request_id_is_echoed_when_plain(supplied: str, kept: bool) -> None:
    response = await _get(_app(), "/healthz", headers={"X-Request-ID": supplied})
    assert (response.headers["x-request-id"] == supplied) is kept


async def test_access_log_is_json_with_request_id_and_tenant(
    make_tenant, capfd: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant("logs")
    app = _app()
    logging.getLogger("patone.access").setLevel(logging.INFO)
    response = await _get(app, "/api/tenant", headers={"X-Tenant": tenant.slug})
    lines = [
        json.loads(line) for line in capfd.readouterr().err.splitlines() if line.startswith("{")
    ]
    access = [line for line in lines if line.get("logger") == "patone.access"]
    assert access, lines
    last = access[-1]
    assert last["request_id"] == response.headers["x-request-id"]
    assert last["tenant"] == tenant.slug
    assert last["status"] == 401 and last["path"] == "/api/tenant"  # no token: refused, logged


async def test_the_company_overview_is_for_its_admins_only(two_tenants) -> None:  # type: ignore[no-untyped-def]
    from tests.graphql.conftest import SECRET, token_for
    from tests.support import app_client

    acme, bolt = two_tenants
    admin, bolt_admin = await token_for(acme, "admin"), await token_for(bolt, "admin")
    dispatcher = await token_for(acme, "dispatcher")
    async with app_client(SECRET) as client:

        async def overview(token: str | None) -> httpx.Response:
            headers = {"X-Tenant": acme.slug}
            if token is not None:
                headers["Authorization"] = f"Bearer {token}"
            return await client.get("/api/tenant", headers=headers)

        anonymous = await overview(None)
        assert anonymous.status_code == 401
        assert anonymous.json()["error"]["code"] == "unauthenticated"
        assert acme.schema_name not in anonymous.text and "plan" not in anonymous.text
        refused = await overview(dispatcher)
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
        assert acme.schema_name not in refused.text
        elsewhere = await overview(bolt_admin)  # another company's admin
        assert elsewhere.status_code == 401 and bolt.schema_name not in elsewhere.text
        shown = await overview(admin)
        assert shown.status_code == 200
        assert shown.json()["tenant"]["slug"] == acme.slug
        assert shown.json()["schema"]["name"] == acme.schema_name

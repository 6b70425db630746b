"""The portal's sign-in endpoints: ask for a link or code, then exchange it for a token.

`POST /portal/auth/request` {"email"} or {"phone"} answers 202 whoever asks;
`POST /portal/auth/verify` {"token"} or {"phone", "code"} answers a customer access token.
`patone/core/identity/customer_sign_in.py` holds the rules.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from patone.core.identity import customer_sign_in
from patone.core.runtime.errors import UserError
from patone.core.runtime.web import SMALL_BODY, client_ip, request_body
from patone.tenants.web import company

ACCEPTED = "If we know this address, a sign-in message is on its way."
SIGN_IN_HERE = "Sign in on your company's address."


async def _body(request: Request) -> dict[str, Any]:
    try:
        data = json.loads(await request_body(request, SMALL_BODY))
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise UserError("invalid", "Send a JSON object.")
    return data


def routes(secret_key: str) -> list[Route]:
    """The portal's sign-in routes, signing tokens with `secret_key`."""

    async def request_sign_in(request: Request) -> JSONResponse:
        tenant = company(request.scope, SIGN_IN_HERE)
        ip = client_ip(request.scope)
        await customer_sign_in.request_sign_in(tenant, await _body(request), ip=ip)
        return JSONResponse({"status": "accepted", "message": ACCEPTED}, status_code=202)

    async def verify_sign_in(request: Request) -> JSONResponse:
        tenant = company(request.scope, SIGN_IN_HERE)
        ip = client_ip(request.scope)
        answer = await customer_sign_in.verify_sign_in(
            tenant, secret_key, await _body(request), ip=ip
        )
        return JSONResponse(answer.as_json(), headers={"Cache-Control": "no-store"})

    return [
        Route("/portal/auth/request", request_sign_in, methods=["POST"]),
        Route("/portal/auth/verify", verify_sign_in, methods=["POST"]),
    ]

"""`POST /api/driver/pings`: the driver app's light way to send GPS, without GraphQL.

On a company's host (or with X-Tenant), with the driver's access token as bearer. The body is a
JSON list of pings (or `{"pings": [...]}`), each `{"lat", "lng", "accuracy_m", "recorded_at"
(ISO 8601 with a zone), "speed_mps"?, "heading_deg"?, "driver_id"?}`; a driver leaves
`driver_id` out, staff with `drivers.manage` name any driver. Answers:

- 200 `{"accepted": n, "ignored": m}`: ignored pings were older than the driver's latest;
- 400 `invalid_pings` with `errors`: one `{index, field, code, message}` per refused ping; none
  of the request's pings was stored (send the others again without the refused ones);
- 401 without a valid token, 403 for staff who may not send positions, 413 over 1 MB, 429 over
  the caller's per-minute budget (the company-wide API budget is not spent: GPS volume grows
  with the fleet, which the plan's driver count already bounds).
"""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from patone.core.dispatch import positions
from patone.core.identity import authentication, ratelimits
from patone.core.runtime.errors import UserError
from patone.core.runtime.web import MAX_BODY, error_response, read_body, user_error_response
from patone.tenants.web import company_and_bearer

PINGS_PATH = "/api/driver/pings"


def driver_routes(secret: str) -> list[Route]:
    """The driver app's routes, checking tokens signed with `secret`."""

    async def pings(request: Request) -> Response:
        try:
            tenant, token = company_and_bearer(request.scope)
            claims = authentication.verify(secret, tenant, token)
            limit = ratelimits.hit(
                tenant, (ratelimits.Limit.api_caller, authentication.caller(claims))
            )
            actor = await authentication.actor_for(tenant, claims, limit)
        except UserError as error:  # no company or token, a bad or revoked one, a spent budget
            return user_error_response(error)
        body = await read_body(request.receive)
        if body is None:
            return error_response("too_large", f"Requests are limited to {MAX_BODY} bytes.")
        try:
            data = json.loads(body or b"null")
        except ValueError:
            data = None
        if isinstance(data, dict) and set(data) == {"pings"}:
            data = data["pings"]
        if not isinstance(data, list):
            return error_response("invalid_json", "Send a JSON list of pings.", field="pings")
        try:
            report = await positions.record_pings(tenant, actor, data)
        except UserError as error:
            return user_error_response(error)
        if report.refused:
            return error_response(
                "invalid_pings",
                f"{len(report.refused)} of {len(data)} pings were refused; none was stored.",
                field="pings",
                errors=[refusal.as_dict() for refusal in report.refused],
            )
        return JSONResponse({"accepted": report.accepted, "ignored": report.ignored})

    return [Route(PINGS_PATH, pings, methods=["POST"])]

"""`/admin/sign-in` and `/admin/sign-out`."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from patone.admin_ui.guard import (
    clear_session_cookie,
    current_session,
    form_page,
    safe_next,
)
from patone.core import sessions

# Notices are chosen by a code in the URL, never echoed from it.
NOTICES = {
    "signed_out": "You are signed out.",
    "everywhere": "You are signed out everywhere.",
}


async def sign_in_form(request: Request) -> Response:
    target = safe_next(request.query_params.get("next"))
    if current_session(request) is not None:
        return RedirectResponse(target, 303)
    return form_page(
        request,
        "sign_in.html",
        {
            "title": "Sign in",
            "next": target,
            "email": "",
            "errors": {},
            "notice": NOTICES.get(request.query_params.get("notice", "")),
        },
    )


async def sign_out(request: Request) -> Response:
    cookie = request.cookies.get(sessions.COOKIE_NAME)
    if cookie:
        await sessions.end(request.state.tenant, cookie)
    response = RedirectResponse("/admin/sign-in?notice=signed_out", 303)
    clear_session_cookie(response, request)
    return response

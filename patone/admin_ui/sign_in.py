"""`/admin/sign-in` and `/admin/sign-out`.

Signing in always opens a new session (any session the browser had is ended first), so a
session id planted before sign-in never becomes a signed-in one.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from patone.admin_ui.guard import (
    MUST_CHANGE_PAGE,
    clear_session_cookie,
    config,
    current_session,
    form_page,
    safe_next,
    set_session_cookie,
)
from patone.core import credentials, sessions
from patone.core.errors import UserError

# Notices are chosen by a code in the URL, never echoed from it.
NOTICES = {
    "signed_out": "You are signed out.",
    "everywhere": "You are signed out everywhere.",
    "password_set": "Your password is set. Sign in with it.",
    "password_reset": "Your password is changed and every other session is signed out. "
    "Sign in with the new password.",
}


def sentence(error: UserError) -> str:
    return error.message[:1].upper() + error.message[1:] + "."


def client_ip(request: Request) -> str:
    return request.client.host if request.client else ""


def _sign_in_page(
    request: Request,
    *,
    target: str,
    email: str = "",
    errors: dict[str, str] | None = None,
    problem: str | None = None,
    status_code: int = 200,
) -> Response:
    context: dict[str, Any] = {
        "title": "Sign in",
        "next": target,
        "email": email,
        "errors": errors or {},
        "problem": problem,
        "notice": NOTICES.get(request.query_params.get("notice", "")),
    }
    return form_page(request, "sign_in.html", context, status_code=status_code)


async def sign_in_form(request: Request) -> Response:
    target = safe_next(request.query_params.get("next"))
    if current_session(request) is not None:
        return RedirectResponse(target, 303)
    return _sign_in_page(request, target=target)


async def sign_in(request: Request) -> Response:
    tenant = request.state.tenant
    async with request.form() as form:
        email = str(form.get("email", ""))
        password = str(form.get("password", ""))
        target = safe_next(str(form.get("next", "")))
    try:
        who = await credentials.authenticate(tenant, email, password, ip=client_ip(request))
    except credentials.AccountLocked as locked:
        response = _sign_in_page(
            request, target=target, email=email, problem=sentence(locked), status_code=429
        )
        response.headers["Retry-After"] = str(locked.retry_after)
        return response
    except credentials.SignInFailed as failed:
        # One answer for every failure: it must not tell which part was wrong.
        return _sign_in_page(
            request, target=target, email=email, problem=sentence(failed), status_code=401
        )
    except UserError as error:
        errors = {error.field or "email": error.message}
        return _sign_in_page(request, target=target, email=email, errors=errors, status_code=400)
    previous = request.cookies.get(sessions.COOKIE_NAME)
    if previous:
        await sessions.end(tenant, previous)
    session_id, _ = await sessions.start(
        tenant,
        who.user_id,
        ip=client_ip(request),
        user_agent=request.headers.get("user-agent", ""),
        lifetimes=config(request).lifetimes,
        must_change_password=who.must_change_password,
    )
    response = RedirectResponse(
        MUST_CHANGE_PAGE if who.must_change_password else target, status_code=303
    )
    set_session_cookie(response, request, session_id)
    return response


async def sign_out(request: Request) -> Response:
    cookie = request.cookies.get(sessions.COOKIE_NAME)
    if cookie:
        await sessions.end(request.state.tenant, cookie)
    response = RedirectResponse("/admin/sign-in?notice=signed_out", 303)
    clear_session_cookie(response, request)
    return response

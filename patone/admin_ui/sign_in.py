"""`/admin/sign-in` and `/admin/sign-out`.

Signing in always opens a new session (any session the browser had is ended first), so a
session id planted before sign-in never becomes a signed-in one. An account with two-factor, or
whose role requires it, gets no session after the password: the browser holds only the token of
a pending sign-in (`staff_sign_in`, cookie `patone_sign_in`, 5 minutes, path /admin/sign-in)
while `patone.admin_ui.two_factor` asks for the code or enrols it.
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
    secure_cookie,
    set_session_cookie,
)
from patone.core.identity import credentials, sessions, staff_sign_in
from patone.core.identity.credentials import AccountLocked, SignIn
from patone.core.identity.ratelimits import RateLimited
from patone.core.runtime import web
from patone.core.runtime.errors import UserError

# Notices are chosen by a code in the URL, never echoed from it.
NOTICES = {
    "signed_out": "You are signed out.",
    "everywhere": "You are signed out everywhere.",
    "password_set": "Your password is set. Sign in with it.",
    "password_reset": "Your password is changed and every other session is signed out. "
    "Sign in with the new password.",
    "expired": "That sign-in took too long or was already used. Sign in again.",
}


CODE_PAGE = "/admin/sign-in/code"
ENROL_PAGE = "/admin/sign-in/two-factor"
PENDING_COOKIE = "patone_sign_in"


def set_pending_cookie(response: Response, request: Request, token: str) -> None:
    response.set_cookie(
        PENDING_COOKIE,
        token,
        max_age=staff_sign_in.PENDING_TTL,
        path="/admin/sign-in",
        secure=secure_cookie(request),
        httponly=True,
        samesite="lax",
    )


def clear_pending_cookie(response: Response, request: Request) -> None:
    if request.cookies.get(PENDING_COOKIE):
        response.delete_cookie(
            PENDING_COOKIE,
            path="/admin/sign-in",
            secure=secure_cookie(request),
            httponly=True,
            samesite="lax",
        )


def sentence(error: UserError) -> str:
    return error.message[:1].upper() + error.message[1:].rstrip(".") + "."


def wait_sentence(error: UserError) -> str:
    """What a refused sign-in is told: how long to wait, or the one answer for every failure."""
    if isinstance(error, RateLimited):
        minutes = max(1, -(-error.retry_after // 60))
        return (
            "Too many attempts from here or for this account. "
            f"Try again in {minutes} minute{'s' * (minutes > 1)}."
        )
    return sentence(error)


def client_ip(request: Request) -> str:
    """The client's address (`patone.core.runtime.web.client_ip`)."""
    return web.client_ip(request.scope)


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


def refused_page(request: Request, error: UserError, *, target: str, email: str = "") -> Response:
    """The sign-in page again after a refusal: a lock or a spent rate limit shows the wait
    (429 with Retry-After), any other failure the one answer that names no part."""
    status = 429 if isinstance(error, AccountLocked | RateLimited) else 401
    response = _sign_in_page(
        request, target=target, email=email, problem=wait_sentence(error), status_code=status
    )
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


async def sign_in(request: Request) -> Response:
    tenant = request.state.tenant
    async with request.form() as form:
        email = str(form.get("email", ""))
        password = str(form.get("password", ""))
        target = safe_next(str(form.get("next", "")))
    try:
        outcome = await staff_sign_in.sign_in_page(
            tenant, email, password, ip=client_ip(request), target=target
        )
    except (AccountLocked, RateLimited, credentials.SignInFailed) as refused:
        # One answer for every failure: it must not tell which part was wrong.
        return refused_page(request, refused, target=target, email=email)
    except UserError as error:
        errors = {error.field or "email": error.message}
        return _sign_in_page(request, target=target, email=email, errors=errors, status_code=400)
    if isinstance(outcome, staff_sign_in.Pending):
        page = CODE_PAGE if outcome.step is staff_sign_in.Step.two_factor else ENROL_PAGE
        response = RedirectResponse(page, status_code=303)
        set_pending_cookie(response, request, outcome.token)
        return response
    return await start_session(request, outcome, target)


async def open_session(request: Request, who: SignIn, response: Response) -> None:
    """Open a new session for a finished sign-in on `response`, ending any session the
    browser had and forgetting its pending sign-in."""
    tenant = request.state.tenant
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
    set_session_cookie(response, request, session_id)
    clear_pending_cookie(response, request)


def after_sign_in(who: SignIn, target: str) -> str:
    return MUST_CHANGE_PAGE if who.must_change_password else target


async def start_session(request: Request, who: SignIn, target: str) -> Response:
    """Open the session and go on to `target` (or to choosing a new password first)."""
    response = RedirectResponse(after_sign_in(who, target), status_code=303)
    await open_session(request, who, response)
    return response


async def sign_out(request: Request) -> Response:
    cookie = request.cookies.get(sessions.COOKIE_NAME)
    if cookie:
        await sessions.end(request.state.tenant, cookie)
    response = RedirectResponse("/admin/sign-in?notice=signed_out", 303)
    clear_session_cookie(response, request)
    return response

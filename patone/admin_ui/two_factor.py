"""Two-factor on the staff pages: the code page and the enrolment page of a sign-in, and
`/admin/account/two-factor` for a signed-in user (enrol, see the status, new recovery codes,
turn it off when the role allows).

During a sign-in the browser holds only the pending sign-in's cookie; the session starts when
the code is right, or when enrolment is confirmed (then the recovery codes are shown, once, on
the answer to that form: they are never shown again).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from patone.admin_ui.guard import current_actor, form_page, safe_next
from patone.admin_ui.render import page
from patone.admin_ui.sign_in import (
    CODE_PAGE,
    ENROL_PAGE,
    PENDING_COOKIE,
    after_sign_in,
    clear_pending_cookie,
    client_ip,
    open_session,
    refused_page,
    start_session,
)
from patone.core.identity import staff_sign_in, two_factor, users
from patone.core.identity.credentials import AccountLocked
from patone.core.identity.ratelimits import RateLimited
from patone.core.runtime.errors import UserError

ACCOUNT_PAGE = "/admin/account/two-factor"
# Notices are chosen by a code in the URL, never echoed from it.
NOTICES = {"disabled": "Two-factor is off."}


def _expired(request: Request) -> Response:
    response = RedirectResponse("/admin/sign-in?notice=expired", 303)
    clear_pending_cookie(response, request)
    return response


async def _code(request: Request, name: str = "code") -> str:
    async with request.form() as form:
        return str(form.get(name, ""))


def _enrol_page(
    request: Request,
    enrolment: two_factor.Enrolment,
    *,
    email: str,
    action: str,
    at_sign_in: bool,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    context: dict[str, Any] = {
        "title": "Set up two-factor",
        "qr_svg": Markup(enrolment.qr_svg),  # noqa: S704 - segno's own SVG, no user text in it
        "secret": enrolment.secret,
        "email": email,  # the page says which account the app will hold codes for
        "action": action,
        "at_sign_in": at_sign_in,
        "errors": errors or {},
    }
    return form_page(request, "two_factor_enrol.html", context, status_code=status_code)


def _codes_page(request: Request, codes: list[str], *, next_page: str) -> Response:
    tenant = request.state.tenant
    text = f"Recovery codes for {tenant.name} ({tenant.slug})\n\n" + "\n".join(codes) + "\n"
    return page(
        request,
        "recovery_codes.html",
        {
            "title": "Your recovery codes",
            "codes": codes,
            "next": next_page,
            # A data: link downloads without a request: the codes are never stored to serve.
            "download_href": "data:text/plain;charset=utf-8," + quote(text),
            "download_name": f"{tenant.slug}-recovery-codes.txt",
        },
    )


# --- during sign-in ---------------------------------------------------------------------------


def _code_page(
    request: Request, errors: dict[str, str] | None = None, *, status_code: int = 200
) -> Response:
    context = {"title": "Two-factor code", "errors": errors or {}, "action": CODE_PAGE}
    return form_page(request, "sign_in_code.html", context, status_code=status_code)


async def code_form(request: Request) -> Response:
    token = request.cookies.get(PENDING_COOKIE)
    try:
        await staff_sign_in.load(request.state.tenant, token, staff_sign_in.Step.two_factor)
    except staff_sign_in.PendingExpired:
        return _expired(request)
    return _code_page(request)


async def code(request: Request) -> Response:
    tenant = request.state.tenant
    token = request.cookies.get(PENDING_COOKIE) or ""
    given = await _code(request)
    try:
        pending = await staff_sign_in.prove_code(tenant, token, given, ip=client_ip(request))
    except staff_sign_in.PendingExpired:
        return _expired(request)
    except (AccountLocked, RateLimited) as refused:
        response = refused_page(request, refused, target="/admin/")
        if isinstance(refused, AccountLocked):
            clear_pending_cookie(response, request)
        return response
    except two_factor.InvalidCode as wrong:
        return _code_page(request, {"code": wrong.message}, status_code=401)
    return await start_session(request, pending.who, safe_next(pending.target))


async def _pending_email(request: Request, token: str) -> str:
    pending = await staff_sign_in.load(request.state.tenant, token, staff_sign_in.Step.enrolment)
    return pending.who.email


async def enrol_form(request: Request) -> Response:
    token = request.cookies.get(PENDING_COOKIE) or ""
    try:
        email = await _pending_email(request, token)
        enrolment = await staff_sign_in.enrolment(request.state.tenant, token)
    except staff_sign_in.PendingExpired:
        return _expired(request)
    return _enrol_page(request, enrolment, email=email, action=ENROL_PAGE, at_sign_in=True)


async def enrol(request: Request) -> Response:
    tenant = request.state.tenant
    token = request.cookies.get(PENDING_COOKIE) or ""
    given = await _code(request)
    try:
        pending, codes = await staff_sign_in.confirm_enrolment(tenant, token, given)
    except staff_sign_in.PendingExpired:
        return _expired(request)
    except UserError as error:
        try:
            email = await _pending_email(request, token)
            enrolment = await staff_sign_in.enrolment(tenant, token)
        except staff_sign_in.PendingExpired:
            return _expired(request)
        return _enrol_page(
            request,
            enrolment,
            email=email,
            action=ENROL_PAGE,
            at_sign_in=True,
            errors={"code": error.message},
            status_code=400,
        )
    await staff_sign_in.finish_enrolled(tenant, pending, ip=client_ip(request))
    response = _codes_page(
        request, codes, next_page=after_sign_in(pending.who, safe_next(pending.target))
    )
    await open_session(request, pending.who, response)
    return response


# --- a signed-in user's own two-factor --------------------------------------------------------


async def _own_email(request: Request) -> str:
    profile = await users.own_profile(request.state.tenant, current_actor(request))
    return profile.email


async def _account_page(
    request: Request,
    errors: dict[str, str] | None = None,
    *,
    problem: str | None = None,
    status_code: int = 200,
) -> Response:
    actor = current_actor(request)
    status = await two_factor.status(request.state.tenant, int(actor.id))
    return form_page(
        request,
        "two_factor.html",
        {
            "title": "Two-factor",
            "status": status,
            "errors": errors or {},
            "problem": problem,
            "notice": NOTICES.get(request.query_params.get("notice", "")),
        },
        status_code=status_code,
    )


async def account_page(request: Request) -> Response:
    return await _account_page(request)


async def begin(request: Request) -> Response:
    tenant = request.state.tenant
    try:
        enrolment = await two_factor.begin_enrolment(tenant, current_actor(request))
    except UserError as error:
        return await _account_page(request, problem=error.message, status_code=409)
    return _enrol_page(
        request,
        enrolment,
        email=await _own_email(request),
        action=f"{ACCOUNT_PAGE}/confirm",
        at_sign_in=False,
    )


async def confirm(request: Request) -> Response:
    tenant = request.state.tenant
    actor = current_actor(request)
    given = await _code(request)
    try:
        codes = await two_factor.confirm_enrolment(tenant, actor, given)
    except UserError as error:
        enrolment = await two_factor.pending_enrolment(tenant, int(actor.id))
        if enrolment is None:
            return await _account_page(request, problem=error.message, status_code=400)
        return _enrol_page(
            request,
            enrolment,
            email=await _own_email(request),
            action=f"{ACCOUNT_PAGE}/confirm",
            at_sign_in=False,
            errors={"code": error.message},
            status_code=400,
        )
    return _codes_page(request, codes, next_page=ACCOUNT_PAGE)


async def regenerate(request: Request) -> Response:
    given = await _code(request, "regenerate_code")
    try:
        codes = await two_factor.regenerate_recovery_codes(
            request.state.tenant, current_actor(request), given
        )
    except UserError as error:
        return await _account_page(request, {"regenerate_code": error.message}, status_code=400)
    return _codes_page(request, codes, next_page=ACCOUNT_PAGE)


async def disable(request: Request) -> Response:
    given = await _code(request, "disable_code")
    try:
        await two_factor.disable(request.state.tenant, current_actor(request), given)
    except UserError as error:
        return await _account_page(request, {"disable_code": error.message}, status_code=400)
    return RedirectResponse(f"{ACCOUNT_PAGE}?notice=disabled", 303)

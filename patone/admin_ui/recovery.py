"""Pages reached from emailed links, before sign-in: `/setup/{token}` (a new account's first
password), `/reset-password` (ask for a link) and `/reset-password/{token}` (choose a new one).

Asking for a reset link gets the same page whether or not the address has an account. A reset
signs the account out everywhere: whoever knew the old password loses their sessions too.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from patone.admin_ui.guard import form_page
from patone.admin_ui.password import POLICY
from patone.admin_ui.sign_in import client_ip, sentence, wait_sentence
from patone.core.identity import credentials, staff_sign_in
from patone.core.identity.ratelimits import RateLimited
from patone.core.runtime.errors import UserError


def _password_page(
    request: Request,
    purpose: str,
    *,
    errors: dict[str, str] | None = None,
    problem: str | None = None,
    status_code: int = 200,
) -> Response:
    context: dict[str, Any] = {
        "title": "Set your password" if purpose == "setup" else "Choose a new password",
        "purpose": purpose,
        "action": request.url.path,
        "policy": POLICY,
        "errors": errors or {},
        "problem": problem,
    }
    return form_page(request, "password_link.html", context, status_code=status_code)


async def _from_link(request: Request, purpose: str) -> Response:
    tenant = request.state.tenant
    token = request.path_params["token"]
    async with request.form() as form:
        password = str(form.get("password", ""))
    try:
        await staff_sign_in.check_link(tenant, token, ip=client_ip(request))
        if purpose == "setup":
            await credentials.complete_setup(tenant, token, password)
        else:
            await credentials.reset_password(tenant, token, password)
    except RateLimited as error:
        response = _password_page(request, purpose, problem=wait_sentence(error), status_code=429)
        response.headers["Retry-After"] = str(error.retry_after)
        return response
    except credentials.InvalidLink as error:
        return _password_page(request, purpose, problem=sentence(error), status_code=400)
    except UserError as error:
        return _password_page(
            request, purpose, errors={error.field or "password": error.message}, status_code=400
        )
    notice = "password_set" if purpose == "setup" else "password_reset"
    return RedirectResponse(f"/admin/sign-in?notice={notice}", 303)


async def setup_form(request: Request) -> Response:
    return _password_page(request, "setup")


async def setup(request: Request) -> Response:
    return await _from_link(request, "setup")


async def reset_form(request: Request) -> Response:
    return _password_page(request, "reset")


async def reset(request: Request) -> Response:
    return await _from_link(request, "reset")


def _request_page(
    request: Request,
    *,
    email: str = "",
    errors: dict[str, str] | None = None,
    sent: bool = False,
    status_code: int = 200,
) -> Response:
    context = {"title": "Reset your password", "email": email, "errors": errors or {}, "sent": sent}
    return form_page(request, "reset_request.html", context, status_code=status_code)


async def request_form(request: Request) -> Response:
    return _request_page(request)


async def request_link(request: Request) -> Response:
    async with request.form() as form:
        email = str(form.get("email", ""))
    try:
        await credentials.request_reset(request.state.tenant, email, ip=client_ip(request))
    except RateLimited as error:
        # The same for every address, with an account or without: it tells nobody who has one.
        response = _request_page(
            request, email=email, errors={"email": wait_sentence(error)}, status_code=429
        )
        response.headers["Retry-After"] = str(error.retry_after)
        return response
    except UserError as error:
        # Only a malformed address is refused; that says nothing about anyone's account.
        return _request_page(
            request, email=email, errors={error.field or "email": error.message}, status_code=400
        )
    return _request_page(request, sent=True)

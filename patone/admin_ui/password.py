"""`/admin/account/password`: choose a new password (required first when an account is
flagged to change it). Other sessions of the user end when it changes."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from patone.admin_ui.guard import current_actor, current_session, form_page
from patone.core.identity import credentials, sessions
from patone.core.runtime.errors import UserError

POLICY = "At least 12 characters; not a common password; not containing your name or email."


def _page(
    request: Request, errors: dict[str, str] | None = None, *, status_code: int = 200
) -> Response:
    session = current_session(request)
    return form_page(
        request,
        "change_password.html",
        {
            "title": "Choose a new password",
            "required": bool(session and session.must_change_password),
            "policy": POLICY,
            "errors": errors or {},
            "done": request.query_params.get("notice") == "changed",
        },
        status_code=status_code,
    )


async def change_password_form(request: Request) -> Response:
    return _page(request)


async def change_password(request: Request) -> Response:
    actor = current_actor(request)
    session = current_session(request)
    assert session is not None
    async with request.form() as form:
        current = str(form.get("current_password", ""))
        new = str(form.get("password", ""))
    try:
        await credentials.change_password(
            request.state.tenant, actor, current, new, keep_session=session.key
        )
    except UserError as error:
        return _page(request, {error.field or "password": error.message}, status_code=400)
    await sessions.password_changed(request.state.tenant, session)
    target = "/admin/" if session.must_change_password else "/admin/account/password?notice=changed"
    return RedirectResponse(target, 303)

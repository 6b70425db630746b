"""`/admin/account/sessions`: where you are signed in; end one session or all of them."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from patone.admin_ui.devices import describe
from patone.admin_ui.guard import clear_session_cookie, current_actor, current_session
from patone.admin_ui.render import page
from patone.core.identity import sessions

SESSIONS = "/admin/account/sessions"
# Notices are chosen by a code in the URL, never echoed from it.
NOTICES = {
    "revoked": "That session is signed out.",
    "gone": "That session had already ended.",
}


async def sessions_page(request: Request) -> Response:
    actor = current_actor(request)
    current = current_session(request)
    listed = await sessions.list_sessions(request.state.tenant, int(actor.id))
    return page(
        request,
        "sessions.html",
        {
            "title": "Your sessions",
            "sessions": listed,
            "devices": {found.key: describe(found.user_agent) for found in listed},
            "current_key": current.key if current else None,
            "notice": NOTICES.get(request.query_params.get("notice", "")),
        },
    )


async def revoke_one(request: Request) -> Response:
    actor = current_actor(request)
    async with request.form() as form:
        key = str(form.get("session", ""))
    ended = await sessions.revoke(request.state.tenant, int(actor.id), key, actor=actor)
    return RedirectResponse(f"{SESSIONS}?notice={'revoked' if ended else 'gone'}", 303)


async def revoke_everywhere(request: Request) -> Response:
    """Sign out every browser of this user, this one included."""
    actor = current_actor(request)
    await sessions.revoke_all(request.state.tenant, int(actor.id), actor=actor)
    response = RedirectResponse("/admin/sign-in?notice=everywhere", 303)
    clear_session_cookie(response, request)
    return response

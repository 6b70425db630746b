"""`/admin/`: the signed-in home: who you are, in which company, and where to go next."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from patone.admin_ui.guard import current_actor
from patone.admin_ui.render import page
from patone.core.common.permissions import ROLES
from patone.core.identity import users


async def home(request: Request) -> Response:
    actor = current_actor(request)
    user = await users.own_profile(request.state.tenant, actor)
    role = user.role
    return page(
        request,
        "home.html",
        {"title": "Home", "user": user, "role_title": ROLES.get(role, role)},
    )

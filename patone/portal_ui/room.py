"""The portal room: the company's front page and the customers' sign-in."""

from __future__ import annotations

from starlette.routing import BaseRoute, Route

from patone.core.runtime.rooms import Assembly, Room
from patone.portal_ui import sign_in
from patone.portal_ui.home import home


def _routes(assembly: Assembly) -> list[BaseRoute]:
    return [Route("/", home), *sign_in.routes(assembly.secret)]


ROOM = Room("portal", routes=_routes)

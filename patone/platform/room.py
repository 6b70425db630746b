"""The platform room: the operators' API and console on the platform's own host."""

from __future__ import annotations

from starlette.routing import BaseRoute

from patone.core.runtime.rooms import Assembly, Room
from patone.platform.api import platform_routes


def _routes(assembly: Assembly) -> list[BaseRoute]:
    return platform_routes(assembly.secret, assembly.settings.tenant_delete_grace_days)


ROOM = Room("platform", routes=_routes)

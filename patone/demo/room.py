"""The demo room: on the embedded default, the demo company is there when the server is
(`app.state.demo`, and `app.state.demo_setup_link` for its admin's first sign-in)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette

from patone.core.runtime.rooms import Assembly, Room
from patone.demo import tenant as demo


@asynccontextmanager
async def _start(assembly: Assembly, app: Starlette) -> AsyncIterator[None]:
    app.state.demo, app.state.demo_setup_link = None, None
    settings = assembly.settings
    if settings.create_demo_tenant:
        base_url = settings.tenant_url_template().replace("{slug}", demo.DEMO_SLUG)
        app.state.demo, app.state.demo_setup_link = await demo.ensure_demo_tenant(base_url)
    yield


ROOM = Room("demo", start=_start)

"""The plugins room: the installation's plugins loaded and started, the local file store
configured, and the plugins' own HTTP routes (under /plugins/<name>) and file links."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.routing import BaseRoute, Route

from patone.core.runtime.rooms import Assembly, Room, step
from patone.plugins import config as plugins
from patone.plugins.builtin import storage_local
from patone.plugins.host import PluginHost, plugin_routes
from patone.plugins.loops import close_loop_clients

log = logging.getLogger(__name__)


def _routes(assembly: Assembly) -> list[BaseRoute]:
    assert assembly.delivery_reports is not None, "the app names where delivery reports go"
    return [
        Route("/files/{key:path}", storage_local.serve),
        *plugin_routes(PluginHost(delivery_reports=assembly.delivery_reports)),
    ]


def _close() -> None:
    try:
        runtime = plugins.get_runtime()
    except RuntimeError:
        return
    plugins.set_runtime(None)
    runtime.manager.close()


@asynccontextmanager
async def _start(assembly: Assembly, app: Starlette) -> AsyncIterator[None]:
    async with (
        step("plugins", lambda: asyncio.to_thread(_close)),
        step("plugin connections", close_loop_clients),
    ):
        plugins.set_runtime(plugins.runtime_from_settings(assembly.settings))
        for failed in await plugins.get_runtime().manager.call_all("startup", app=app):
            if failed.error:
                log.error("plugin start-up failed: %s", failed.error)
        storage_local.configure(storage_local.LocalFiles.from_settings(assembly.settings))
        yield


ROOM = Room("plugins", routes=_routes, start=_start)

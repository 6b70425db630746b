"""Clients that belong to one event loop (HTTP sessions, SMTP connections), closed with it.

A plugin that keeps connections between calls keeps them per event loop (an aiohttp session or
an asyncio stream cannot move to another loop) and registers, with `@closes_with_loop`, a
coroutine that closes the current loop's ones. Workers call `close_loop_clients()` on their
event loop before it stops, and the app on shutdown.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

Closer = Callable[[], Awaitable[None]]
_closers: list[Closer] = []


def closes_with_loop(closer: Closer) -> Closer:
    """Register `async def closer()` that closes the running loop's clients of a plugin."""
    _closers.append(closer)
    return closer


async def close_loop_clients() -> None:
    """Close every plugin's clients of the running loop; a failing closer is logged."""
    for closer in _closers:
        try:
            await closer()
        except Exception:
            log.exception("closing a plugin's connections failed")

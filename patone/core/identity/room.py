"""The identity room: the keys that seal two-factor secrets and sign access tokens (loaded at
start-up and refreshed while the server runs), and the jobs that send sign-in links."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette

from patone.core.identity import two_factor
from patone.core.identity.signing_keys import keyring_for
from patone.core.runtime.rooms import Assembly, Room, background


def _configure(assembly: Assembly) -> None:
    two_factor.configure(assembly.secret, assembly.settings.secret_key_fallbacks)


@asynccontextmanager
async def _start(assembly: Assembly, app: Starlette) -> AsyncIterator[None]:
    keyring = keyring_for(assembly.secret, assembly.settings.secret_key_fallbacks)
    await keyring.load()
    refresher = asyncio.create_task(keyring.refresh_forever())
    async with background("signing keys", refresher):
        yield


ROOM = Room(
    "identity",
    configure=_configure,
    start=_start,
    actors=(
        "patone.core.identity.credentials",
        "patone.core.identity.customer_sign_in",
        "patone.core.identity.signing_keys",
    ),
)

"""The installed plugins and a real broker with a worker, for the tests that send and receive."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import dramatiq
import pytest

from patone.plugins import config as plugins
from tests.support import plugin_runtime, running_worker


@pytest.fixture
def runtime() -> Iterator[plugins.PluginRuntime]:
    with plugin_runtime() as runtime:
        yield runtime


@pytest.fixture
async def broker(runtime: plugins.PluginRuntime) -> AsyncIterator[dramatiq.Broker]:
    async with running_worker(threads=4) as broker:
        yield broker

"""What many tests set up the same way: the plugin runtime, and a real broker with a worker."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import dramatiq
import redis

from patone.core.jobs import configure_broker
from patone.core.worker import start_in_process_worker
from patone.plugins import config as plugins
from patone.plugins.manager import PluginManager
from patone.plugins.secrets import SecretBox
from tests.conftest import REDIS_URL


@contextmanager
def plugin_runtime(
    *extra: object,
    entry_points: bool = True,
    timeout: float = 5,
    secret: str = "k",
    allow_private_urls: bool = True,
    tenant_url: str = "http://{slug}.patone.test",
) -> Iterator[plugins.PluginRuntime]:
    """The installed plugins (and `extra` plugin objects) as the process's runtime; the local
    fakes' private addresses allowed unless told otherwise."""
    manager = PluginManager(load_entry_points=entry_points, timeout=timeout)
    for plugin in extra:
        manager.register(plugin)
    runtime = plugins.PluginRuntime(
        manager=manager,
        box=SecretBox(secret),
        allow_private_urls=allow_private_urls,
        tenant_url=tenant_url,
    )
    plugins.set_runtime(runtime)
    try:
        yield runtime
    finally:
        plugins.set_runtime(None)
        manager.close()


def drop_namespace(namespace: str) -> None:
    """Delete a test broker's keys."""
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{namespace}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@asynccontextmanager
async def running_worker(threads: int = 2) -> AsyncIterator[dramatiq.Broker]:
    """A Redis broker in a namespace of its own (parallel test runs never share queues), set
    as the global broker, with an in-process worker consuming it."""
    namespace = f"patone-test-{uuid.uuid4().hex[:10]}"
    broker = configure_broker(REDIS_URL, namespace=namespace)
    stop = start_in_process_worker(broker, threads=threads)
    try:
        yield broker
    finally:
        await asyncio.to_thread(stop, 5000)
        drop_namespace(namespace)

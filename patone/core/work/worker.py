"""Running jobs: `patone worker` processes, and the in-process worker of `patone serve`.

Tenant actors are `async` and run on the event loop of Dramatiq's AsyncIO middleware (one loop
thread per worker process; the worker threads hand their coroutines to it). asyncpg pools and
redis.asyncio clients belong to the loop that created them, so `WorkerResources` opens them on
that loop as the worker boots (before any message is consumed) and closes them on shutdown:

- a worker process (`run_worker`) connects the process-wide `engine` and Redis client there;
- an in-process worker (`start_in_process_worker`, next to the web app, whose engine is already
  connected on the app's loop) gets pools of its own on the worker's loop: `engine` picks the
  pools of the running loop (`engine.open_loop_pools`); the app's loop keeps its own. Redis
  clients are per loop as well: `get_redis()` on the worker's loop makes the worker's own.

Dramatiq's AsyncIO middleware keeps its loop in a module global: one worker per process.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast

import dramatiq
from dramatiq.asyncio import get_event_loop_thread
from dramatiq.middleware import AsyncIO, Middleware, MiddlewareError

from patone.core.runtime.db import engine
from patone.core.runtime.redis import close_loop_redis, close_redis, connect_redis
from patone.core.work.jobs import NAMESPACE, TenantActor, bind_actors, configure_broker
from patone.log import configure_logging
from patone.plugins import config as plugins
from patone.plugins.loops import close_loop_clients
from patone.settings import Settings, load_settings

log = logging.getLogger(__name__)

STOP_TIMEOUT_MS = 30_000  # for the jobs under way to finish
STOP_GRACE_MS = 10_000  # and for the consumers to hand back what they hold


class WorkerResources(Middleware):
    """Opens the database pools (and, for a worker process, Redis) on the worker's loop.

    With `dsns`, a worker process: `engine.connect(dsns)` and `connect_redis(redis_url)`.
    Without, an in-process worker: pools of its own for each shard the engine already has.
    Must come after `AsyncIO` in the broker's middleware (its loop runs by then).
    """

    def __init__(
        self,
        *,
        dsns: dict[str, str] | None = None,
        redis_url: str | None = None,
        pool_max: int = 10,
    ) -> None:
        self.dsns = dsns
        self.redis_url = redis_url
        self.pool_max = pool_max

    def _run(self, coroutine: Any) -> Any:
        loop_thread = get_event_loop_thread()
        if loop_thread is None:
            raise MiddlewareError("the AsyncIO middleware must come before WorkerResources")
        return loop_thread.run_coroutine(coroutine)

    async def _open(self) -> None:
        if self.dsns is not None:
            await engine.connect(self.dsns, min_size=1, max_size=self.pool_max)
            if self.redis_url:
                await connect_redis(self.redis_url)
            return
        if not engine.connected:
            raise MiddlewareError("an in-process worker needs a connected engine")
        await engine.open_loop_pools(max_size=self.pool_max)

    async def _close(self) -> None:
        await close_loop_clients()
        if self.dsns is not None:
            await close_redis()
            await engine.disconnect()
            return
        await close_loop_redis()
        await engine.close_loop_pools()

    def before_worker_boot(self, broker: dramatiq.Broker, worker: Any) -> None:
        try:
            self._run(self._open())
        except MiddlewareError:
            raise
        except Exception as error:  # Dramatiq logs and ignores anything but MiddlewareError
            raise MiddlewareError(f"worker could not connect: {error}") from error

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: Any) -> None:
        self._run(self._close())


def import_actor_modules(modules: Iterable[str]) -> None:
    for module in modules:
        importlib.import_module(module)


def plugin_actors() -> list[str]:
    """The tenant actors installed plugins declare through their `actors` hook (declared with
    `patone.core.work.jobs.tenant_actor`); anything else a plugin returns is logged and ignored."""
    try:
        manager = plugins.get_runtime().manager
    except RuntimeError:
        return []
    names = []
    for plugin, impl in manager.implementations("actors"):
        try:
            declared: list[object] = list(cast(Iterable[object], impl.function() or []))
        except Exception:
            log.exception("plugin actors failed", extra={"plugin": plugin})
            continue
        for actor in declared:
            if isinstance(actor, TenantActor):
                names.append(actor.actor_name)
            else:
                log.error(
                    "plugin %s: %r is not a tenant actor (use patone.core.work.jobs.tenant_actor)",
                    plugin,
                    actor,
                    extra={"plugin": plugin},
                )
    return names


def _start(
    broker: dramatiq.Broker,
    resources: WorkerResources,
    *,
    threads: int,
    queues: Iterable[str] | None,
) -> Callable[..., None]:
    plugin_actors()  # importing and declaring them is what binds them below
    bind_actors(broker)
    broker.add_middleware(resources, after=AsyncIO)
    worker = dramatiq.Worker(broker, worker_threads=threads, queues=set(queues or ()) or None)
    try:
        worker.start()
    except BaseException:
        # Dramatiq has started its loop thread and consumers: take them down again.
        with contextlib.suppress(Exception):
            worker.stop(timeout=1000)
        _forget(broker, resources, worker)
        raise

    def stop(timeout_ms: int = STOP_TIMEOUT_MS) -> None:
        """Finish the jobs under way (up to `timeout_ms`), return prefetched messages to Redis,
        close the pools. Blocks: from async code call it through `asyncio.to_thread`."""
        worker.stop(timeout=timeout_ms)
        _forget(broker, resources, worker)

    return stop


def _forget(broker: dramatiq.Broker, resources: WorkerResources, worker: Any) -> None:
    # Dramatiq never removes the middleware a Worker adds; a later worker on the same broker
    # would otherwise inherit this one's.
    broker.middleware[:] = [
        m
        for m in broker.middleware
        if m is not resources and getattr(m, "worker", None) is not worker
    ]


def start_in_process_worker(
    broker: dramatiq.Broker,
    *,
    threads: int = 2,
    queues: Iterable[str] | None = None,
    pool_max: int = 4,
) -> Callable[..., None]:
    """Start a worker in this process (next to the web app, whose engine is connected);
    returns its blocking `stop(timeout_ms=30000)` function."""
    return _start(broker, WorkerResources(pool_max=pool_max), threads=threads, queues=queues)


def _dsns(settings: Settings, database_url: str | None) -> dict[str, str]:
    url = database_url or settings.database_url
    if not url:
        raise ValueError("a worker needs DATABASE_URL (or the embedded server's URL)")
    return {"default": url, **settings.shards}


def serve_worker(
    settings: Settings,
    *,
    database_url: str | None = None,
    redis_url: str | None = None,
    threads: int = 4,
    queues: Iterable[str] | None = None,
    modules: Sequence[str] = (),
    namespace: str = NAMESPACE,
    stop_event: threading.Event | None = None,
) -> int:
    """Run one worker in this process until SIGTERM/SIGINT (or `stop_event`); returns 0, or 1
    if it had to leave jobs unfinished (a second signal, or the jobs outlasting the time-out).
    `modules` declare the jobs it runs (`patone.app.actor_modules()`: every room's)."""
    url = redis_url or settings.redis_url
    if not url:
        raise ValueError("a worker needs REDIS_URL (or the embedded server's URL)")
    broker = configure_broker(url, broker_url=settings.broker_url, namespace=namespace)
    plugins.set_runtime(plugins.runtime_from_settings(settings))
    import_actor_modules(modules)
    resources = WorkerResources(
        dsns=_dsns(settings, database_url), redis_url=url, pool_max=threads + 2
    )
    stop = _start(broker, resources, threads=threads, queues=queues)
    done = stop_event or threading.Event()
    again = threading.Event()  # a second Ctrl+C: stop waiting for the jobs under way
    if threading.current_thread() is threading.main_thread():

        def on_signal(*_: Any) -> None:
            (again if done.is_set() else done).set()

        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, on_signal)
    log.info("worker started", extra={"threads": threads, "namespace": namespace})
    # Wake up now and then: a signal caught by another thread (pika's, Dramatiq's) only runs
    # its handler when the main thread next runs Python code, which a bare wait never does.
    while not done.wait(timeout=0.2):
        pass
    log.info("worker stopping (press Ctrl+C again to stop at once)")
    return _stop_within(stop, again, (STOP_TIMEOUT_MS + STOP_GRACE_MS) / 1000)


def _stop_within(stop: Callable[..., None], again: threading.Event, seconds: float) -> int:
    """Run `stop` for at most `seconds` (or until `again` is set); 0 if it finished, else 1.
    Leaving early loses nothing: the broker gives unacknowledged messages back (RabbitMQ when
    the connection drops, Redis when the worker's heartbeat stops)."""
    stopper = threading.Thread(target=stop, name="worker-stop", daemon=True)
    stopper.start()
    deadline = time.monotonic() + seconds
    while stopper.is_alive() and not again.is_set() and time.monotonic() < deadline:
        stopper.join(timeout=0.1)
    if stopper.is_alive():
        log.warning("worker left before its jobs finished; the broker will run them again")
        loop_thread = get_event_loop_thread()  # the one thread Python waits for on exit
        if loop_thread is not None and loop_thread.loop.is_running():
            loop_thread.loop.call_soon_threadsafe(loop_thread.loop.stop)
        return 1
    return 0


def run_worker(
    settings: Settings,
    *,
    database_url: str | None = None,
    redis_url: str | None = None,
    processes: int = 1,
    threads: int = 4,
    queues: Iterable[str] | None = None,
    modules: Sequence[str] = (),
    namespace: str = NAMESPACE,
) -> int:
    """`patone worker`: `processes` worker processes of `threads` threads each, until SIGTERM
    or SIGINT (forwarded to every process); returns the worst exit code."""
    if processes <= 1:
        configure_logging(settings.log_level)  # child processes do it in `main`
        return serve_worker(
            settings,
            database_url=database_url,
            redis_url=redis_url,
            threads=threads,
            queues=queues,
            modules=modules,
            namespace=namespace,
        )
    command = worker_command(threads=threads, queues=queues, modules=modules, namespace=namespace)
    env = worker_env(settings, database_url=database_url, redis_url=redis_url)
    children = [subprocess.Popen(command, env=env) for _ in range(processes)]  # noqa: S603

    def forward(signum: int, _frame: Any) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, forward)
    return max(child.wait() for child in children)


def worker_command(
    *,
    threads: int = 4,
    queues: Iterable[str] | None = None,
    modules: Sequence[str] = (),
    namespace: str = NAMESPACE,
) -> list[str]:
    """The command line of one worker process (`python -m patone.core.work.worker ...`)."""
    command = [sys.executable, "-m", "patone.core.work.worker", "--threads", str(threads)]
    command += ["--namespace", namespace]
    for queue in queues or ():
        command += ["--queue", queue]
    for module in modules:
        command += ["--module", module]
    return command


def worker_env(
    settings: Settings, *, database_url: str | None = None, redis_url: str | None = None
) -> dict[str, str]:
    """The environment of a worker process: URLs go there, not on the command line (`ps`)."""
    env = dict(os.environ)
    env["DATABASE_URL"] = database_url or settings.database_url or ""
    env["REDIS_URL"] = redis_url or settings.redis_url or ""
    if settings.broker_url:
        env["BROKER_URL"] = settings.broker_url
    return env


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m patone.core.work.worker")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--namespace", default=NAMESPACE)
    parser.add_argument("--queue", action="append", default=[])
    parser.add_argument("--module", action="append", default=[])
    args = parser.parse_args(argv)
    settings = load_settings()
    configure_logging(settings.log_level)
    return serve_worker(
        settings,
        threads=args.threads,
        queues=args.queue or None,
        modules=args.module,
        namespace=args.namespace,
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

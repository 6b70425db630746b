"""Background jobs on Dramatiq: the broker, tenant actors and the dead-letter store.

**Broker.** `configure_broker(url)` builds a RedisBroker (namespace "patone") whose settings
bring a killed worker's messages back within 30 s. Dramatiq's Redis broker only notices a dead
worker when its heartbeat is older than `heartbeat_timeout`, and only requeues that worker's
unacknowledged messages during "maintenance", which runs on a random `maintenance_chance` in a
million broker commands, per queue. Its defaults (60 s, 1 in 1,000) leave an idle system's
orphaned messages stranded for minutes. Here:

- `HEARTBEAT_TIMEOUT_MS` = 15 s: a worker is declared dead 15 s after its last broker command;
- `RedeliverySweep` (part of the broker's middleware) makes every running worker send one broker
  command with maintenance forced on for each of its queues every `SWEEP_INTERVAL` = 5 s. That
  command is also its heartbeat, so a worker busy with long jobs (whose consumers stop fetching
  when their prefetch is full) is never mistaken for a dead one: 3 sweeps fit in the timeout;
- `MAINTENANCE_CHANCE` = 10,000 (1 %): the random maintenance stays on as a backstop.

So a killed worker's message is back on its queue at most 15 s + 5 s after the worker's last
command, and picked up by a live worker within about a second after that (idle consumers poll
once a second): under 25 s. Maintenance with no dead worker costs two range reads; with a dead
worker it runs `KEYS __acks__.<worker>*` until that worker's acknowledgement sets are empty.

**Event loop.** Async actors run on Dramatiq's AsyncIO middleware's loop thread; `JobLoop` is
that middleware with the loop from `new_event_loop()`: uvloop's where it is installed. Its loop,
transports and timers are C, where asyncio's are Python: the event loop was the largest part of
a send job's own CPU (every provider call, query and Redis command is several loop turns).

**Actors.** `@tenant_actor` declares a job of one tenant: `async def fn(tenant_slug, *args)`,
queued with `.send(tenant, *args)`: the message carries the tenant's slug (its first argument)
and its immutable id (option `tenant_id`). Before the function runs, the wrapper resolves the
tenant from the registry and refuses one that is deleted or suspended (`TenantUnavailable`: not
retried, dead-lettered with that reason). A message whose tenant no longer exists, or whose slug
now names another tenant (one purged, its slug taken again), ends as `TenantGone`: logged and
dropped, never run and never dead-lettered under keys the slug now names; a job that fails
because its tenant was purged while it ran ends the same way. Then the wrapper opens
`tenant_transaction(tenant)` around the function (pass `transaction=False` for jobs that call
slow providers and must open short transactions of their own, through `current_job().tenant`).
Retries default to 5 with back-off from 1 s to 60 s, so a failing job is dead-lettered within
about a minute, not Dramatiq's 20 retries over days. The message id (kept across retries and
dead-letter retries) is the idempotency key: `current_message_id.get()` inside the function.

Actors bind to a broker lazily: declaring one needs no broker, `.send()` uses the broker set by
`configure_broker` (`dramatiq.get_broker()`), and a worker binds every declared actor to its
broker before it starts, so modules can declare jobs at import time in any order.

**Dead letters.** A message that fails for good (retries exhausted, `throws`, refused tenant,
too old, unknown actor) is written, just before Dramatiq moves it to its own dead-letter queue,
to the Redis hash `t:<slug>:dead_letters` (`platform:dead_letters` for non-tenant actors),
keyed by message id, with actor, arguments, error, traceback and time. `list_dead_letters` and
`retry_dead_letter` serve the admin UI; a retried message keeps its message id.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import json
import logging
import threading
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar

import dramatiq
import redis
import redis.asyncio as aioredis
from dramatiq.asyncio import EventLoopThread, set_event_loop_thread
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.common import current_millis, dq_name, q_name
from dramatiq.middleware import (
    AgeLimit,
    AsyncIO,
    Callbacks,
    CurrentMessage,
    Middleware,
    Pipelines,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)

from patone.core.runtime.redis import get_redis, tenant_key
from patone.tenants.isolation import TenantRef, tenant_transaction
from patone.tenants.registry import TenantCache, TenantInfo, get_tenant

try:
    import uvloop
except ImportError:  # pragma: no cover - no wheel for this platform: asyncio's loop
    uvloop = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

NAMESPACE = "patone"
HEARTBEAT_TIMEOUT_MS = 15_000
SWEEP_INTERVAL = 5.0
MAINTENANCE_CHANCE = 10_000  # in a million broker commands
# Dramatiq keeps its own copy of dead messages; ours (below) is the one admins see.
DRAMATIQ_DEAD_MESSAGE_TTL_MS = 86_400_000

# Retry policy of tenant actors unless they say otherwise (milliseconds).
DEFAULT_MAX_RETRIES = 5
DEFAULT_MIN_BACKOFF = 1_000
DEFAULT_MAX_BACKOFF = 60_000
DEFAULT_TIME_LIMIT = 300_000

PLATFORM_DEAD_LETTERS = "platform:dead_letters"
# Message options that belong to one delivery, dropped when a dead letter is retried.
_DELIVERY_OPTIONS = ("retries", "traceback", "requeue_timestamp", "eta", "redis_message_id")


class TenantUnavailable(Exception):
    """The job's tenant does not exist, was deleted or is suspended: the job is not run."""


class TenantGone(TenantUnavailable):
    """The job's tenant no longer exists (purged; its slug may name another tenant now)."""


@dataclass(frozen=True)
class Job:
    """What a running tenant actor knows about its message."""

    message_id: str
    actor_name: str
    tenant: TenantInfo
    retries: int


current_message_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "patone_job_message_id", default=None
)
_current_job: contextvars.ContextVar[Job | None] = contextvars.ContextVar(
    "patone_current_job", default=None
)


def current_job() -> Job:
    """The job being run; raises outside a tenant actor."""
    job = _current_job.get()
    if job is None:
        raise RuntimeError("not inside a tenant actor")
    return job


# ---------------------------------------------------------------------------------------------
# Broker


def configure_broker(
    redis_url: str,
    *,
    broker_url: str | None = None,
    stub: bool = False,
    namespace: str = NAMESPACE,
    set_global: bool = True,
) -> dramatiq.Broker:
    """A Redis broker on `redis_url` (redis://, rediss:// or unix:///path?db=N) with Patone's
    middleware, every declared tenant actor bound to it, and (by default) set as Dramatiq's
    global broker. `broker_url` amqp://... gives a RabbitMQ broker instead (Redis still keeps
    dead letters and delivery claims). `stub=True` gives a StubBroker with the same
    middleware."""
    client = redis.Redis.from_url(redis_url)
    middleware: list[Middleware] = [
        AgeLimit(),
        TimeLimit(),
        ShutdownNotifications(),
        Callbacks(),
        Pipelines(),
        # Dead letters before Retries: `after_*` hooks run in reverse order, so Retries has
        # decided a message's fate before DeadLetters looks at it.
        DeadLetters(client),
        JobRetries(
            max_retries=DEFAULT_MAX_RETRIES,
            min_backoff=DEFAULT_MIN_BACKOFF,
            max_backoff=DEFAULT_MAX_BACKOFF,
        ),
        CurrentMessage(),
        JobLoop(),
    ]
    broker: dramatiq.Broker
    if stub:
        broker = StubBroker(middleware=middleware)
    elif broker_url and broker_url.startswith(("amqp://", "amqps://")):
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        # RabbitMQ gives a dead consumer's unacknowledged messages back as soon as its
        # connection drops: no heartbeat tuning or sweep needed.
        broker = RabbitmqBroker(url=broker_url, middleware=middleware)
    else:
        broker = RedisBroker(
            client=client,
            middleware=middleware,
            namespace=namespace,
            heartbeat_timeout=HEARTBEAT_TIMEOUT_MS,
            maintenance_chance=MAINTENANCE_CHANCE,
            dead_message_ttl=DRAMATIQ_DEAD_MESSAGE_TTL_MS,
        )
        broker.add_middleware(RedeliverySweep())
    broker.patone_redis = client  # type: ignore[union-attr]
    bind_actors(broker)
    if set_global:
        dramatiq.set_broker(broker)
    return broker


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A new event loop of the kind jobs run on: uvloop's when installed, else asyncio's."""
    return uvloop.new_event_loop() if uvloop is not None else asyncio.new_event_loop()


class _JobLoopThread(EventLoopThread):
    def __init__(self, logger: Any, interrupt_check_ival: float = 0.1) -> None:
        super().__init__(logger, interrupt_check_ival)
        self.loop.close()  # asyncio's, made by the base class before we could say otherwise
        self.loop = new_event_loop()


class JobLoop(AsyncIO):
    """Dramatiq's AsyncIO middleware (one loop thread per worker process that async actors
    run on), with its loop from `new_event_loop()`."""

    def before_worker_boot(self, broker: dramatiq.Broker, worker: Any) -> None:
        thread = _JobLoopThread(self.logger)
        thread.start(timeout=1.0)
        set_event_loop_thread(thread)


def broker_redis(broker: dramatiq.Broker | None = None) -> redis.Redis:
    """The synchronous Redis client beside a broker (dead letters, delivery claims): usable
    from any thread or event loop."""
    target = broker or dramatiq.get_broker()
    client: redis.Redis | None = getattr(target, "patone_redis", None)
    if client is None:
        raise RuntimeError("the broker was not made by configure_broker")
    return client


def dead_letter_key(slug: str | None) -> str:
    return tenant_key(slug, "dead_letters") if slug else PLATFORM_DEAD_LETTERS


def _message_slug(broker: dramatiq.Broker, message: Any) -> str | None:
    try:
        actor = broker.get_actor(message.actor_name)
    except dramatiq.ActorNotFound:
        actor = None
    tenant_scoped = actor is not None and actor.options.get("tenant_scoped")
    if tenant_scoped and message.args and isinstance(message.args[0], str):
        return str(message.args[0])
    return None


class DeadLetters(Middleware):
    """Writes every message that fails for good to its tenant's dead-letter hash.

    It runs just before Dramatiq's `nack` (which moves the message to Dramatiq's own dead-letter
    queue): if the process dies in between, the message is delivered again and, failing again,
    overwrites the same entry (keyed by message id).
    """

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    @property
    def actor_options(self) -> set[str]:
        return {"tenant_scoped"}

    def before_nack(self, broker: dramatiq.Broker, message: Any) -> None:
        exception: BaseException | None = getattr(message, "_exception", None)
        slug = _message_slug(broker, message)
        options = dict(message.options)
        if isinstance(exception, TenantUnavailable):
            reason = f"tenant refused: {exception}"
        elif isinstance(exception, dramatiq.ActorNotFound):
            reason = f"unknown actor {message.actor_name!r}"
        elif exception is None:
            reason = "expired (older than the actor's max_age)"
        elif options.get("retries", 0) > 0:
            reason = f"retries exhausted after {options['retries']} attempts"
        else:
            reason = "failed without retry"
        error = f"{type(exception).__name__}: {exception}" if exception is not None else ""
        tb = options.get("traceback")
        if tb is None and exception is not None:
            tb = "".join(traceback.format_exception(exception, limit=30))
        entry = {
            "message_id": message.message_id,
            "actor": message.actor_name,
            "queue": q_name(message.queue_name),
            "tenant": slug,
            "args": list(message.args),
            "kwargs": dict(message.kwargs),
            "reason": reason,
            "error": error,
            "traceback": tb or "",
            "retries": options.get("retries", 0),
            "failed_at": datetime.now(UTC).isoformat(),
            "message": message.asdict(),
        }
        self.client.hset(dead_letter_key(slug), message.message_id, json.dumps(entry, default=str))
        log.warning(
            "job dead-lettered",
            extra={"message_id": message.message_id, "actor": message.actor_name, "tenant": slug},
        )


class JobRetries(Retries):
    """Dramatiq's Retries, except that a `dramatiq.Retry` that will be tried again carries a
    one-frame traceback in its message.

    A Retry is expected (a provider refused a message, another attempt holds a lease; the job
    logged why), so its stack says nothing, and formatting it (a dozen frames, each source line
    looked up and parsed for the error carets) was 2 % of the workers' own CPU in the
    notification bench. The attempt that exhausts the retries keeps the whole traceback, which
    its dead letter shows; other exceptions keep theirs on every attempt."""

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: Any,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        if not isinstance(exception, dramatiq.Retry) or self._last_attempt(broker, message):
            super().after_process_message(broker, message, result=result, exception=exception)
            return
        # Retries formats the exception being handled: raised again here, it is one frame deep.
        try:
            raise exception.with_traceback(None)
        except dramatiq.Retry:
            super().after_process_message(broker, message, result=result, exception=exception)

    def _last_attempt(self, broker: dramatiq.Broker, message: Any) -> bool:
        actor = broker.get_actor(message.actor_name)
        if actor.options.get("retry_when", self.retry_when) is not None:
            return True  # a predicate decides: keep the traceback it may be shown
        limit = message.options.get(
            "max_retries", actor.options.get("max_retries", self.max_retries)
        )
        return limit is not None and message.options.get("retries", 0) >= limit


class RedeliverySweep(Middleware):
    """A thread per worker that forces queue maintenance (and sends a heartbeat) every
    `SWEEP_INTERVAL` seconds on each declared queue: dead workers' messages come back within
    `HEARTBEAT_TIMEOUT_MS + SWEEP_INTERVAL` whatever the traffic."""

    def __init__(self, interval: float = SWEEP_INTERVAL) -> None:
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sweep(self, broker: RedisBroker) -> None:
        dispatch = broker.scripts["dispatch"]
        for queue in sorted(broker.get_declared_queues()):
            for name in (queue, dq_name(queue)):
                dispatch(
                    keys=[broker.namespace],
                    args=[
                        "qsize",  # read-only; the maintenance flag below does the work
                        current_millis(),
                        name,
                        broker.broker_id,
                        broker.heartbeat_timeout,
                        broker.dead_message_ttl,
                        1,
                        broker._max_unpack_size(),
                    ],
                )

    def _run(self, broker: RedisBroker) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sweep(broker)
            except redis.RedisError as error:
                log.warning("redelivery sweep failed", extra={"error": str(error)})

    def after_worker_boot(self, broker: dramatiq.Broker, worker: Any) -> None:
        if not isinstance(broker, RedisBroker):
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, args=(broker,), name="patone-redelivery-sweep", daemon=True
        )
        self._thread.start()

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval + 1)
            self._thread = None


# ---------------------------------------------------------------------------------------------
# Tenant actors

_ACTORS: dict[str, TenantActor[Any, Any]] = {}

# Tenant look-ups of jobs, only ever used on a worker's event loop. A suspended or deleted
# tenant's jobs stop within `ttl` seconds.
job_tenant_cache = TenantCache(ttl=2.0, size=4096)


async def _job_tenant(slug: str, message: Any) -> TenantInfo:
    """The tenant a message was queued for, else `TenantGone`: the same slug may name another
    tenant now (one purged, its slug taken again), which the message's `tenant_id` tells."""
    tenant = await job_tenant_cache.by_slug(slug)
    if message is None:  # run directly (tests, scripts): the caller names the tenant
        if tenant is None:
            raise TenantGone(f"tenant {slug!r} does not exist")
        return tenant
    if tenant is not None and not _queued_for(tenant, message):
        job_tenant_cache.invalidate(slug)  # a cached copy may be older than the message
        tenant = await job_tenant_cache.by_slug(slug)
    if tenant is None or not _queued_for(tenant, message):
        raise TenantGone(f"tenant {slug!r} of this job no longer exists")
    return tenant


def _queued_for(tenant: TenantInfo, message: Any) -> bool:
    """Whether the message was queued for this very tenant."""
    stamped = message.options.get("tenant_id")
    if stamped is not None:
        return bool(stamped == str(tenant.id))
    # Queued by a version that did not stamp ids: it belongs to this tenant only if it was
    # queued after the tenant was created.
    return bool(message.message_timestamp >= tenant.created_at.timestamp() * 1000)


class TenantActor(Generic[P, R]):
    """A declared tenant job; bound to a Dramatiq broker on first use (see module docs)."""

    def __init__(
        self,
        fn: Callable[Concatenate[str, P], Awaitable[R]],
        *,
        actor_name: str,
        queue_name: str,
        priority: int,
        transaction: bool,
        options: dict[str, Any],
    ) -> None:
        self.fn = fn
        self.actor_name = actor_name
        self.queue_name = queue_name
        self.priority = priority
        self.transaction = transaction
        self.options = options
        self._bound: dict[int, dramatiq.Actor[Any, Any]] = {}

    async def run(self, tenant_slug: str, *args: Any, **kwargs: Any) -> R:
        """What the worker calls: resolve and check the tenant, then run the function."""
        message = CurrentMessage.get_current_message()
        tenant = await _job_tenant(tenant_slug, message)
        if not tenant.is_active:
            raise TenantUnavailable(f"tenant {tenant_slug!r} is {tenant.status}")
        # Run directly (tests, scripts) there is no message: the run is its own.
        message_id = message.message_id if message is not None else str(uuid.uuid4())
        retries = int(message.options.get("retries", 0)) if message is not None else 0
        job_token = _current_job.set(Job(message_id, self.actor_name, tenant, retries))
        id_token = current_message_id.set(message_id)
        try:
            if not self.transaction:
                return await self.fn(tenant_slug, *args, **kwargs)
            async with tenant_transaction(tenant):
                return await self.fn(tenant_slug, *args, **kwargs)
        except dramatiq.Retry:
            raise  # asked to be tried later: its tenant is checked again then
        except Exception:
            # Purged while the job ran (its role or schema vanished under it): say so, instead
            # of a traceback that would be dead-lettered under keys the purge just removed.
            current = await get_tenant(tenant_slug)
            if current is None or current.id != tenant.id:
                raise TenantGone(f"tenant {tenant_slug!r} was purged while the job ran") from None
            raise
        finally:
            current_message_id.reset(id_token)
            _current_job.reset(job_token)

    def bind(self, broker: dramatiq.Broker) -> dramatiq.Actor[Any, Any]:
        """This actor declared on `broker` (once per broker)."""
        bound = self._bound.get(id(broker))
        if bound is None or bound.broker is not broker:
            if self.actor_name in broker.actors:
                bound = broker.get_actor(self.actor_name)
            else:

                @functools.wraps(self.fn)
                async def run(*args: Any, **kwargs: Any) -> None:
                    # Results are for direct callers; Dramatiq would warn about each one.
                    try:
                        await self.run(*args, **kwargs)
                    except TenantGone as gone:
                        # Acknowledged, not failed: nothing of a purged tenant is kept.
                        log.info(
                            "job dropped: %s",
                            gone,
                            extra={"actor": self.actor_name, "tenant": args[0] if args else None},
                        )

                bound = dramatiq.actor(
                    actor_name=self.actor_name,
                    queue_name=self.queue_name,
                    priority=self.priority,
                    broker=broker,
                    **self.options,
                )(run)
            self._bound[id(broker)] = bound
        return bound

    def send(self, tenant: TenantRef, *args: P.args, **kwargs: P.kwargs) -> dramatiq.Message[R]:
        """Enqueue a job for `tenant` on the global broker."""
        return self.send_with_options(tenant, args=args, kwargs=kwargs)

    def send_with_options(
        self,
        tenant: TenantRef,
        *,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        delay: int | None = None,
        broker: dramatiq.Broker | None = None,
        **options: Any,
    ) -> dramatiq.Message[R]:
        """Enqueue a job for `tenant` (`args` come after its slug) with Dramatiq's options."""
        actor = self.bind(broker or dramatiq.get_broker())
        return actor.send_with_options(
            args=(tenant.slug, *args),
            kwargs=kwargs,
            delay=delay,
            tenant_id=str(tenant.id),
            **options,
        )

    def message(self, tenant: TenantRef, *args: P.args, **kwargs: P.kwargs) -> dramatiq.Message[R]:
        """A message for `tenant` on the global broker (see `message_on`)."""
        return self.message_on(dramatiq.get_broker(), tenant, *args, **kwargs)

    def message_on(
        self, broker: dramatiq.Broker, tenant: TenantRef, *args: P.args, **kwargs: P.kwargs
    ) -> dramatiq.Message[R]:
        """A message for `tenant` to enqueue on `broker` with `broker.enqueue` (e.g. with an id
        of its own: `.copy(message_id=...)`, which keeps the tenant's id)."""
        return self.bind(broker).message_with_options(
            args=(tenant.slug, *args), kwargs=kwargs, tenant_id=str(tenant.id)
        )

    async def __call__(self, tenant_slug: str, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the job here and now (tests, scripts): same tenant checks and transaction."""
        return await self.run(tenant_slug, *args, **kwargs)


def tenant_actor(
    *,
    actor_name: str | None = None,
    queue_name: str = "default",
    priority: int = 0,
    transaction: bool = True,
    max_retries: int = DEFAULT_MAX_RETRIES,
    min_backoff: int = DEFAULT_MIN_BACKOFF,
    max_backoff: int = DEFAULT_MAX_BACKOFF,
    time_limit: int = DEFAULT_TIME_LIMIT,
    max_age: int | None = None,
    throws: tuple[type[BaseException], ...] = (),
    **options: Any,
) -> Callable[[Callable[Concatenate[str, P], Awaitable[R]]], TenantActor[P, R]]:
    """Declare `async def fn(tenant_slug: str, *args)` as a tenant job (times in ms).

    `throws`: exceptions that dead-letter at once instead of being retried.
    `max_age`: messages older than this are dead-lettered unrun ("expired").
    """

    def declare(fn: Callable[Concatenate[str, P], Awaitable[R]]) -> TenantActor[P, R]:
        if not asyncio.iscoroutinefunction(fn):
            raise TypeError("a tenant actor must be an async function")
        name = actor_name or f"{fn.__module__}.{fn.__qualname__}"
        existing = _ACTORS.get(name)
        # A re-imported module (tests, reloads) replaces its own declaration.
        if existing is not None and (existing.fn.__module__, existing.fn.__qualname__) != (
            fn.__module__,
            fn.__qualname__,
        ):
            raise ValueError(f"a tenant actor named {name!r} is already declared")
        actor_options: dict[str, Any] = {
            "tenant_scoped": True,
            "max_retries": max_retries,
            "min_backoff": min_backoff,
            "max_backoff": max_backoff,
            "time_limit": time_limit,
            "throws": (TenantUnavailable, *throws),
            **options,
        }
        if max_age is not None:
            actor_options["max_age"] = max_age
        declared = TenantActor(
            fn,
            actor_name=name,
            queue_name=queue_name,
            priority=priority,
            transaction=transaction,
            options=actor_options,
        )
        _ACTORS[name] = declared
        return declared

    return declare


async def send_to_active_tenants(actor: TenantActor[[], Any]) -> int:
    """Queue `actor` once for every active tenant (periodic sweeps); returns how many."""
    from patone.tenants.registry import list_tenants

    tenants = await list_tenants("active")
    await asyncio.to_thread(lambda: [actor.send(tenant) for tenant in tenants])
    return len(tenants)


def bind_actors(broker: dramatiq.Broker) -> None:
    """Declare every tenant actor declared so far on `broker` (workers call this after
    importing their actor modules)."""
    for declared in list(_ACTORS.values()):
        declared.bind(broker)


# ---------------------------------------------------------------------------------------------
# Dead-letter store (admin UI)


def _client(client: aioredis.Redis | None) -> aioredis.Redis:
    return client if client is not None else get_redis()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def list_dead_letters(
    slug: str | None, *, client: aioredis.Redis | None = None
) -> list[dict[str, Any]]:
    """The tenant's dead letters (`None`: the platform's), newest first, without the raw
    message."""
    raw = await _client(client).hgetall(dead_letter_key(slug))
    entries = [json.loads(_text(value)) for value in raw.values()]
    for entry in entries:
        entry.pop("message", None)
    return sorted(entries, key=lambda entry: entry["failed_at"], reverse=True)


async def retry_dead_letter(
    slug: str | None,
    message_id: str,
    *,
    broker: dramatiq.Broker | None = None,
    client: aioredis.Redis | None = None,
) -> bool:
    """Enqueue a dead letter again (same message id, retry count reset) and drop it from the
    store; False when there is no such dead letter."""
    redis_client = _client(client)
    key = dead_letter_key(slug)
    raw = await redis_client.hget(key, message_id)
    if raw is None:
        return False
    data = json.loads(_text(raw))["message"]
    options = {k: v for k, v in data["options"].items() if k not in _DELIVERY_OPTIONS}
    message: dramatiq.Message[Any] = dramatiq.Message(
        queue_name=q_name(data["queue_name"]),
        actor_name=data["actor_name"],
        args=tuple(data["args"]),
        kwargs=data["kwargs"],
        options=options,
        message_id=data["message_id"],
        message_timestamp=int(time.time() * 1000),  # a fresh age for AgeLimit
    )
    target = broker or dramatiq.get_broker()
    await asyncio.to_thread(target.enqueue, message)
    await redis_client.hdel(key, message_id)
    return True

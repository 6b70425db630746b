"""The one Piccolo engine every table uses, with a pool per database shard.

Piccolo binds each table class to one engine; this engine picks the pool of the shard named by
`current_shard` (a ContextVar that `tenant_transaction` sets), so tenants can live on several
Postgres clusters behind the same table classes. It also closes two escape hatches that would
let tenant work run outside its tenant transaction (see DESIGN.md, "Tenancy"):

- asyncpg's statement cache is off: the same SQL text means different tables in different
  schemas, and a cached plan would survive DDL in another schema.
- `.batch()` opens a new connection in stock Piccolo; here it runs on the current transaction's
  connection, so it stays inside the tenant.

Pooled connections start with `search_path = ext`: an unqualified tenant table used outside a
tenant transaction fails with "relation does not exist" instead of finding another schema.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from asyncpg.pool import Pool
from piccolo.engine.postgres import AsyncBatch, PostgresEngine
from piccolo.query.base import Query

DEFAULT_SHARD = "default"

current_shard: contextvars.ContextVar[str] = contextvars.ContextVar(
    "patone_current_shard", default=DEFAULT_SHARD
)


# asyncpg's own look-ups (type introspection, JIT toggling): not our queries.
_ASYNCPG_INTERNAL = ("typeinfo_tree", "current_setting('jit')", "set_config('jit'")


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Pool reset: nothing to send. asyncpg's default costs a round trip per release
    (`RESET ALL; UNLISTEN *; ...`); our connections carry no session state, because tenant
    scoping is `SET LOCAL` (ends with the transaction) and advisory locks are transaction-level.
    """


class ShardNotConfigured(RuntimeError):
    """A tenant names a shard this process has no pool for."""


class _TransactionBatch(AsyncBatch):
    """A batch on the current transaction's connection: a savepoint, not a new connection."""

    async def __aexit__(self, exception_type: Any, exception: Any, traceback: Any) -> bool:
        if exception:
            await self.transaction.rollback()
        else:
            await self.transaction.commit()
        return exception is not None


class PatoneEngine(PostgresEngine):
    """A PostgresEngine with one pool per shard and tenant-safe defaults."""

    def __init__(self) -> None:
        super().__init__(config={"database": "patone"})
        self._pools: dict[str, Pool] = {}
        self._dsns: dict[str, str] = {}
        self._pool_options: dict[str, Any] = {}
        self.statements: Counter[str] = Counter()
        self._loop_pools: dict[asyncio.AbstractEventLoop, dict[str, Pool]] = {}

    async def check_version(self) -> None:
        # Piccolo's Engine.__init__ connects to check the version; ours connects at start-up.
        return None

    async def prep_database(self) -> None:
        return None

    # Piccolo reads and writes `self.pool`; route it through the current shard.
    def _shard_pools(self) -> dict[str, Pool]:
        """The pools of the running event loop: a worker's loop may have its own (asyncpg
        pools belong to the loop that made them), every other loop uses the main ones."""
        if self._loop_pools:
            try:
                local = self._loop_pools.get(asyncio.get_running_loop())
            except RuntimeError:
                local = None
            if local is not None:
                return local
        return self._pools

    @property
    def pool(self) -> Pool | None:
        pools = self._shard_pools()
        if not pools:
            return None
        shard = current_shard.get()
        try:
            return pools[shard]
        except KeyError:
            raise ShardNotConfigured(f"no database is configured for shard {shard!r}") from None

    @pool.setter
    def pool(self, value: Pool | None) -> None:
        # Piccolo's __init__ assigns None; pools are managed by `connect` and `disconnect`.
        if value is not None:
            raise AttributeError("use PatoneEngine.connect() to create pools")

    @asynccontextmanager
    async def acquire(self, shard: str = DEFAULT_SHARD) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection of one shard, outside any Piccolo transaction."""
        pool = self._shard_pools().get(shard)
        if pool is None:
            raise ShardNotConfigured(f"no database is configured for shard {shard!r}")
        async with pool.acquire() as connection:
            yield connection

    @property
    def shards(self) -> list[str]:
        return list(self._dsns)

    def connection_options(self, dsn: str) -> dict[str, Any]:
        return {
            "dsn": dsn,
            "statement_cache_size": 0,
            "server_settings": {"search_path": "ext", "application_name": "patone"},
        }

    async def connect(
        self,
        dsns: dict[str, str],
        *,
        min_size: int = 1,
        max_size: int = 10,
        max_queries: int = 5000,
        max_inactive_connection_lifetime: float = 60.0,
        count_statements: bool = False,
    ) -> None:
        """Open one pool per shard. `dsns` must name the "default" shard.

        With `count_statements`, every statement sent is counted in `self.statements` by its
        first word (SELECT, INSERT, ...): tests and benchmarks assert query counts with it.
        """
        if DEFAULT_SHARD not in dsns:
            raise ValueError("the default shard needs a DSN")
        await self.disconnect()
        self._pool_options = {
            "min_size": min_size,
            "max_size": max_size,
            "max_queries": max_queries,
            "max_inactive_connection_lifetime": max_inactive_connection_lifetime,
        }
        try:
            for name, dsn in dsns.items():
                self._dsns[name] = dsn
                self._pools[name] = await asyncpg.create_pool(
                    **self.connection_options(dsn),
                    **self._pool_options,
                    init=self._count_on if count_statements else None,
                    reset=_keep_session,
                )
        except BaseException:
            await self.disconnect()
            raise
        self.config = {"dsn": dsns[DEFAULT_SHARD]}

    async def open_loop_pools(self, *, max_size: int = 4) -> None:
        """Give the running event loop pools of its own, to the same shards (an in-process
        worker runs on its own loop and cannot use the app loop's pools)."""
        if not self._pools:
            raise RuntimeError("connect() the engine before opening loop pools")
        loop = asyncio.get_running_loop()
        pools: dict[str, Pool] = {}
        try:
            for shard, dsn in self._dsns.items():
                pools[shard] = await asyncpg.create_pool(
                    **self.connection_options(dsn),
                    **{**self._pool_options, "min_size": 1, "max_size": max_size},
                    reset=_keep_session,
                )
        except BaseException:
            for pool in pools.values():
                await pool.close()
            raise
        self._loop_pools[loop] = pools

    async def close_loop_pools(self) -> None:
        """Close the running loop's own pools (see `open_loop_pools`)."""
        pools = self._loop_pools.pop(asyncio.get_running_loop(), {})
        for pool in pools.values():
            await pool.close()

    async def _count_on(self, connection: asyncpg.Connection) -> None:
        connection.add_query_logger(self._count)

    def _count(self, record: Any) -> None:
        words = record.query.split(None, 1)
        internal = any(marker in record.query for marker in _ASYNCPG_INTERNAL)
        self.statements["INTERNAL" if internal else (words[0].upper() if words else "")] += 1

    async def disconnect(self) -> None:
        pools, self._pools, self._dsns = self._pools, {}, {}
        for pool in pools.values():
            await pool.close()

    @property
    def connected(self) -> bool:
        return bool(self._pools)

    def dsn(self, shard: str = DEFAULT_SHARD) -> str:
        return self._dsns[shard]

    async def get_new_connection(self) -> asyncpg.Connection:
        shard = current_shard.get()
        if shard not in self._dsns:
            raise ShardNotConfigured(f"no database is configured for shard {shard!r}")
        return await asyncpg.connect(**self.connection_options(self._dsns[shard]))

    async def start_connection_pool(self, **kwargs: Any) -> None:
        raise RuntimeError("use PatoneEngine.connect()")

    async def close_connection_pool(self) -> None:
        await self.disconnect()

    async def batch(
        self, query: Query, batch_size: int = 100, node: str | None = None
    ) -> AsyncBatch:
        transaction = self.current_transaction.get()
        if transaction is None:
            return await super().batch(query, batch_size=batch_size, node=node)
        raw = getattr(transaction.connection, "raw", transaction.connection)
        return _TransactionBatch(connection=raw, query=query, batch_size=batch_size)

    @asynccontextmanager
    async def _current_connection(self) -> AsyncIterator[Any]:
        transaction = self.current_transaction.get()
        if transaction is not None:
            yield transaction.connection
            return
        async with self.acquire(current_shard.get()) as connection:
            yield connection

    async def execute(self, sql: str, *args: Any) -> str:
        """Run one statement (or a script, without args) in the current transaction or pool."""
        async with self._current_connection() as connection:
            return str(await connection.execute(sql, *args))

    async def executemany(self, sql: str, args: Sequence[Sequence[Any]]) -> None:
        """Run one statement once per argument tuple (one round trip per batch)."""
        async with self._current_connection() as connection:
            await connection.executemany(sql, args)

    async def fetch(self, sql: str, *args: Any) -> Sequence[asyncpg.Record]:
        """Fetch rows in the current transaction, or on a pooled connection."""
        async with self._current_connection() as connection:
            return list(await connection.fetch(sql, *args))


engine = PatoneEngine()

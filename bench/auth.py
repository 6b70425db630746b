#!/usr/bin/env python
"""Authentication benchmark: what signing in to the API adds to a GraphQL request.

Prints figures next to the goal of issue 7 (< 1 ms added per authenticated request at p50); it
does not pass or fail on timings. It exits non-zero only when something is broken (a request is
refused or fails).

    python bench/auth.py                   # 2,000 requests per path
    python bench/auth.py --smoke --json /tmp/auth.json     # CI: 200 requests per path

It works in its own database (default `patone_bench_auth`, dropped and re-created at start and
dropped at the end unless `--keep`) with two tenants, `benchauth-00001` (measured) and
`benchauth-00002` (beside it), on a plan whose rate limits are counted but never run out. Every
request runs in this process through the `/graphql` ASGI app (httpx ASGITransport, one at a
time), so the figures are CPU and round trips, not network:

1. baseline: `{ __typename }` handed to the GraphQL executor with the actor already set (no
   token, no checks);
2. partner: the same with a partner's access token: signature (ES256, in-memory keyring; a token
   seen before is remembered), revocation (one Redis MGET) and the plan's rate limit;
3. staff: the same with a staff user's token, whose role comes from the process's actor cache
   (re-read from the tenant after any change to its users, roles or drivers; the version that
   says so travels in the revocation MGET).

Then the parts alone: a token's first verification (signature), a remembered one, the
revocation check, and the sign-in password check with the chosen argon2id parameters.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import httpx
from figures import Stats, check_names, make_console, phase, reset_database, verdict, with_database
from rich.console import Console
from starlette.types import Receive, Scope, Send

from patone.core.common.permissions import SYSTEM
from patone.core.identity import api_clients, revocation, users
from patone.core.identity.passwords import HASHER, hash_password, verify
from patone.core.identity.signing_keys import keyring_for
from patone.core.identity.tokens import TENANT_AUDIENCE, Kind, issue_token, verify_token
from patone.core.identity.users import actor_for_user
from patone.core.runtime.db import engine
from patone.core.runtime.redis import close_redis, connect_redis
from patone.graphql.app import GraphQLApp
from patone.platform import provisioning
from patone.tenants.migrations import ensure_platform
from patone.tenants.registry import TenantInfo, tenant_cache

DEFAULT_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS = "redis://127.0.0.1:6379/13"
SECRET = "bench-auth-secret"
QUERY = json.dumps({"query": "{ __typename }"}).encode()
GOAL_MS = 1.0


class Preset:
    """The GraphQL executor with the tenant and actor already in place: the baseline."""

    def __init__(self, graphql: GraphQLApp, state: dict[str, Any]) -> None:
        self.graphql = graphql
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope.setdefault("state", {}).update(self.state)
        await self.graphql.strawberry(scope, receive, send)


class Named:
    """The /graphql app with the tenant resolved (as the tenant middleware would)."""

    def __init__(self, graphql: GraphQLApp, tenant: TenantInfo) -> None:
        self.graphql = graphql
        self.tenant = tenant

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope.setdefault("state", {})["tenant"] = self.tenant
        await self.graphql(scope, receive, send)


async def _requests(app: Any, headers: dict[str, str], count: int) -> list[float]:
    """Milliseconds per request, after a warm-up; raises on any answer but 200 with data."""
    transport = httpx.ASGITransport(app=app)
    timings: list[float] = []
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        for index in range(count + count // 10):
            started = time.perf_counter()
            response = await client.post(
                "/graphql",
                content=QUERY,
                headers={"content-type": "application/json", **headers},
            )
            elapsed = (time.perf_counter() - started) * 1000
            if response.status_code != 200 or "data" not in response.json():
                raise RuntimeError(f"request failed: {response.status_code} {response.text}")
            if index >= count // 10:
                timings.append(elapsed)
    return timings


def _timed(call: Callable[[], object], count: int) -> list[float]:
    timings = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        timings.append((time.perf_counter() - started) * 1000)
    return timings


async def _timed_async(call: Callable[[], Awaitable[object]], count: int) -> list[float]:
    timings = []
    for _ in range(count):
        started = time.perf_counter()
        await call()
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def _line(console: Console, name: str, stats: Stats, note: str = "") -> None:
    console.print(
        f"  {name:<34} p50 {stats.p50:7.3f} ms  p95 {stats.p95:7.3f} ms  "
        f"p99 {stats.p99:7.3f} ms  (n={stats.count}) {note}",
        highlight=False,
    )


async def measure(args: argparse.Namespace, console: Console, dsn: str) -> dict[str, Any]:
    await engine.connect({"default": dsn}, min_size=1, max_size=4)
    await connect_redis(args.redis)
    try:
        await ensure_platform()
        tenant_cache.ttl = 60
        # A plan whose budgets are counted on every request but never run out here.
        await engine.execute(
            "INSERT INTO platform.plans (name, title, api_requests_per_minute, "
            "tenant_api_requests_per_minute, created_at) "
            "VALUES ('bench', 'Bench', 1000000, 1000000, now())"
        )
        slugs = (f"{args.prefix}-00001", f"{args.prefix}-00002")
        measured = await provisioning.create_tenant(slugs[0], "Bench A", plan="bench")
        await provisioning.create_tenant(slugs[1], "Bench B", plan="bench")
        await keyring_for(SECRET).load()
        user = await users.create_user(
            measured, SYSTEM, {"email": "d@bench.example", "name": "D", "role": "dispatcher"}
        )
        client, _secret = await api_clients.create_client(
            measured, SYSTEM, name="bench", scopes=["requests:read"]
        )
        staff_token = issue_token(SECRET, kind=Kind.staff, subject=str(user.id), tenant=measured)
        partner_token = issue_token(
            SECRET,
            kind=Kind.partner,
            subject=client.client_id,
            tenant=measured,
            scopes=["requests:read"],
        )
        graphql = GraphQLApp(SECRET)
        actor = await actor_for_user(measured, user.id)
        n = args.requests

        phase(console, f"requests: {n} per path, one at a time, in-process")
        baseline = Stats.of(
            await _requests(Preset(graphql, {"tenant": measured, "actor": actor}), {}, n)
        )
        partner = Stats.of(
            await _requests(
                Named(graphql, measured), {"Authorization": f"Bearer {partner_token}"}, n
            )
        )
        staff = Stats.of(
            await _requests(Named(graphql, measured), {"Authorization": f"Bearer {staff_token}"}, n)
        )
        added_partner = partner.p50 - baseline.p50
        added_staff = staff.p50 - baseline.p50
        _line(console, "baseline (actor preset)", baseline)
        _line(console, "partner token", partner, f"added p50 {added_partner:.3f} ms")
        _line(console, "staff token (+ role read)", staff, f"added p50 {added_staff:.3f} ms")

        phase(console, "parts")
        fresh = [
            issue_token(SECRET, kind=Kind.partner, subject="pc_x", tenant=measured)
            for _ in range(min(n, 500))
        ]
        tokens = iter(fresh)
        first = Stats.of(
            _timed(
                lambda: verify_token(
                    SECRET, next(tokens), audience=TENANT_AUDIENCE, tenant=measured
                ),
                len(fresh),
            )
        )
        remembered = Stats.of(
            _timed(
                lambda: verify_token(
                    SECRET, partner_token, audience=TENANT_AUDIENCE, tenant=measured
                ),
                n,
            )
        )
        claims = verify_token(SECRET, partner_token, audience=TENANT_AUDIENCE, tenant=measured)
        revoked = Stats.of(
            await _timed_async(lambda: revocation.is_revoked(measured.slug, claims), n)
        )
        _line(console, "verify, first time (ES256)", first)
        _line(console, "verify, token seen before", remembered)
        _line(console, "revocation check (Redis MGET)", revoked)

        stored = hash_password("correct horse battery staple")
        rounds = 5 if args.smoke else 20
        sign_in = Stats.of(_timed(lambda: verify(stored, "correct horse battery staple"), rounds))
        _line(
            console,
            "sign-in password check (argon2id)",
            sign_in,
            f"t={HASHER.time_cost} m={HASHER.memory_cost} KiB p={HASHER.parallelism}",
        )

        ok = max(added_partner, added_staff) < GOAL_MS
        console.print(
            f"\nsummary: added per authenticated request p50: partner {added_partner:.3f} ms, "
            f"staff {added_staff:.3f} ms; goal < {GOAL_MS} ms (both) {verdict(ok)}",
            highlight=False,
        )
        for slug in slugs:
            await provisioning.delete_tenant(slug)
            await provisioning.purge_tenant(slug, force=True)
        return {
            "requests": n,
            "baseline": vars(baseline),
            "partner": vars(partner),
            "staff": vars(staff),
            "added_p50_ms": {"partner": added_partner, "staff": added_staff},
            "verify_first": vars(first),
            "verify_remembered": vars(remembered),
            "revocation_check": vars(revoked),
            "sign_in": vars(sign_in),
        }
    finally:
        await close_redis()
        await engine.disconnect()


async def run(args: argparse.Namespace, console: Console) -> int:
    dsn = with_database(args.dsn_admin, args.database)
    await reset_database(args.dsn_admin, args.database, args.prefix, create=True)
    try:
        figures = await measure(args, console, dsn)
    finally:
        if not args.keep:
            await reset_database(args.dsn_admin, args.database, args.prefix, create=False)
            console.print(f"dropped database '{args.database}'", highlight=False)
    if args.json:
        with open(args.json, "w") as out:
            json.dump(figures, out, indent=2)
    return 0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--smoke", action="store_true", help="200 requests per path (CI)")
    parser.add_argument("--requests", type=int, default=None, help="per path (2000)")
    parser.add_argument("--dsn-admin", default=DEFAULT_ADMIN_DSN, help="admin connection")
    parser.add_argument("--database", default=None, help="bench database (patone_bench_auth)")
    parser.add_argument("--prefix", default="benchauth", help="tenant slug prefix")
    parser.add_argument("--redis", default=DEFAULT_REDIS)
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    parser.add_argument("--keep", action="store_true", help="keep the database and roles")
    args = parser.parse_args(argv)
    args.requests = args.requests or (200 if args.smoke else 2000)
    args.database = args.database or (
        "patone_bench_auth_smoke" if args.smoke else "patone_bench_auth"
    )
    check_names(parser, args.prefix, args.database)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    console = make_console(200)
    try:
        return asyncio.run(run(args, console))
    except RuntimeError as error:
        console.print(f"[red]{error}[/red]")
        return 1


if __name__ == "__main__":
    sys.exit(main())

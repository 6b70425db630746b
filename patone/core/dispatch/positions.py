"""Live driver positions: GPS pings in, the latest per driver in Redis, history in Postgres.

**Recording** (`record_pings`). A request carries up to `MAX_PINGS` pings. Each is checked
(coordinates, accuracy, speed, heading, a time that is neither in the future nor older than
`MAX_AGE`, the driver's identity); if any is wrong, the request is refused with one reason per
ping and field and nothing is stored. The valid pings go, oldest first, to one Lua script (one
Redis round trip per request, whatever its size) that for each ping compares its time with the
driver's latest: an older or equal one is ignored and counted (phones resend and reorder), a
newer one becomes the driver's position in

- `t:<slug>:drivers:geo`: a GEO set (driver id -> longitude/latitude), for `nearby_drivers`;
- `t:<slug>:drivers:last`: a hash driver id -> "<recorded_at in µs>|<the ping as JSON>", for
  out-of-order detection, `driver_positions` and "last seen", without Postgres.

The same script appends the accepted pings to the stream `t:<slug>:positions:history` (one entry
per request), notes the tenant in `platform:positions:pending`, and publishes the newest
accepted ping of each driver to `t:<slug>:positions` as one message per request, which
`subscribe_positions` (the GraphQL `driverPositions` subscription) forwards: no database on the
way from a ping to the live map.

**History.** The scheduler's `positions.flush` job (every `FLUSH_EVERY` s, on the leader) drains
each pending tenant's stream through a consumer group: read (XREADGROUP, plus XAUTOCLAIM of
entries another consumer read and never acknowledged for `CLAIM_IDLE` s: a flusher that died),
write (one multi-row INSERT ... SELECT FROM unnest into `driver_positions`, ON CONFLICT DO
NOTHING on (driver_id, recorded_at), and one UPDATE of the drivers' `last_lat`, `last_lng`,
`last_seen_at`, in one transaction), then acknowledge and delete. A crash between reading and
committing leaves the entries pending, to be claimed again; a crash between committing and
acknowledging redelivers rows the primary key turns away. Nothing is lost, nothing written twice.
While Postgres is away the stream grows (about 70 MB an hour at 1,000 drivers every 5 s).

**Partitions.** `driver_positions` is partitioned by UTC day (`driver_positions_YYYYMMDD`). The
`positions.partitions` job creates today's and the next `AHEAD_DAYS` days' partitions for every
active tenant and drops those older than the company's `positions_retention_days` setting
(default 30: a day's partition goes once it is entirely older than that). A flush that meets a
day without a partition (a company created since the job ran) creates it first.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import socket
from collections.abc import AsyncGenerator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, cast

import asyncpg
from redis.exceptions import ResponseError

from patone.core.common.permissions import Actor, PermissionDenied
from patone.core.runtime.clock import now
from patone.core.runtime.db import engine
from patone.core.runtime.errors import UserError
from patone.core.runtime.redis import POSITIONS_PENDING, get_redis, subscriber, tenant_key
from patone.core.runtime.scheduler import periodic
from patone.tenants.isolation import TenantRef, tenant_transaction
from patone.tenants.registry import forget_orphan, list_tenants, tenant_cache

log = logging.getLogger(__name__)

MAX_PINGS = 500  # per request: a phone that was offline for 40 minutes at one ping every 5 s
MAX_AGE = timedelta(hours=24)  # older pings are refused: history, not live position
FUTURE_SKEW = timedelta(seconds=5)  # phones' clocks run a little ahead
MAX_ACCURACY_M = 1000.0  # coarser than this says nothing useful about where a truck is
MAX_SPEED_MPS = 100.0  # 360 km/h
GEO_MAX_LAT = 85.05112878  # Redis GEO (Web Mercator) covers no further towards the poles

FLUSH_EVERY = 2.0
FLUSH_BATCH = 2000  # stream entries per read (one per ping request)
CLAIM_IDLE = 30.0  # seconds before another flusher's unacknowledged entries are taken over
AHEAD_DAYS = 2
DEFAULT_RETENTION_DAYS = 30
PENDING_KEY = POSITIONS_PENDING
GROUP = "flush"
PARTITION_PREFIX = "driver_positions_"

FIELDS = ("driver_id", "lat", "lng", "accuracy_m", "speed_mps", "heading_deg", "recorded_at")


# --- keys ---------------------------------------------------------------------------------------


def geo_key(slug: str) -> str:
    return tenant_key(slug, "drivers", "geo")


def last_key(slug: str) -> str:
    return tenant_key(slug, "drivers", "last")


def history_key(slug: str) -> str:
    return tenant_key(slug, "positions", "history")


def positions_channel(slug: str) -> str:
    """The pub/sub channel of a tenant's live positions (one JSON message per ping request)."""
    return tenant_key(slug, "positions")


# --- values -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ping:
    """One valid GPS fix of one driver."""

    driver_id: int
    lat: float
    lng: float
    accuracy_m: float
    recorded_at: datetime
    speed_mps: float | None = None
    heading_deg: float | None = None

    def as_json(self) -> str:
        return json.dumps(
            {
                "driver_id": self.driver_id,
                "lat": self.lat,
                "lng": self.lng,
                "accuracy_m": self.accuracy_m,
                "speed_mps": self.speed_mps,
                "heading_deg": self.heading_deg,
                "recorded_at": self.recorded_at.isoformat(),
            },
            separators=(",", ":"),
        )


@dataclass(frozen=True)
class PingRefusal:
    """Why ping number `index` (from 0) of a request was refused."""

    index: int
    field: str
    code: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "field": self.field,
            "code": self.code,
            "message": self.message,
        }


@dataclass(frozen=True)
class PingReport:
    """What became of a request's pings: stored, ignored as older than the driver's latest, or
    (all of them, then) refused with reasons."""

    accepted: int = 0
    ignored: int = 0
    refused: list[PingRefusal] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.refused


@dataclass(frozen=True)
class DriverPosition:
    """A driver's latest position; `distance_m` from the searched point (`nearby_drivers`)."""

    driver_id: int
    lat: float
    lng: float
    recorded_at: datetime
    accuracy_m: float
    speed_mps: float | None = None
    heading_deg: float | None = None
    distance_m: float | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any], distance_m: float | None = None) -> DriverPosition:
        return cls(
            driver_id=int(data["driver_id"]),
            lat=float(data["lat"]),
            lng=float(data["lng"]),
            recorded_at=datetime.fromisoformat(data["recorded_at"]),
            accuracy_m=float(data["accuracy_m"]),
            speed_mps=data.get("speed_mps"),
            heading_deg=data.get("heading_deg"),
            distance_m=distance_m,
        )


# --- validation ---------------------------------------------------------------------------------


class _Refused(Exception):
    def __init__(self, field: str, code: str, message: str) -> None:
        super().__init__(message)
        self.field, self.code, self.message = field, code, message


def _number(raw: Mapping[str, Any], name: str, low: float, high: float, *, required: bool) -> Any:
    value = raw.get(name)
    if value is None:
        if required:
            raise _Refused(name, "required", f"{name} is required")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _Refused(name, "invalid", f"{name} must be a number")
    if not low <= value <= high:
        raise _Refused(name, "out_of_range", f"{name} must be between {low:g} and {high:g}")
    return float(value)


def _recorded_at(value: Any, at: datetime) -> datetime:
    if value is None:
        raise _Refused("recorded_at", "required", "recorded_at is required")
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise _Refused(
                "recorded_at", "invalid", "recorded_at must be an ISO 8601 time"
            ) from None
    if not isinstance(value, datetime):
        raise _Refused("recorded_at", "invalid", "recorded_at must be an ISO 8601 time")
    if value.tzinfo is None:
        raise _Refused("recorded_at", "invalid", "recorded_at needs a time zone (Z or +hh:mm)")
    if value > at + FUTURE_SKEW:
        raise _Refused("recorded_at", "in_future", "recorded_at is in the future")
    if value < at - MAX_AGE:
        raise _Refused(
            "recorded_at", "too_old", f"recorded_at is more than {MAX_AGE} ago; not stored"
        )
    return value.astimezone(UTC)


def _driver_id(raw: Mapping[str, Any], actor: Actor) -> int:
    value = raw.get("driver_id")
    if value is None:
        if actor.driver_id is None:
            raise _Refused("driver_id", "required", "driver_id is required")
        return actor.driver_id
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise _Refused("driver_id", "invalid", "driver_id must be a positive integer")
    if value != actor.driver_id and not actor.can("drivers.manage"):
        raise _Refused("driver_id", "forbidden", "drivers may send only their own position")
    return value


def _ping(raw: Any, actor: Actor, at: datetime) -> Ping:
    if not isinstance(raw, Mapping):
        raise _Refused("", "invalid", "a ping must be an object")
    unknown = sorted(set(raw) - set(FIELDS))
    if unknown:
        raise _Refused(unknown[0], "unknown_field", f"unknown field {unknown[0]!r}")
    lat = _number(raw, "lat", -90, 90, required=True)
    if abs(lat) > GEO_MAX_LAT:
        raise _Refused("lat", "out_of_range", f"lat must be between ±{GEO_MAX_LAT}")
    return Ping(
        driver_id=_driver_id(raw, actor),
        lat=lat,
        lng=_number(raw, "lng", -180, 180, required=True),
        accuracy_m=_accuracy(raw),
        speed_mps=_number(raw, "speed_mps", 0, MAX_SPEED_MPS, required=False),
        heading_deg=_heading(raw),
        recorded_at=_recorded_at(raw.get("recorded_at"), at),
    )


def _accuracy(raw: Mapping[str, Any]) -> float:
    accuracy: float = _number(raw, "accuracy_m", 0, math.inf, required=True)
    if accuracy <= 0:
        raise _Refused("accuracy_m", "out_of_range", "accuracy_m must be more than 0")
    if accuracy > MAX_ACCURACY_M:
        raise _Refused(
            "accuracy_m", "too_inaccurate", f"accuracy_m is over {MAX_ACCURACY_M:g} m; not stored"
        )
    return accuracy


def _heading(raw: Mapping[str, Any]) -> float | None:
    heading: float | None = _number(raw, "heading_deg", 0, 360, required=False)
    if heading == 360:
        return 0.0
    return heading


def validate_pings(
    actor: Actor, pings: Sequence[Any], at: datetime | None = None
) -> tuple[list[Ping], list[PingRefusal]]:
    """The valid pings and the refusals (index, field, code, message) of the others."""
    at = at or now()
    valid: list[Ping] = []
    refused: list[PingRefusal] = []
    for index, raw in enumerate(pings):
        try:
            valid.append(_ping(raw, actor, at))
        except _Refused as error:
            refused.append(PingRefusal(index, error.field, error.code, error.message))
    return valid, refused


async def _unknown_drivers(tenant: TenantRef, actor: Actor, pings: Sequence[Ping]) -> set[int]:
    """Drivers named by staff that this company does not have (or archived). A driver's own id
    came from their token's actor, which the actor cache re-reads when drivers change."""
    others = sorted({p.driver_id for p in pings if p.driver_id != actor.driver_id})
    if not others:
        return set()
    async with tenant_transaction(tenant):
        rows = await engine.fetch(
            "SELECT id FROM drivers WHERE id = ANY($1::int[]) AND archived_at IS NULL", others
        )
    return set(others) - {row["id"] for row in rows}


# --- recording ----------------------------------------------------------------------------------

# KEYS: geo, last, history stream, pending set. ARGV: channel, slug, received (µs), then five
# per ping (driver id, recorded_at in µs, lng, lat, the ping as JSON), oldest first.
_RECORD = """
local accepted, latest, order, flags = {}, {}, {}, {}
for i = 4, #ARGV, 5 do
    local id, at = ARGV[i], tonumber(ARGV[i + 1])
    local previous = redis.call('HGET', KEYS[2], id)
    local previous_at = previous and tonumber(string.match(previous, '^(%d+)|')) or -1
    if at > previous_at then
        redis.call('GEOADD', KEYS[1], ARGV[i + 2], ARGV[i + 3], id)
        redis.call('HSET', KEYS[2], id, ARGV[i + 1] .. '|' .. ARGV[i + 4])
        accepted[#accepted + 1] = ARGV[i + 4]
        if not latest[id] then order[#order + 1] = id end
        latest[id] = ARGV[i + 4]
        flags[#flags + 1] = 1
    else
        flags[#flags + 1] = 0
    end
end
if #accepted > 0 then
    redis.call('XADD', KEYS[3], '*', 'r', ARGV[3], 'p', '[' .. table.concat(accepted, ',') .. ']')
    redis.call('SADD', KEYS[4], ARGV[2])
    local live = {}
    for _, id in ipairs(order) do live[#live + 1] = latest[id] end
    redis.call('PUBLISH', ARGV[1], '{"positions":[' .. table.concat(live, ',') .. ']}')
end
return flags
"""

# KEYS: geo, last. ARGV: lng, lat, radius (m), count. Returns distance, stored value pairs.
_NEARBY = """
local found = redis.call('GEOSEARCH', KEYS[1], 'FROMLONLAT', ARGV[1], ARGV[2],
    'BYRADIUS', ARGV[3], 'm', 'ASC', 'COUNT', ARGV[4], 'WITHDIST')
local out = {}
for _, item in ipairs(found) do
    local value = redis.call('HGET', KEYS[2], item[1])
    if value then
        out[#out + 1] = item[2]
        out[#out + 1] = value
    end
end
return out
"""

# KEYS: history stream, pending set. ARGV: slug. Forget the tenant once its stream is empty,
# atomically, so a ping arriving meanwhile is never left unflushed.
_FORGET_IF_EMPTY = """
if redis.call('XLEN', KEYS[1]) == 0 then return redis.call('SREM', KEYS[2], ARGV[1]) end
return 0
"""


def _micros(at: datetime) -> int:
    return (at - _EPOCH) // timedelta(microseconds=1)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


async def record_pings(tenant: TenantRef, actor: Actor, pings: Sequence[Any]) -> PingReport:
    """Validate and store a request's pings (raw mappings with the fields of `FIELDS`;
    `driver_id` defaults to the acting driver's); publish the newest of each driver live.

    Drivers send their own pings; staff with `drivers.manage` may send any driver's. Any
    invalid ping refuses them all (nothing is stored): the report lists why, per ping and field.
    """
    if actor.driver_id is None and not actor.can("drivers.manage"):
        raise PermissionDenied("drivers.manage")
    if len(pings) > MAX_PINGS:
        raise UserError("too_many", f"send at most {MAX_PINGS} pings per request", "pings")
    valid, refused = validate_pings(actor, pings)
    if not refused:
        unknown = await _unknown_drivers(tenant, actor, valid)
        refused = [
            PingRefusal(i, "driver_id", "not_found", "no such driver")
            for i, p in enumerate(valid)
            if p.driver_id in unknown
        ]
    if refused:
        return PingReport(refused=refused)
    if not valid:
        return PingReport()
    ordered = sorted(valid, key=lambda p: p.recorded_at)
    args: list[Any] = [positions_channel(tenant.slug), tenant.slug, _micros(now())]
    for ping in ordered:
        args += [ping.driver_id, _micros(ping.recorded_at), ping.lng, ping.lat, ping.as_json()]
    keys = [geo_key(tenant.slug), last_key(tenant.slug), history_key(tenant.slug), PENDING_KEY]
    flags = await get_redis().eval(_RECORD, len(keys), *keys, *args)
    accepted = sum(int(flag) for flag in flags)
    return PingReport(accepted=accepted, ignored=len(valid) - accepted)


def _stored(value: str, distance_m: float | None = None) -> DriverPosition:
    _micros_text, _, payload = value.partition("|")
    return DriverPosition.from_json(json.loads(payload), distance_m)


async def driver_positions(
    tenant: TenantRef, driver_ids: Iterable[int] | None = None
) -> list[DriverPosition]:
    """The latest known position of each driver (of these drivers), by driver id; drivers who
    never sent one are left out. One Redis round trip."""
    client = get_redis()
    if driver_ids is None:
        stored = cast(dict[str, str], await client.hgetall(last_key(tenant.slug)))
        values = list(stored.values())
    else:
        ids = sorted(set(driver_ids))
        found = cast(
            list[str | None], await client.hmget(last_key(tenant.slug), ids) if ids else []
        )
        values = [v for v in found if v]
    return sorted((_stored(v) for v in values), key=lambda p: p.driver_id)


async def positions_of(tenant: TenantRef, drivers: Sequence[Any]) -> dict[int, tuple[float, float]]:
    """Where each of these drivers (rows with id, last_lat, last_lng) is: the live position from
    their pings, else the last one the drivers table holds."""
    found = {
        d["id"]: (d["last_lat"], d["last_lng"])
        for d in drivers
        if d["last_lat"] is not None and d["last_lng"] is not None
    }
    for position in await driver_positions(tenant, [d["id"] for d in drivers]):
        found[position.driver_id] = (position.lat, position.lng)
    return found


async def nearby_drivers(
    tenant: TenantRef,
    lat: float,
    lng: float,
    radius_m: float,
    limit: int = 50,
    *,
    seen_since: datetime | None = None,
) -> list[DriverPosition]:
    """Drivers whose latest position is within `radius_m` metres of (lat, lng), nearest first,
    at most `limit`, each with `distance_m`; with `seen_since`, only those heard from since
    (after the limit is applied: ask for a few more). One Redis round trip. A point off the
    map Redis keeps (as for pings) is a UserError on `lat` or `lng`."""
    if not abs(lat) <= GEO_MAX_LAT:
        raise UserError("out_of_range", f"lat must be between ±{GEO_MAX_LAT}", "lat")
    if not abs(lng) <= 180:
        raise UserError("out_of_range", "lng must be between -180 and 180", "lng")
    if radius_m <= 0 or limit <= 0:
        return []
    found = await get_redis().eval(
        _NEARBY, 2, geo_key(tenant.slug), last_key(tenant.slug), lng, lat, radius_m, limit
    )
    positions = [_stored(found[i + 1], float(found[i])) for i in range(0, len(found), 2)]
    if seen_since is not None:
        positions = [p for p in positions if p.recorded_at >= seen_since]
    return positions


async def forget_driver(tenant: TenantRef, driver_id: int) -> None:
    """Take a driver off the live map (archived, or off duty for good); history stays."""
    async with get_redis().pipeline(transaction=True) as pipe:
        pipe.zrem(geo_key(tenant.slug), driver_id)
        pipe.hdel(last_key(tenant.slug), driver_id)
        await pipe.execute()


async def subscribe_positions(
    tenant: TenantRef, driver_ids: Iterable[int] | None = None
) -> AsyncGenerator[list[DriverPosition], None]:
    """Live positions as they are accepted: one list per ping request (the newest ping of each
    driver in it), only of `driver_ids` when given. Subscribes before the first `yield`."""
    wanted = set(driver_ids) if driver_ids is not None else None
    pubsub = subscriber()
    await pubsub.subscribe(positions_channel(tenant.slug))
    try:
        async for message in pubsub.listen():
            if message.get("type") != "message":
                continue
            positions = [
                DriverPosition.from_json(item)
                for item in json.loads(message["data"])["positions"]
                if wanted is None or item["driver_id"] in wanted
            ]
            if positions:
                yield positions
    finally:
        await pubsub.aclose()


# --- history ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HistoryBatch:
    """Stream entries read for one flush and the rows they hold."""

    entry_ids: list[str]
    rows: list[tuple[Any, ...]]  # as the INSERT's unnest columns

    def __len__(self) -> int:
        return len(self.entry_ids)


def consumer_name() -> str:
    """This process's name in the flush consumer group."""
    return f"{socket.gethostname()}-{os.getpid()}"


async def _ensure_group(slug: str) -> None:
    try:
        await get_redis().xgroup_create(history_key(slug), GROUP, id="0", mkstream=True)
    except ResponseError as error:
        if "BUSYGROUP" not in str(error):
            raise


Entry = tuple[str, dict[str, str]]  # a stream entry: id, fields


def _rows(entries: Iterable[Entry]) -> list[tuple[Any, ...]]:
    rows = []
    for _entry_id, values in entries:
        received = _EPOCH + timedelta(microseconds=int(values["r"]))
        for item in json.loads(values["p"]):
            rows.append(
                (
                    item["driver_id"],
                    datetime.fromisoformat(item["recorded_at"]),
                    item["lat"],
                    item["lng"],
                    item["accuracy_m"],
                    item["speed_mps"],
                    item["heading_deg"],
                    received,
                )
            )
    return rows


async def read_history(
    tenant: TenantRef,
    *,
    consumer: str | None = None,
    count: int = FLUSH_BATCH,
    claim_idle: float = CLAIM_IDLE,
) -> HistoryBatch:
    """Take up to `count` entries of the tenant's history stream for `consumer`: first those
    another consumer read and left unacknowledged for `claim_idle` seconds, then new ones.
    They stay pending until `ack_history`."""
    consumer = consumer or consumer_name()
    key = history_key(tenant.slug)
    client = get_redis()
    await _ensure_group(tenant.slug)
    claimed: list[Entry]
    _next, claimed, *_deleted = await client.xautoclaim(
        key, GROUP, consumer, min_idle_time=int(claim_idle * 1000), start_id="0-0", count=count
    )
    entries = [e for e in claimed if e[1]]  # an entry deleted meanwhile comes back empty
    if len(entries) < count:
        fresh = cast(
            list[tuple[str, list[Entry]]],
            await client.xreadgroup(GROUP, consumer, {key: ">"}, count=count - len(entries)),
        )
        for _stream, items in fresh:
            entries.extend(items)
    return HistoryBatch([e[0] for e in entries], _rows(entries))


_INSERT = """
INSERT INTO driver_positions (driver_id, recorded_at, lat, lng, accuracy_m, speed_mps,
    heading_deg, received_at)
SELECT * FROM unnest($1::int[], $2::timestamptz[], $3::float8[], $4::float8[], $5::real[],
    $6::real[], $7::real[], $8::timestamptz[])
ON CONFLICT DO NOTHING
"""

_LAST_SEEN = """
UPDATE drivers d SET last_lat = u.lat, last_lng = u.lng, last_seen_at = u.at
FROM unnest($1::int[], $2::float8[], $3::float8[], $4::timestamptz[]) AS u (id, lat, lng, at)
WHERE d.id = u.id AND (d.last_seen_at IS NULL OR d.last_seen_at < u.at)
"""


async def write_history(tenant: TenantRef, batch: HistoryBatch) -> int:
    """Write a batch's rows (those not written before) and move the drivers' last known
    positions forward, in one transaction; returns how many rows were new."""
    if not batch.rows:
        return 0
    await ensure_partitions(tenant, {row[1].astimezone(UTC).date() for row in batch.rows})
    columns = [list(column) for column in zip(*batch.rows, strict=True)]
    latest: dict[int, tuple[Any, ...]] = {}
    for row in batch.rows:
        if row[0] not in latest or latest[row[0]][1] < row[1]:
            latest[row[0]] = row
    last = [list(c) for c in zip(*((r[0], r[2], r[3], r[1]) for r in latest.values()), strict=True)]
    for attempt in (1, 2):
        try:
            async with tenant_transaction(tenant):
                status = await engine.execute(_INSERT, *columns)
                await engine.execute(_LAST_SEEN, *last)
            return int(status.rsplit(" ", 1)[-1])
        except asyncpg.CheckViolationError:
            # No partition for a day: dropped by another process since this one cached it.
            if attempt == 2:
                raise
            _forget_partitions(tenant)
            await ensure_partitions(tenant, {row[1].astimezone(UTC).date() for row in batch.rows})
    raise AssertionError("unreachable")


async def ack_history(tenant: TenantRef, batch: HistoryBatch) -> None:
    """Acknowledge and delete written entries, so the stream holds only unwritten ones."""
    if not batch.entry_ids:
        return
    key = history_key(tenant.slug)
    async with get_redis().pipeline(transaction=True) as pipe:
        pipe.xack(key, GROUP, *batch.entry_ids)
        pipe.xdel(key, *batch.entry_ids)
        await pipe.execute()


async def flush_history(
    tenant: TenantRef,
    *,
    consumer: str | None = None,
    count: int = FLUSH_BATCH,
    claim_idle: float = CLAIM_IDLE,
) -> int:
    """Move the tenant's pending history from Redis to Postgres; returns the rows written."""
    written = 0
    while True:
        batch = await read_history(tenant, consumer=consumer, count=count, claim_idle=claim_idle)
        if not batch:
            return written
        written += await write_history(tenant, batch)
        await ack_history(tenant, batch)
        if len(batch) < count:
            return written


@periodic("positions.flush", every=FLUSH_EVERY)
async def flush_all() -> int:
    """Flush every tenant with history waiting in Redis; returns the rows written."""
    client = get_redis()
    written = 0
    pending = cast(set[str], await client.smembers(PENDING_KEY))
    for slug in sorted(pending):
        tenant = await tenant_cache.by_slug(slug)
        # A simulation's positions stay the simulator's: it reads them live, and purges them.
        if tenant is None or tenant.status == "deleted" or tenant.is_simulation:
            await client.srem(PENDING_KEY, slug)
            if tenant is None:  # purged: pings that came in during the purge go too
                await forget_orphan(slug)
            continue
        try:
            written += await flush_history(tenant)
        except Exception:  # one tenant's failure must not hold back the others
            log.exception("positions flush failed", extra={"tenant": slug})
            continue
        await client.eval(_FORGET_IF_EMPTY, 2, history_key(slug), PENDING_KEY, slug)
    return written


# --- partitions ---------------------------------------------------------------------------------

_known: set[tuple[str, date]] = set()  # (schema, day) partitions this process has ensured


def partition_name(day: date) -> str:
    return f"{PARTITION_PREFIX}{day:%Y%m%d}"


def _forget_partitions(tenant: TenantRef) -> None:
    for known in [k for k in _known if k[0] == tenant.schema_name]:
        _known.discard(known)


async def ensure_partitions(tenant: TenantRef, days: Iterable[date]) -> list[str]:
    """Create the partitions of these days that do not exist yet (each in its own short
    transaction); returns the names ensured by this call."""
    ensured = []
    for day in sorted(set(days)):
        if (tenant.schema_name, day) in _known:
            continue
        start = datetime.combine(day, time(), UTC)
        end = start + timedelta(days=1)
        sql = (
            f"CREATE TABLE IF NOT EXISTS {partition_name(day)} PARTITION OF driver_positions "
            f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
        )
        try:
            async with tenant_transaction(tenant):
                await engine.execute(sql)
        except (asyncpg.DuplicateTableError, asyncpg.UniqueViolationError):
            pass  # created by another process at the same moment
        _known.add((tenant.schema_name, day))
        ensured.append(partition_name(day))
    return ensured


async def list_partitions(tenant: TenantRef) -> list[date]:
    """The days that have a partition, oldest first (an index look-up of one table's
    children, not a catalog scan)."""
    async with tenant_transaction(tenant):
        rows = await engine.fetch(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'driver_positions'::regclass"
        )
    days = []
    for row in rows:
        suffix = row["relname"].removeprefix(PARTITION_PREFIX)
        if suffix.isdigit() and len(suffix) == 8:
            days.append(datetime.strptime(suffix, "%Y%m%d").date())
    return sorted(days)


async def retention_days(tenant: TenantRef) -> int:
    """The company's `positions_retention_days` setting (default 30)."""
    async with tenant_transaction(tenant):
        rows = await engine.fetch(
            "SELECT value FROM settings WHERE key = 'positions_retention_days'"
        )
    return int(json.loads(rows[0]["value"])) if rows else DEFAULT_RETENTION_DAYS


@dataclass(frozen=True)
class PartitionChanges:
    ensured: list[str]  # today's and the days ahead, created unless they existed
    dropped: list[str]


async def upkeep_partitions(tenant: TenantRef, *, ahead: int = AHEAD_DAYS) -> PartitionChanges:
    """Create today's and the next `ahead` days' partitions; drop those whose whole day is older
    than the company's retention."""
    today = now().astimezone(UTC).date()
    _forget_partitions(tenant)  # look again: another process may have dropped some
    ensured = await ensure_partitions(tenant, (today + timedelta(days=n) for n in range(ahead + 1)))
    oldest_kept = today - timedelta(days=await retention_days(tenant))
    expired = [day for day in await list_partitions(tenant) if day < oldest_kept]
    if expired:
        async with tenant_transaction(tenant):
            await engine.execute(
                "DROP TABLE IF EXISTS " + ", ".join(partition_name(day) for day in expired)
            )
        for day in expired:
            _known.discard((tenant.schema_name, day))
    return PartitionChanges(ensured, [partition_name(day) for day in expired])


@periodic("positions.partitions", every=3600)
async def upkeep_all(concurrency: int = 4) -> int:
    """Partition upkeep for every active tenant, a few at a time; returns partitions dropped."""
    tenants = await list_tenants("active")
    gate = asyncio.Semaphore(concurrency)

    async def one(tenant: TenantRef) -> int:
        async with gate:
            try:
                return len((await upkeep_partitions(tenant)).dropped)
            except Exception:
                log.exception("positions partition upkeep failed", extra={"tenant": tenant.slug})
                return 0

    return sum(await asyncio.gather(*(one(t) for t in tenants)))

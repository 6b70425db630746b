"""Live driver positions: validated pings, the latest per driver in Redis per company, history
flushed to day partitions without loss or duplicates, and live updates to subscribers."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from patone.core.common.permissions import SYSTEM, PermissionDenied
from patone.core.dispatch import fleet, positions
from patone.core.dispatch.positions import DriverPosition
from patone.core.domain import company, drivers
from patone.core.runtime.clock import now, use_clock
from patone.core.runtime.db import engine
from patone.core.runtime.errors import ValidationFailed
from patone.core.runtime.redis import get_redis
from patone.platform import provisioning
from patone.tenants.isolation import tenant_transaction
from patone.tenants.registry import TenantInfo
from tests.conftest import MakeTenant, actor_for

BERLIN = (52.5200, 13.4050)


def ping(at: datetime, lat: float = BERLIN[0], lng: float = BERLIN[1], **extra: Any) -> dict:
    return {"lat": lat, "lng": lng, "accuracy_m": 8.0, "recorded_at": at.isoformat(), **extra}


async def _driver(tenant: TenantInfo, name: str = "Ray") -> int:
    return int((await drivers.create_driver(tenant, SYSTEM, {"name": name})).id)


async def _history(tenant: TenantInfo) -> list[dict[str, Any]]:
    async with tenant_transaction(tenant):
        rows = await engine.fetch(
            "SELECT driver_id, recorded_at, lat, lng FROM driver_positions "
            "ORDER BY driver_id, recorded_at"
        )
    return [dict(r) for r in rows]


async def _subscribed(tenant: TenantInfo, driver_ids: list[int] | None = None) -> Any:
    """A live-positions subscription whose Redis subscription is known to be in place."""
    stream = positions.subscribe_positions(tenant, driver_ids)
    first = asyncio.ensure_future(anext(stream))
    channel = positions.positions_channel(tenant.slug)
    for _ in range(200):
        subscribers = dict(await get_redis().pubsub_numsub(channel))
        if subscribers.get(channel, 0) > 0:
            return stream, first
        await asyncio.sleep(0.01)
    raise AssertionError("the subscription never reached Redis")


@pytest.fixture
async def cleanup() -> AsyncIterator[list[Any]]:
    """Subscriptions to close after the test."""
    opened: list[Any] = []
    yield opened
    for stream, pending in opened:
        pending.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pending
        await stream.aclose()


async def test_invalid_pings_are_refused_with_reasons_and_nothing_is_stored(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, _bolt = two_tenants
    driver = actor_for("driver", driver_id=await _driver(acme))
    at = now()
    report = await positions.record_pings(
        acme,
        driver,
        [
            ping(at - timedelta(seconds=5)),  # fine, but refused with the rest
            ping(at, lat=95.0),
            {"lat": 52.5, "accuracy_m": 5, "recorded_at": at.isoformat()},
            ping(at, accuracy_m=0),
            ping(at, accuracy_m=5000),
            ping(at + timedelta(minutes=1)),
            ping(at - timedelta(days=2)),
            {**ping(at), "recorded_at": "2026-12-02T10:00:00"},
            ping(at, speed_mps=-3),
            ping(at, heading_deg=400),
            ping(at, altitude=30),
            ping(at, lat=float("nan")),
            "not a ping",
            ping(at, lat=89.0),  # beyond what Redis GEO can index
        ],
    )
    assert report.accepted == report.ignored == 0
    reasons = {(r.index, r.field, r.code) for r in report.refused}
    assert reasons == {
        (1, "lat", "out_of_range"),
        (2, "lng", "required"),
        (3, "accuracy_m", "out_of_range"),
        (4, "accuracy_m", "too_inaccurate"),
        (5, "recorded_at", "in_future"),
        (6, "recorded_at", "too_old"),
        (7, "recorded_at", "invalid"),
        (8, "speed_mps", "out_of_range"),
        (9, "heading_deg", "out_of_range"),
        (10, "altitude", "unknown_field"),
        (11, "lat", "invalid"),
        (12, "", "invalid"),
        (13, "lat", "out_of_range"),
    }
    assert all(r.message for r in report.refused)
    assert await positions.driver_positions(acme) == []
    assert await get_redis().exists(positions.geo_key(acme.slug)) == 0
    assert await get_redis().xlen(positions.history_key(acme.slug)) == 0


async def test_out_of_order_pings_are_ignored_and_counted(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, _bolt = two_tenants
    driver_id = await _driver(acme)
    driver = actor_for("driver", driver_id=driver_id)
    at = now()
    # Within one request the order does not matter: pings are taken oldest first.
    first = await positions.record_pings(
        acme, driver, [ping(at - timedelta(seconds=1), lat=52.6), ping(at - timedelta(seconds=6))]
    )
    assert (first.accepted, first.ignored, first.refused) == (2, 0, [])
    late = await positions.record_pings(
        acme,
        driver,
        [ping(at - timedelta(seconds=3), lat=52.1), ping(at - timedelta(seconds=1), lat=52.2)],
    )
    assert (late.accepted, late.ignored) == (0, 2)  # older than, or as old as, the latest
    (latest,) = await positions.driver_positions(acme)
    assert latest.driver_id == driver_id and latest.lat == 52.6
    assert latest.recorded_at == (at - timedelta(seconds=1)).astimezone(UTC)
    newer = await positions.record_pings(acme, driver, [ping(at, lat=52.7)])
    assert (newer.accepted, newer.ignored) == (1, 0)
    assert (await positions.driver_positions(acme, [driver_id]))[0].lat == 52.7


async def test_drivers_send_their_own_pings_and_managers_anyones(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, bolt = two_tenants
    ray, sam = await _driver(acme, "Ray"), await _driver(acme, "Sam")
    bolt_driver = await _driver(bolt, "Bo")
    at = now()
    as_ray = actor_for("driver", driver_id=ray)
    refused = await positions.record_pings(acme, as_ray, [ping(at, driver_id=sam)])
    assert [(r.field, r.code) for r in refused.refused] == [("driver_id", "forbidden")]
    with pytest.raises(PermissionDenied):
        await positions.record_pings(acme, actor_for("dispatcher"), [ping(at, driver_id=ray)])
    manager = actor_for("manager")
    missing = await positions.record_pings(acme, manager, [ping(at)])
    assert [(r.field, r.code) for r in missing.refused] == [("driver_id", "required")]
    # Bolt's driver id means nothing in Acme, unless Acme has a driver with that id.
    unknown = 10_000 + bolt_driver
    wrong = await positions.record_pings(acme, manager, [ping(at, driver_id=unknown)])
    assert [(r.field, r.code) for r in wrong.refused] == [("driver_id", "not_found")]
    done = await positions.record_pings(
        acme, manager, [ping(at, driver_id=ray), ping(at, driver_id=sam, lat=52.3)]
    )
    assert done.accepted == 2
    assert [p.driver_id for p in await positions.driver_positions(acme)] == [ray, sam]


async def test_positions_of_one_company_never_reach_another(
    two_tenants: tuple[TenantInfo, TenantInfo], cleanup: list[Any]
) -> None:
    acme, bolt = two_tenants
    # Both companies' first drivers have the same id: only the keys keep them apart.
    acme_driver, bolt_driver = await _driver(acme), await _driver(bolt)
    assert acme_driver == bolt_driver
    acme_sub = await _subscribed(acme)
    bolt_sub = await _subscribed(bolt)
    cleanup.extend([acme_sub, bolt_sub])
    await positions.record_pings(
        acme, actor_for("driver", driver_id=acme_driver), [ping(now(), lat=48.85, lng=2.35)]
    )
    (live,) = await asyncio.wait_for(acme_sub[1], 2)
    assert (live.driver_id, live.lat) == (acme_driver, 48.85)
    await asyncio.sleep(0.3)
    assert not bolt_sub[1].done()
    assert await positions.driver_positions(bolt) == []
    assert await positions.nearby_drivers(bolt, 48.85, 2.35, 10_000) == []
    assert await get_redis().zcard(positions.geo_key(bolt.slug)) == 0
    assert [p.lat for p in await positions.nearby_drivers(acme, 48.85, 2.35, 10_000)] == [48.85]


async def test_nearby_drivers_are_nearest_first_with_their_distance(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, bolt = two_tenants
    near, far, away = [await _driver(acme, n) for n in ("Near", "Far", "Away")]
    at = now()
    manager = actor_for("manager")
    await positions.record_pings(
        acme,
        manager,
        [
            ping(at, driver_id=far, lat=52.56, lng=13.405),  # ~4.4 km north
            ping(at, driver_id=near, lat=52.53, lng=13.405),  # ~1.1 km north
            ping(at - timedelta(hours=2), driver_id=away, lat=53.55, lng=9.99),  # Hamburg
        ],
    )
    await positions.record_pings(
        bolt, manager, [ping(at, driver_id=await _driver(bolt), lat=52.52, lng=13.405)]
    )
    found = await positions.nearby_drivers(acme, 52.52, 13.405, 10_000, limit=10)
    assert [p.driver_id for p in found] == [near, far]
    assert found[0].distance_m == pytest.approx(1112, rel=0.01)
    assert found[1].distance_m == pytest.approx(4448, rel=0.01)
    assert isinstance(found[0], DriverPosition) and found[0].accuracy_m == 8.0
    assert len(await positions.nearby_drivers(acme, 52.52, 13.405, 10_000, limit=1)) == 1
    everywhere = await positions.nearby_drivers(acme, 52.52, 13.405, 500_000, limit=10)
    assert [p.driver_id for p in everywhere] == [near, far, away]
    recent = await positions.nearby_drivers(
        acme, 52.52, 13.405, 500_000, limit=10, seen_since=at - timedelta(minutes=5)
    )
    assert [p.driver_id for p in recent] == [near, far]


async def test_a_subscriber_receives_a_ping_within_a_second(
    two_tenants: tuple[TenantInfo, TenantInfo], cleanup: list[Any]
) -> None:
    acme, _bolt = two_tenants
    ray, sam = await _driver(acme, "Ray"), await _driver(acme, "Sam")
    tracking_sam = await _subscribed(acme, [sam])
    cleanup.append(tracking_sam)
    sent = time.monotonic()
    await positions.record_pings(
        acme,
        actor_for("manager"),
        [ping(now(), driver_id=ray), ping(now(), driver_id=sam, lat=52.4, speed_mps=12.5)],
    )
    (live,) = await asyncio.wait_for(tracking_sam[1], 1)
    assert time.monotonic() - sent < 1
    assert (live.driver_id, live.lat, live.speed_mps) == (sam, 52.4, 12.5)


async def test_history_survives_a_flusher_dying_between_read_and_commit(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, bolt = two_tenants
    driver_id = await _driver(acme)
    driver = actor_for("driver", driver_id=driver_id)
    at = now()
    await positions.record_pings(acme, driver, [ping(at - timedelta(seconds=10), lat=52.1)])
    await positions.record_pings(acme, driver, [ping(at - timedelta(seconds=5), lat=52.2)])
    bolt_driver = actor_for("driver", driver_id=await _driver(bolt))
    await positions.record_pings(bolt, bolt_driver, [ping(at)])

    # A flusher reads both entries and dies before writing them.
    died = await positions.read_history(acme, consumer="dead")
    assert len(died) == 2
    # Not claimed while fresh: the other flusher might only be slow.
    assert await positions.flush_history(acme, consumer="live") == 0
    assert await positions.flush_history(acme, consumer="live", claim_idle=0) == 2

    # Another writes a new entry, commits, and dies before acknowledging it.
    await positions.record_pings(acme, driver, [ping(at, lat=52.3)])
    batch = await positions.read_history(acme, consumer="dead")
    assert await positions.write_history(acme, batch) == 1
    assert await positions.flush_history(acme, consumer="live", claim_idle=0) == 0  # redelivered

    history = await _history(acme)
    assert [(r["driver_id"], r["lat"]) for r in history] == [
        (driver_id, 52.1),
        (driver_id, 52.2),
        (driver_id, 52.3),
    ]
    assert await get_redis().xlen(positions.history_key(acme.slug)) == 0
    row = await drivers.get_driver(acme, SYSTEM, driver_id)
    assert (row.last_lat, row.last_seen_at) == (52.3, at)
    assert await _history(bolt) == []  # Bolt's waits for its own flush
    assert await positions.flush_history(bolt) == 1
    assert len(await _history(bolt)) == 1


async def test_the_scheduled_flush_drains_every_pending_company(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, bolt = two_tenants
    for tenant in (acme, bolt):
        await positions.record_pings(
            tenant, actor_for("driver", driver_id=await _driver(tenant)), [ping(now())]
        )
    await positions.flush_all()
    assert len(await _history(acme)) == len(await _history(bolt)) == 1
    pending = await get_redis().smembers(positions.PENDING_KEY)
    assert acme.slug not in pending and bolt.slug not in pending


async def test_the_scheduled_flush_leaves_a_simulations_positions_to_the_simulator(
    make_tenant: MakeTenant,
) -> None:
    """A server beside `patone simulate` writes nothing into the simulation's company (which
    the simulator purges when its run ends)."""
    acme = await make_tenant("acme", name="Acme Towing")
    sim = await make_tenant("sim", name="Simulation", simulation=True)
    for tenant in (acme, sim):
        await positions.record_pings(
            tenant, actor_for("driver", driver_id=await _driver(tenant)), [ping(now())]
        )
    await positions.flush_all()
    assert len(await _history(acme)) == 1
    assert await _history(sim) == []
    assert sim.slug not in await get_redis().smembers(positions.PENDING_KEY)


async def test_partitions_are_made_ahead_and_expired_days_are_dropped(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, bolt = two_tenants
    today = datetime(2026, 12, 10, 12, tzinfo=UTC)
    days = [date(2026, 12, d) for d in range(10, 13)]
    old = [date(2026, 11, 1), date(2026, 12, 1), date(2026, 12, 7), date(2026, 12, 8)]
    for tenant in (acme, bolt):
        await positions.ensure_partitions(tenant, old)
    with use_clock(lambda: today):
        changes = await positions.upkeep_partitions(bolt)
        # 30 days by default: only 1 November is entirely older than that.
        assert changes.dropped == [positions.partition_name(old[0])]
        await company.update_settings(acme, SYSTEM, {"positions_retention_days": 2})
        changes = await positions.upkeep_partitions(acme)
    assert changes.ensured == [positions.partition_name(d) for d in days]
    assert changes.dropped == [positions.partition_name(d) for d in old[:-1]]
    assert await positions.list_partitions(acme) == [date(2026, 12, 8), *days]
    assert await positions.list_partitions(bolt) == old[1:] + days

    # A ping for a day without a partition gets one when it is flushed.
    driver_id = await _driver(acme)
    at = now()
    await positions.record_pings(acme, actor_for("driver", driver_id=driver_id), [ping(at)])
    await positions.flush_history(acme)
    assert at.astimezone(UTC).date() in await positions.list_partitions(acme)
    assert len(await _history(acme)) == 1


async def test_retention_setting_is_validated(two_tenants: tuple[TenantInfo, TenantInfo]) -> None:
    acme, bolt = two_tenants
    assert await positions.retention_days(acme) == 30
    with pytest.raises(ValidationFailed) as refused:
        await company.update_settings(acme, SYSTEM, {"positions_retention_days": 0})
    assert refused.value.field == "positions_retention_days"
    await company.update_settings(bolt, SYSTEM, {"positions_retention_days": 7})
    assert (await positions.retention_days(acme), await positions.retention_days(bolt)) == (30, 7)


async def test_setting_a_drivers_position_goes_the_live_way(
    two_tenants: tuple[TenantInfo, TenantInfo], cleanup: list[Any]
) -> None:
    acme, bolt = two_tenants
    driver_id = await _driver(acme)
    watching = await _subscribed(acme)
    cleanup.append(watching)
    row = await fleet.set_position(
        acme, actor_for("driver", driver_id=driver_id), driver_id, {"lat": 52.5, "lng": 13.4}
    )
    assert (row.last_lat, row.last_lng) == (52.5, 13.4)
    (live,) = await asyncio.wait_for(watching[1], 1)
    assert (live.driver_id, live.accuracy_m) == (driver_id, drivers.UNKNOWN_ACCURACY_M)
    with pytest.raises(ValidationFailed) as refused:
        await fleet.set_position(acme, SYSTEM, driver_id, {"lat": 89, "lng": 13.4})
    assert refused.value.field == "lat"
    await positions.flush_history(acme)
    stored = await drivers.get_driver(acme, SYSTEM, driver_id)
    assert (stored.last_lat, stored.last_lng) == (52.5, 13.4)
    assert await positions.driver_positions(bolt) == []


async def test_pings_that_arrive_during_a_purge_leave_nothing_after_the_next_flush(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    gone, stays = two_tenants
    late = actor_for("driver", driver_id=await _driver(gone))
    await positions.record_pings(
        stays, actor_for("driver", driver_id=await _driver(stays)), [ping(now())]
    )
    await provisioning.delete_tenant(gone.slug)
    await provisioning.purge_tenant(gone.slug, force=True)
    redis = get_redis()
    assert await redis.keys(f"t:{gone.slug}:*") == []
    await positions.record_pings(gone, late, [ping(now())])  # a request that began before
    assert gone.slug in await redis.smembers(positions.PENDING_KEY)
    await positions.flush_all()
    assert await redis.keys(f"t:{gone.slug}:*") == []
    assert gone.slug not in await redis.smembers(positions.PENDING_KEY)
    assert len(await _history(stays)) == 1

"""The demo company: counts, a legal history for every request, isolation, idempotence, seeds."""

from __future__ import annotations

import asyncio
import re
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

from patone.core.common.inputs import normalize_phone, normalize_plate
from patone.core.domain.company import get_settings
from patone.core.domain.lifecycle import ENTERED_AT, OPEN, REASONS, TRANSITIONS
from patone.core.runtime.clock import use_clock
from patone.core.runtime.db import engine
from patone.core.tables.requests import RequestStatus as S
from patone.core.tables.requests import ServiceTypeRow
from patone.demo import company as demo
from patone.tenants.isolation import tenant_transaction
from patone.tenants.registry import TenantInfo
from tests.conftest import MakeTenant

# A Tuesday morning; the fill's data is relative to the business clock.
NOW = datetime(2026, 11, 24, 10, 30, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")
VIN = re.compile(r"^[A-HJ-NPR-Z0-9]{17}$")
PLATE = re.compile(r"^[A-Z]{1,3}-[A-Z]{1,2}[1-9][0-9]{0,3}E?$")
TABLES = ("users", "drivers", "customers", "vehicles", "memberships", "service_requests")
DRIVER_STEPS = {S.en_route, S.on_scene, S.in_progress, S.completed}


async def _fill(tenant: TenantInfo, **kwargs: Any) -> demo.DemoSummary:
    with use_clock(lambda: NOW):
        return await demo.fill_demo_tenant(tenant, **kwargs)


async def _rows(tenant: TenantInfo, sql: str) -> list[dict[str, Any]]:
    async with tenant_transaction(tenant):
        return [dict(r) for r in await engine.fetch(sql)]


async def _counts(tenant: TenantInfo) -> dict[str, int]:
    union = " UNION ALL ".join(f"SELECT '{t}' AS t, count(*) AS n FROM {t}" for t in TABLES)
    return {row["t"]: row["n"] for row in await _rows(tenant, union)}


async def _digest(tenant: TenantInfo) -> dict[str, str]:
    """A fingerprint of every demo table (fresh tenants number their rows alike)."""
    parts = {
        "drivers": "name, phone, status, skills, truck, last_lat, last_lng, last_seen_at",
        "customers": "name, phone, email, notes, created_at",
        "vehicles": "customer, make, model, year, colour, plate, vin",
        "memberships": "customer, provider, number, valid_until",
        "service_requests": "number, customer, vehicle, status, priority, pickup_address, "
        "destination_address, quoted_price, driver, created_at, completed_at, cancel_reason",
        "request_events": "request, to_status, actor_type, actor_id, reason_code, lat, created_at",
    }
    sql = " UNION ALL ".join(
        f"SELECT '{table}' AS t, md5(string_agg(row({columns})::text, '|' ORDER BY id)) AS d "
        f"FROM {table}"
        for table, columns in parts.items()
    )
    return {row["t"]: row["d"] for row in await _rows(tenant, sql)}


def _inside_berlin(lat: float | None, lng: float | None) -> bool:
    return (
        lat is not None
        and lng is not None
        and demo.LAT_MIN <= lat <= demo.LAT_MAX
        and demo.LNG_MIN <= lng <= demo.LNG_MAX
    )


async def _check_drivers(tenant: TenantInfo) -> dict[int, dict[str, Any]]:
    drivers = await _rows(tenant, 'SELECT id, "user", phone, status, skills, last_lat, last_lng, '
                                  "last_seen_at, truck, name FROM drivers")  # fmt: skip
    assert len(drivers) >= 50
    assert all(_inside_berlin(d["last_lat"], d["last_lng"]) for d in drivers)
    assert all(d["last_seen_at"] is not None and d["last_seen_at"] <= NOW for d in drivers)
    assert all(normalize_phone(d["phone"]) == d["phone"].strip() for d in drivers)
    assert all(d["name"] and d["truck"] and d["user"] is not None for d in drivers)
    assert set(Counter(d["status"] for d in drivers)) == {
        "available", "busy", "on_break", "off_duty",
    }  # fmt: skip
    assert sum("tow" in d["skills"] for d in drivers) > len(drivers) / 2
    assert {s for d in drivers for s in d["skills"]} == {"tow", "winch", "lockout"}
    return {d["id"]: d for d in drivers}


async def _check_customers(tenant: TenantInfo) -> None:
    customers = await _rows(tenant, "SELECT id, name, phone, email, created_at FROM customers")
    assert len(customers) == demo.CUSTOMERS
    assert all(c["name"] for c in customers)
    phones = [c["phone"] for c in customers if c["phone"] is not None]
    assert len(phones) > 0.9 * len(customers)
    assert all(p.startswith("+49") and normalize_phone(p) == p for p in phones)
    assert all(c["email"].rsplit(".", 1)[0].endswith("@example") for c in customers if c["email"])
    vehicles = await _rows(tenant, "SELECT customer, make, model, year, colour, plate, vin "
                                   "FROM vehicles")  # fmt: skip
    assert {v["customer"] for v in vehicles} == {c["id"] for c in customers}
    assert all(VIN.match(v["vin"]) for v in vehicles)
    assert all(PLATE.match(v["plate"]) and normalize_plate(v["plate"]) == v["plate"]
               for v in vehicles)  # fmt: skip
    assert all(v["make"] and v["model"] and v["colour"] and 1990 < v["year"] <= NOW.year
               for v in vehicles)  # fmt: skip
    assert Counter(v["plate"].split("-")[0] for v in vehicles).most_common(1)[0][0] == "B"
    memberships = await _rows(tenant, "SELECT provider, number FROM memberships")
    assert 0 < len(memberships) < len(customers) / 2
    assert "ADAC" in {m["provider"] for m in memberships}


async def _check_requests(tenant: TenantInfo, drivers: dict[int, dict[str, Any]]) -> None:
    requests = await _rows(tenant, "SELECT * FROM service_requests ORDER BY id")
    open_ = [r for r in requests if S(r["status"]) in OPEN]
    past = [r for r in requests if S(r["status"]) not in OPEN]
    assert len(open_) == demo.OPEN_REQUESTS and len(past) == demo.PAST_REQUESTS
    assert {r["status"] for r in open_} == {str(s) for s in OPEN}
    assert all(NOW - timedelta(days=90) <= r["created_at"] < NOW for r in requests)
    assert all(r["created_at"] >= NOW - timedelta(hours=3) for r in open_)

    # Open jobs: pending ones wait for a driver; the others each have their own busy driver.
    working = [r["driver"] for r in open_ if r["status"] != "pending"]
    assert None not in working and len(set(working)) == len(working)
    assert all(drivers[d]["status"] == "busy" for d in working)
    assert all(r["driver"] is None for r in open_ if r["status"] == "pending")
    assert all(r["driver"] is not None for r in past if r["status"] == "completed")

    # Mostly completed, some cancelled with a reason, a few emergencies, more calls by day.
    cancelled = [r for r in past if r["status"] == "cancelled"]
    assert 0.05 < len(cancelled) / len(past) < 0.11
    assert {r["cancel_reason"] for r in cancelled} <= REASONS[S.cancelled]
    assert {"gone_on_arrival", "customer_cancelled"} <= {r["cancel_reason"] for r in cancelled}
    priorities = Counter(r["priority"] for r in requests)
    assert priorities.most_common(1)[0][0] == "normal"
    assert 0.01 < priorities["emergency"] / len(requests) < 0.06
    assert priorities["high"] and priorities["low"]
    hours = Counter(r["created_at"].astimezone(BERLIN).hour for r in past)
    assert sum(hours[h] for h in range(7, 20)) > 0.6 * len(past)
    assert min(hours[8], hours[17]) > 2 * max(hours[h] for h in range(1, 5))

    # Prices from the price list, in the tenant's currency; numbers from the sequence.
    assert all(isinstance(r["quoted_price"], int) and r["quoted_price"] > 0 for r in requests)
    assert {r["currency"] for r in requests} == {"EUR"}
    types = {t["id"]: t for t in await _rows(tenant, "SELECT * FROM service_types")}
    for r in requests:
        kind = types[r["service_type"]]
        assert r["quoted_price"] >= kind["base_price"]
        if kind["needs_destination"]:
            assert r["destination_address"] and _inside_berlin(
                r["destination_lat"], r["destination_lng"]
            )
        assert _inside_berlin(r["pickup_lat"], r["pickup_lng"]) and r["pickup_address"]
    numbers = sorted(r["number"] for r in requests)
    assert numbers == list(range(1001, 1001 + len(requests)))
    by_time = [r["number"] for r in sorted(requests, key=lambda r: r["created_at"])]
    assert by_time == numbers
    last = await _rows(tenant, "SELECT last_value FROM service_request_number_seq")
    assert last[0]["last_value"] == numbers[-1]
    await _check_events(tenant, requests, drivers)


async def _check_events(
    tenant: TenantInfo, requests: list[dict[str, Any]], drivers: dict[int, dict[str, Any]]
) -> None:
    """Every request's events walk the state machine and agree with the request's columns."""
    events: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for event in await _rows(tenant, "SELECT * FROM request_events ORDER BY id"):
        events[event["request"]].append(event)
    users = {str(u["id"]) for u in await _rows(tenant, "SELECT id FROM users")}
    assert set(events) == {r["id"] for r in requests}
    for r in requests:
        history = events[r["id"]]
        first = history[0]
        assert (first["from_status"], first["to_status"]) == (None, "pending")
        assert first["created_at"] == r["created_at"]
        assert f"{first['actor_type']}:{first['actor_id']}" == r["created_by"]
        for before, after in pairwise(history):
            assert after["from_status"] == before["to_status"]
            assert S(after["to_status"]) in TRANSITIONS[S(before["to_status"])]
            assert after["created_at"] > before["created_at"]
            codes = REASONS.get(S(after["to_status"]))
            assert after["reason_code"] in codes if codes else after["reason_code"] == ""
            assert after["actor_type"] == "user" and after["actor_id"] in users
            if S(after["to_status"]) in DRIVER_STEPS:
                assert after["actor_id"] == str(drivers[r["driver"]]["user"])
                assert _inside_berlin(after["lat"], after["lng"])
            if after["to_status"] == "on_scene":
                assert (after["lat"], after["lng"]) == (r["pickup_lat"], r["pickup_lng"])
        assert history[-1]["to_status"] == r["status"]
        assert r["updated_at"] == history[-1]["created_at"] and r["version"] == len(history)
        entered = {e["to_status"]: e["created_at"] for e in history}
        for status, column in ENTERED_AT.items():
            expected = entered.get(status)
            if status == S.assigned and r["status"] == "pending":
                expected = None
            assert r[column] == expected, (r["number"], column)
        if r["status"] == "cancelled":
            assert r["cancel_reason"] == history[-1]["reason_code"]


async def test_fill_demo_tenant(
    two_tenants: tuple[TenantInfo, TenantInfo], make_tenant: MakeTenant
) -> None:
    acme, bolt = two_tenants
    seen: list[tuple[str, int, int]] = []

    # Two processes filling at once: one fills, the other finds the data and does nothing.
    # Both report progress: whichever wins the race fills, and only it has steps to report.
    first, second = await asyncio.gather(
        _fill(acme, progress=lambda *step: seen.append(step)),
        _fill(acme, progress=lambda *step: seen.append(step)),
    )
    summary, idle = (first, second) if first.filled else (second, first)
    assert summary.filled and not idle.filled and "already has" in str(idle)
    assert (summary.drivers, summary.customers) == (demo.DRIVERS, demo.CUSTOMERS)
    assert (summary.open_requests, summary.past_requests) == (20, 5000)
    assert summary.seconds < 30 and "5000 past requests" in str(summary)
    finished = {stage: (done, total) for stage, done, total in seen}
    assert list(finished) == [
        "prepare", "users", "drivers", "customers", "vehicles", "memberships", "requests",
        "events",
    ]  # fmt: skip
    assert all(done == total for done, total in finished.values())

    counts = await _counts(acme)
    assert counts["customers"] == 2000 and counts["vehicles"] == summary.vehicles
    assert counts["users"] == summary.users and counts["memberships"] == summary.memberships
    settings = await get_settings(acme)
    assert (settings["currency"], settings["units"], settings["time_zone"]) == (
        "EUR", "km", "Europe/Berlin",
    )  # fmt: skip
    drivers = await _check_drivers(acme)
    await _check_customers(acme)
    await _check_requests(acme, drivers)

    # The other company saw nothing.
    assert set((await _counts(bolt)).values()) == {0}
    assert (await get_settings(bolt))["currency"] == "USD"

    # Filling again changes nothing.
    before = await _digest(acme)
    again = await _fill(acme)
    assert not again.filled and again.customers == 0
    assert await _digest(acme) == before and await _counts(acme) == counts

    # The same seed on the same clock gives the same company.
    twin = await make_tenant("twin")
    assert (await _fill(twin)).filled
    assert await _digest(twin) == before

    # Another seed gives another company, selling only what the tenant offers.
    offered = {
        "towing": ServiceTypeRow(id=1, code="towing", name="Towing", base_price=9500,
                                 per_distance_price=400, after_hours_surcharge=2500,
                                 needs_destination=True, required_skills=["tow"], active=True,
                                 updated_at=NOW),
        "lockout": ServiceTypeRow(id=2, code="lockout", name="Lockout", base_price=6000,
                                  per_distance_price=0, after_hours_surcharge=2000,
                                  needs_destination=False, required_skills=["lockout"],
                                  active=True, updated_at=NOW),
    }  # fmt: skip
    other = demo.build_demo_data(7, NOW, offered, {"time_zone": "Europe/Berlin", "units": "km"})
    names = [row["name"] for row in await _rows(acme, "SELECT name FROM customers ORDER BY id")]
    assert [c.name for c in other.customers] != names
    assert {r.service_code for r in other.requests} == {"towing", "lockout"}
    # Without business hours every call is after hours.
    assert {r.quoted_price for r in other.requests if r.service_code == "lockout"} == {8000}

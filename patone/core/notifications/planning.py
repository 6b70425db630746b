"""From a committed event to notification rows: rules, recipients, preferences, texts.

`plan_events` runs in the `fan_out` job of every batch of events
(`@event_handler("notifications")`). In one tenant transaction for the whole batch, with one
query per kind of thing (not per event), it reads the company's enabled rules for the events,
finds who they name (each request's customer, its driver, the staff who dispatch), drops those
who turned the event or channel off, renders each text, and inserts one `notifications` row per
event, recipient, channel and address, keyed by the event id: running it again inserts nothing
new. After the commit it queues send jobs for every row of the events still `queued`, so a
fan-out that died between its commit and its queueing is completed by its retry.

A recipient without the address a channel needs is logged as `no_address`, one who turned the
notification off as `suppressed`: the delivery log says why nobody was told.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import dramatiq

from patone.core.common import topics
from patone.core.domain.company import get_settings
from patone.core.notifications import templates
from patone.core.notifications.sending import enqueue_sends
from patone.core.runtime.db import engine
from patone.core.work.events import event_handler
from patone.tenants.isolation import TenantRef, tenant_transaction
from patone.tenants.registry import TenantInfo


@dataclass(frozen=True)
class Recipient:
    kind: str  # "customer", "user" or "driver" (a driver with no user account)
    id: int
    name: str
    email: str | None
    phone: str | None
    push_owner: tuple[str, int] | None  # whose devices a push goes to


def event_key(event: dict[str, Any]) -> str | None:
    """The notification event an outbox event is, or None if nothing notifies of it."""
    key = event.get("topic", "")
    if topics.REQUEST_STATUS_CHANGED.matches(event):
        key = templates.status_event(event.get("payload", {}).get("status", ""))
    return key if key in templates.EVENTS else None


def _money(amount: int | None, currency: str) -> str:
    if amount is None:
        return ""
    symbol = {"USD": "$", "EUR": "€", "GBP": "£", "CAD": "$", "AUD": "$"}.get(currency)
    value = f"{amount / 100:,.2f}"
    return f"{symbol}{value}" if symbol else f"{value} {currency}"


_REQUESTS = (
    "SELECT r.id, r.number, r.status, r.priority, r.pickup_address, "
    "r.destination_address, r.quoted_price, r.currency, r.notes, st.name AS service, "
    "c.id AS customer_id, c.name AS customer_name, c.email AS customer_email, "
    "c.phone AS customer_phone, d.id AS driver_id, d.name AS driver_name, "
    "d.truck AS driver_truck, d.phone AS driver_phone, d.user AS driver_user "
    "FROM service_requests r JOIN customers c ON c.id = r.customer "
    "JOIN service_types st ON st.id = r.service_type "
    "LEFT JOIN drivers d ON d.id = r.driver WHERE r.id = ANY($1::int[])"
)


async def request_contexts(
    tenant: TenantRef, request_ids: list[int]
) -> dict[int, tuple[dict[str, Any], dict[str, Recipient]]]:
    """What templates see about each request (but the event), and the people rules may name,
    by request id (inside a tenant transaction); requests that are gone are left out."""
    rows = await engine.fetch(_REQUESTS, request_ids)
    if not rows:
        return {}
    settings = await get_settings(tenant)  # joins the caller's transaction
    company: dict[str, str] = {
        "name": str(settings.get("company.name") or getattr(tenant, "name", tenant.slug)),
        "phone": settings.get("company.phone") or "",
        "email": settings.get("company.email") or "",
    }
    return {row["id"]: _request_context(row, company) for row in rows}


def _request_context(
    row: Any, company: dict[str, str]
) -> tuple[dict[str, Any], dict[str, Recipient]]:
    context: dict[str, Any] = {
        "company": company,
        "request": {
            "id": row["id"],
            "number": row["number"],
            "status": row["status"],
            "service": row["service"],
            "priority": row["priority"],
            "pickup_address": row["pickup_address"],
            "destination_address": row["destination_address"],
            "price": _money(row["quoted_price"], row["currency"]),
            "notes": row["notes"],
        },
        "customer": {
            "name": row["customer_name"],
            "first_name": (row["customer_name"] or "").split(" ")[0],
        },
        "driver": {"name": row["driver_name"], "truck": row["driver_truck"]}
        if row["driver_id"] is not None
        else None,
    }
    people = {
        "customer": Recipient(
            "customer",
            row["customer_id"],
            row["customer_name"],
            row["customer_email"],
            row["customer_phone"],
            ("customer", row["customer_id"]),
        )
    }
    if row["driver_id"] is not None:
        user = row["driver_user"]
        people["driver"] = Recipient(
            "user" if user is not None else "driver",
            user if user is not None else row["driver_id"],
            row["driver_name"],
            None,
            row["driver_phone"],
            ("user", user) if user is not None else None,
        )
    return context, people


async def request_context(
    tenant: TenantRef, request_id: int, event: str
) -> tuple[dict[str, Any], dict[str, Recipient]] | None:
    """What templates see about a request for `event`, and the people rules may name (inside a
    tenant transaction); None if the request is gone."""
    found = (await request_contexts(tenant, [request_id])).get(request_id)
    if found is None:
        return None
    context, people = found
    return {**context, "event": event}, people


async def _dispatchers() -> list[Recipient]:
    """Active staff whose role may assign drivers (the company's dispatch desk)."""
    rows = await engine.fetch(
        "SELECT u.id, u.name, u.email FROM users u JOIN roles r ON r.name = u.role "
        "WHERE u.active AND 'requests.assign' = ANY(r.permissions) ORDER BY u.id"
    )
    return [
        Recipient("user", r["id"], r["name"], r["email"], None, ("user", r["id"])) for r in rows
    ]


Preferences = dict[tuple[str, str, int, str], bool]  # (event or "*", kind, id, channel) -> on


async def _preferences(recipients: list[Recipient], events: list[str]) -> Preferences:
    """The recipients' choices for these events (and for every event, "*")."""
    ids = {(r.kind, r.id) for r in recipients if r.kind in ("user", "customer")}
    if not ids:
        return {}
    rows = await engine.fetch(
        "SELECT subject_kind, subject_id, event, channel, enabled FROM notification_preferences "
        "WHERE event = ANY($1::text[]) AND (subject_kind, subject_id) IN "
        "(SELECT * FROM unnest($2::text[], $3::int[]))",
        [*events, "*"],
        [kind for kind, _ in ids],
        [pk for _, pk in ids],
    )
    return {
        (r["event"], r["subject_kind"], r["subject_id"], r["channel"]): r["enabled"] for r in rows
    }


def _wants(preferences: Preferences, person: Recipient, event: str, channel: str) -> bool:
    """An event's own choice beats the choice for every event ("*"); on unless turned off."""
    key = (person.kind, person.id, channel)
    own = preferences.get((event, *key))
    return own if own is not None else preferences.get(("*", *key), True)


async def stored_templates(event: str) -> dict[str, templates.Template]:
    """The company's own texts for one event, by channel."""
    return {channel: text for (_, channel), text in (await _stored_templates([event])).items()}


async def _stored_templates(events: list[str]) -> dict[tuple[str, str], templates.Template]:
    rows = await engine.fetch(
        "SELECT event, channel, subject, body, html FROM notification_templates "
        "WHERE event = ANY($1::text[])",
        events,
    )
    return {
        (r["event"], r["channel"]): templates.Template(r["subject"], r["body"], r["html"])
        for r in rows
    }


async def _with_devices(recipients: list[Recipient]) -> set[tuple[str, int]]:
    """The push owners among `recipients` that registered at least one device."""
    owners = {r.push_owner for r in recipients if r.push_owner is not None}
    if not owners:
        return set()
    rows = await engine.fetch(
        "SELECT DISTINCT owner_kind, owner_id FROM push_subscriptions WHERE (owner_kind, "
        "owner_id) IN (SELECT * FROM unnest($1::text[], $2::int[]))",
        [kind for kind, _ in owners],
        [pk for _, pk in owners],
    )
    return {(r["owner_kind"], r["owner_id"]) for r in rows}


def _address(recipient: Recipient, channel: str, devices: set[tuple[str, int]]) -> str | None:
    if channel == "email":
        return recipient.email or None
    if channel == "sms":
        return recipient.phone or None
    if recipient.push_owner is None or recipient.push_owner not in devices:
        return None
    return f"{recipient.push_owner[0]}:{recipient.push_owner[1]}"


_INSERT = (
    "INSERT INTO notifications (event_id, event, entity, entity_id, recipient_kind, "
    "recipient_id, channel, address, subject, body, html, status, error) "
    "SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], "
    "$6::int[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], "
    "$13::text[]) ON CONFLICT DO NOTHING"
)


async def plan(tenant: TenantRef, events: list[dict[str, Any]]) -> list[int]:
    """Write the notifications a batch of events causes (idempotent); returns the ids of the
    batch's notifications still queued."""
    keyed = [
        (event, key)
        for event in events
        if (key := event_key(event)) is not None and event.get("entity") == "service_request"
    ]
    if not keyed:
        return []
    async with tenant_transaction(tenant):
        rules = await engine.fetch(
            "SELECT event, recipient, channel FROM notification_rules "
            "WHERE event = ANY($1::text[]) AND enabled ORDER BY id",
            sorted({key for _, key in keyed}),
        )
        by_event: dict[str, list[Any]] = {}
        for rule in rules:
            by_event.setdefault(rule["event"], []).append(rule)
        keyed = [(event, key) for event, key in keyed if key in by_event]
        if not keyed:
            return []
        found = await request_contexts(tenant, sorted({int(e["entity_id"]) for e, _ in keyed}))
        dispatchers = (
            await _dispatchers() if any(r["recipient"] == "dispatchers" for r in rules) else []
        )
        everyone = [r for _, people in found.values() for r in people.values()] + dispatchers
        keys = sorted(by_event)
        preferences = await _preferences(everyone, keys)
        pushing = any(rule["channel"] == "push" for rule in rules)
        devices = await _with_devices(everyone) if pushing else set()
        texts = await _stored_templates(keys)
        columns: list[list[Any]] = [[] for _ in range(13)]
        for event, key in keyed:
            request = found.get(int(event["entity_id"]))
            if request is None:
                continue  # the request is gone
            context, people = request
            context = {**context, "event": key}
            for rule in by_event[key]:
                channel = rule["channel"]
                named = dispatchers if rule["recipient"] == "dispatchers" else []
                if rule["recipient"] in people:
                    named = [people[rule["recipient"]]]
                text = texts.get((key, channel)) or templates.default(key, channel)
                rendered = templates.render(text, context)
                for person in named:
                    address = _address(person, channel, devices)
                    status, error = "queued", ""
                    if address is None:
                        status, error = "no_address", f"no {_WHAT[channel]} for {person.name}"
                    elif not _wants(preferences, person, key, channel):
                        status, error = (
                            "suppressed",
                            f"{person.name} turned off {channel} for {key}",
                        )
                    row = (
                        int(event["id"]),
                        key,
                        event["entity"],
                        str(event["entity_id"]),
                        person.kind,
                        person.id,
                        channel,
                        address or "",
                        rendered.subject,
                        rendered.body,
                        rendered.html,
                        status,
                        error,
                    )
                    for column, value in zip(columns, row, strict=True):
                        column.append(value)
        if columns[0]:
            await engine.execute(_INSERT, *columns)
        queued = await engine.fetch(
            "SELECT id FROM notifications WHERE event_id = ANY($1::bigint[]) "
            "AND status = 'queued' ORDER BY id",
            [int(event["id"]) for event, _ in keyed],
        )
    return [r["id"] for r in queued]


_WHAT = {"email": "email address", "sms": "phone number", "push": "device registered for push"}


@event_handler("notifications")
async def plan_events(
    tenant: TenantInfo, events: list[dict[str, Any]], broker: dramatiq.Broker
) -> None:
    ids = await plan(tenant, events)
    if ids:
        await asyncio.to_thread(enqueue_sends, broker, tenant, ids)

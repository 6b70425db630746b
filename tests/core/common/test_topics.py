"""The event catalogue: every event emitted is declared there, every declared one is emitted,
its payload is the event's JSON, and docs/webhooks.md lists exactly the catalogue."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from patone.core.common import topics
from patone.core.common.activity import emit
from patone.core.runtime.db import engine
from patone.tenants.isolation import tenant_transaction
from patone.tenants.registry import TenantInfo

ROOT = Path(__file__).resolve().parents[3]
PACKAGE = ROOT / "patone"
NAME = re.compile(r"[a-z]+(_[a-z]+)*\.[a-z]+(_[a-z]+)*")


def _declared() -> dict[str, topics.Topic[topics.Payload]]:
    """The catalogue's topics by the constant that names them (`REQUEST_CREATED`)."""
    return {name: value for name, value in vars(topics).items() if isinstance(value, topics.Topic)}


def _modules() -> list[tuple[Path, ast.Module]]:
    return [(path, ast.parse(path.read_text(encoding="utf-8"))) for path in PACKAGE.rglob("*.py")]


def test_every_emit_names_a_topic_of_the_catalogue_and_every_topic_is_emitted() -> None:
    declared = _declared()
    emitted: set[str] = set()
    strays: list[str] = []
    for path, tree in _modules():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if name != "emit":
                continue
            topic = node.args[0]
            if (
                isinstance(topic, ast.Attribute)
                and isinstance(topic.value, ast.Name)
                and topic.value.id == "topics"
                and topic.attr in declared
            ):
                emitted.add(topic.attr)
            else:
                strays.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert strays == [], "emit() given something other than a catalogue topic"
    assert set(declared) - emitted == set(), "declared but never emitted"
    assert len(declared) == len(topics.CATALOGUE)


def test_only_emit_writes_the_outbox() -> None:
    writers = {
        path.name
        for path, tree in _modules()
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and "INSERT INTO outbox" in node.value
    }
    assert writers == {"activity.py"}


def test_each_topic_is_declared_once_with_its_family_entity_and_doc() -> None:
    assert list(topics.CATALOGUE) == [topic.name for topic in _declared().values()]
    for topic in topics.CATALOGUE.values():
        assert NAME.fullmatch(topic.name), topic.name
        assert topic.entity and topic.payload is not topics.Payload
        assert topic.doc.endswith(".") and "\n" not in topic.doc
    with pytest.raises(ValueError, match="declared twice"):
        topics._declare("request.created", "service_request", topics.RequestSummary, "Again.")
    assert sorted(topics.FAMILIES) == ["customer", "driver", "offer", "request"]


def test_webhooks_may_subscribe_to_topics_and_families_only() -> None:
    assert topics.accepts("request.created") and topics.accepts("offer.expired")
    assert topics.accepts("driver.*") and topics.accepts("customer.*")
    for refused in ("request.teleported", "parcel.*", "request", "*", "webhook.test", ""):
        assert not topics.accepts(refused), refused


def test_a_payload_is_the_events_json_keys() -> None:
    moved = topics.DriverStatusChanged(7, from_="available", to="on_break")
    assert moved.as_json() == {"id": 7, "from": "available", "to": "on_break"}
    closed = topics.OfferClosed.of(
        {"id": 3, "request_id": 9, "driver_id": 7, "status": "expired", "reason": "no answer"}
    )
    assert closed.as_json() == {
        "id": 3,
        "request_id": 9,
        "driver_id": 7,
        "status": "expired",
        "reason": "no answer",
    }


async def test_emit_writes_the_topic_its_entity_and_payload_in_the_companys_outbox(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, bolt = two_tenants
    summary = {
        "id": 5,
        "number": 1005,
        "status": "assigned",
        "priority": "normal",
        "service_type": 2,
        "driver": 7,
        "version": 3,
    }
    async with tenant_transaction(acme):
        await emit(topics.REQUEST_ASSIGNED, 5, topics.RequestAssigned(**summary, from_="pending"))
        # A payload of another topic (even a richer one) is refused, and nothing written.
        with pytest.raises(TypeError, match=r"request\.assigned carries RequestAssigned"):
            await emit(
                topics.REQUEST_ASSIGNED,
                5,
                topics.RequestStatusChanged(**summary, from_="pending", reason_code=""),
            )
        rows = await engine.fetch("SELECT topic, entity, entity_id, payload FROM outbox")
    assert [(r["topic"], r["entity"], r["entity_id"]) for r in rows] == [
        ("request.assigned", "service_request", "5")
    ]
    assert json.loads(rows[0]["payload"]) == {"tenant": acme.slug, **summary, "from": "pending"}
    async with tenant_transaction(bolt):
        assert await engine.fetch("SELECT id FROM outbox") == []


def test_the_webhook_guide_lists_exactly_the_catalogue() -> None:
    text = (ROOT / "docs" / "webhooks.md").read_text(encoding="utf-8")
    listed = text.split(topics.START)[1].split(topics.END)[0]
    assert listed.strip() == topics.markdown().strip(), (
        "run: python -m patone.core.common.topics docs/webhooks.md"
    )
    for topic in topics.CATALOGUE.values():
        assert f"| `{topic.name}` | `{topic.entity}` | {topic.doc} |" in listed

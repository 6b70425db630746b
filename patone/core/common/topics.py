"""The event catalogue: every topic a company's outbox carries, declared once.

A topic has a name (`request.created`), the entity it is about (the outbox row's `entity`), its
payload as a frozen dataclass and a one-line doc. `activity.emit` takes a topic and an instance
of its payload, so the type checker refuses a misspelt topic or a payload of the wrong shape;
the outbox row keeps the payload's fields as plain JSON keys, which is what the relay, live
subscriptions and webhooks carry. Consumers match events with `topic.matches(event)` rather
than with strings of their own, and webhooks accept only the names declared here.

docs/webhooks.md lists this catalogue (`markdown()`; a test keeps the two equal: after changing
a topic, run `python -m patone.core.common.topics docs/webhooks.md`).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Generic, TypeVar

from patone.core.runtime.generated_docs import write_between


@dataclass(frozen=True)
class Payload:
    """Base of the payloads: each field is a key of the event's JSON (`key` in a field's
    metadata when the key is a Python keyword, like `from`)."""

    def as_json(self) -> dict[str, Any]:
        return {f.metadata.get("key", f.name): getattr(self, f.name) for f in fields(self)}


P = TypeVar("P", bound=Payload)
Timestamp = str  # ISO 8601, as `datetime.isoformat()` writes it


@dataclass(frozen=True)
class Topic(Generic[P]):
    name: str
    entity: str
    payload: type[P]
    doc: str

    @property
    def family(self) -> str:
        """The family webhooks subscribe to with `<family>.*` (`request` for `request.created`)."""
        return self.name.split(".", 1)[0]

    def matches(self, event: Mapping[str, Any]) -> bool:
        """Whether an outbox event (as the relay publishes it) is of this topic."""
        return event.get("topic") == self.name


CATALOGUE: dict[str, Topic[Any]] = {}


def _declare(name: str, entity: str, payload: type[P], doc: str) -> Topic[P]:
    if name in CATALOGUE:
        raise ValueError(f"topic {name} is declared twice")
    topic = Topic(name, entity, payload, doc)
    CATALOGUE[name] = topic
    return topic


# ---------------------------------------------------------------------------------------------
# Payloads


@dataclass(frozen=True)
class RequestSummary(Payload):
    id: int
    number: int
    status: str
    priority: str
    service_type: int
    driver: int | None
    version: int


@dataclass(frozen=True)
class RequestAssigned(RequestSummary):
    from_: str = field(metadata={"key": "from"})  # the status before


@dataclass(frozen=True)
class RequestStatusChanged(RequestAssigned):
    reason_code: str


@dataclass(frozen=True)
class RequestEtaChanged(Payload):
    id: int
    number: int
    driver: int | None
    eta_at: Timestamp
    previous: Timestamp | None  # the ETA shown before


@dataclass(frozen=True)
class RequestNeedsDispatcher(Payload):
    id: int
    number: int
    priority: str
    why: str


@dataclass(frozen=True)
class OfferCreated(Payload):
    id: int
    request_id: int
    number: int  # the request's
    driver_id: int
    priority: str
    deadline: Timestamp
    travel_s: int | None  # to the scene; None: the maps plugin found no road


@dataclass(frozen=True)
class OfferClosed(Payload):
    id: int
    request_id: int
    driver_id: int
    status: str
    reason: str

    @classmethod
    def of(cls, offer: Mapping[str, Any]) -> OfferClosed:
        """From an `offers` row (or any mapping with its columns)."""
        return cls(
            id=offer["id"],
            request_id=offer["request_id"],
            driver_id=offer["driver_id"],
            status=offer["status"],
            reason=offer["reason"],
        )


@dataclass(frozen=True)
class OfferWithdrawn(Payload):
    id: int
    request_id: int
    driver_id: int


@dataclass(frozen=True)
class DriverStatusChanged(Payload):
    id: int
    from_: str = field(metadata={"key": "from"})
    to: str


@dataclass(frozen=True)
class StagingSuggested(Payload):
    driver_id: int
    lat: float
    lng: float
    km: float
    place: str
    suggested_at: Timestamp | None


@dataclass(frozen=True)
class StagingCleared(Payload):
    driver_id: int


@dataclass(frozen=True)
class CustomerRef(Payload):
    id: int


# ---------------------------------------------------------------------------------------------
# Topics

REQUEST_CREATED = _declare(
    "request.created", "service_request", RequestSummary, "A service request was created."
)
REQUEST_UPDATED = _declare(
    "request.updated",
    "service_request",
    RequestSummary,
    "A service request's details changed (location, notes, price, priority).",
)
REQUEST_ASSIGNED = _declare(
    "request.assigned", "service_request", RequestAssigned, "A service request was given a driver."
)
REQUEST_STATUS_CHANGED = _declare(
    "request.status_changed",
    "service_request",
    RequestStatusChanged,
    "A service request moved on (en route, on scene, completed, cancelled...).",
)
REQUEST_ETA_CHANGED = _declare(
    "request.eta_changed",
    "service_request",
    RequestEtaChanged,
    "A service request's expected arrival moved by more than a minute.",
)
REQUEST_NEEDS_DISPATCHER = _declare(
    "request.needs_dispatcher",
    "service_request",
    RequestNeedsDispatcher,
    "Automatic dispatch found no driver for a request: a dispatcher should step in.",
)
OFFER_CREATED = _declare("offer.created", "offer", OfferCreated, "A driver was offered a request.")
OFFER_ACCEPTED = _declare("offer.accepted", "offer", OfferClosed, "A driver accepted an offer.")
OFFER_DECLINED = _declare("offer.declined", "offer", OfferClosed, "A driver turned an offer down.")
OFFER_EXPIRED = _declare(
    "offer.expired", "offer", OfferClosed, "An offer lapsed: no answer before its deadline."
)
OFFER_WITHDRAWN = _declare(
    "offer.withdrawn",
    "offer",
    OfferWithdrawn,
    "An offer was taken back: its driver stopped working (off duty, break, archived).",
)
DRIVER_STATUS_CHANGED = _declare(
    "driver.status_changed",
    "driver",
    DriverStatusChanged,
    "A driver went on or off shift, on a break...",
)
DRIVER_STAGING_SUGGESTED = _declare(
    "driver.staging_suggested",
    "driver",
    StagingSuggested,
    "An idle driver was told where to wait (docs/dispatch.md).",
)
DRIVER_STAGING_CLEARED = _declare(
    "driver.staging_cleared",
    "driver",
    StagingCleared,
    "A driver's waiting place no longer stands (busy, arrived, staging off).",
)
CUSTOMER_CREATED = _declare("customer.created", "customer", CustomerRef, "A customer was added.")
CUSTOMER_UPDATED = _declare(
    "customer.updated", "customer", CustomerRef, "A customer's details changed."
)

FAMILIES = frozenset(topic.family for topic in CATALOGUE.values())


def names(*chosen: Topic[Any]) -> frozenset[str]:
    """The names of these topics, to match an event's `topic` against several at once."""
    return frozenset(topic.name for topic in chosen)


def accepts(event_type: str) -> bool:
    """Whether a webhook endpoint may subscribe to `event_type`: a topic, or a family of them
    (`request.*`)."""
    if event_type.endswith(".*"):
        return event_type.removesuffix(".*") in FAMILIES
    return event_type in CATALOGUE


# ---------------------------------------------------------------------------------------------
# The documentation

_JSON_TYPES = {
    "int": "integer",
    "str": "string",
    "float": "number",
    "bool": "boolean",
    "Timestamp": "ISO 8601 time",
}


def _json_type(annotation: str) -> str:
    kinds = [part.strip() for part in annotation.split("|")]
    named = " or ".join(_JSON_TYPES.get(kind, kind) for kind in kinds if kind != "None")
    return f"{named} or null" if "None" in kinds else named


def markdown() -> str:
    """The catalogue as docs/webhooks.md shows it."""
    lines = [
        "| type | entity | when | `data` fields |",
        "| --- | --- | --- | --- |",
    ]
    for topic in CATALOGUE.values():
        shown = ", ".join(
            f"`{f.metadata.get('key', f.name)}` ({_json_type(str(f.type))})"
            for f in fields(topic.payload)
        )
        lines.append(f"| `{topic.name}` | `{topic.entity}` | {topic.doc} | {shown} |")
    return "\n".join(lines) + "\n"


START, END = "<!-- event types: start -->", "<!-- event types: end -->"


def write(path: str) -> bool:
    """Put `markdown()` between the markers of the file at `path`; whether it changed."""
    return write_between(path, START, END, markdown())


if __name__ == "__main__":  # python -m patone.core.common.topics docs/webhooks.md
    print("updated" if write(sys.argv[1]) else "unchanged")

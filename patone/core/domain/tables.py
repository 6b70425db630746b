"""Tables in every tenant schema. Unqualified: the tenant transaction's search_path picks them.

Money is integer minor units (cents), never floats. Rows that people may want back are archived
(`archived_at`), not deleted. Rows that change concurrently carry a `version` for optimistic
locking.
"""

from __future__ import annotations

from enum import StrEnum

from piccolo.columns import (
    JSONB,
    Array,
    BigInt,
    BigSerial,
    Boolean,
    Date,
    DoublePrecision,
    ForeignKey,
    Integer,
    OnDelete,
    SmallInt,
    Text,
    Timestamptz,
    Varchar,
)
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table

from patone.core.runtime.db import engine


class DriverStatus(StrEnum):
    off_duty = "off_duty"
    available = "available"
    busy = "busy"
    on_break = "on_break"


class Priority(StrEnum):
    low = "low"
    normal = "normal"
    high = "high"
    emergency = "emergency"


class RequestStatus(StrEnum):
    pending = "pending"
    assigned = "assigned"
    en_route = "en_route"
    on_scene = "on_scene"
    in_progress = "in_progress"
    completed = "completed"
    cancelled = "cancelled"


class RequestSource(StrEnum):
    admin = "admin"
    portal = "portal"
    api = "api"


class Setting(Table, tablename="settings", db=engine):
    """A company setting (profile, units, currency, time zone, ...) as a JSON value."""

    key = Varchar(length=100, unique=True)
    value = JSONB()
    updated_at = Timestamptz()


class Role(Table, tablename="roles", db=engine):
    """A staff role and the named permissions granted to it (editable per tenant)."""

    name = Varchar(length=40, unique=True)
    title = Varchar(length=100)
    permissions = Array(base_column=Varchar(length=60), default=list)
    updated_at = Timestamptz()


class User(Table, tablename="users", db=engine):
    """A member of the company's staff."""

    email = Varchar(length=254, unique=True)
    name = Varchar(length=200)
    role = Varchar(length=40, index=True)
    active = Boolean(default=True)
    created_at = Timestamptz()
    updated_at = Timestamptz()
    # Credentials (tenant_0010): no password until the user follows a set-up link.
    password_hash = Text(null=True, default=None)
    must_change_password = Boolean(default=False)
    password_changed_at = Timestamptz(null=True, default=None)
    failed_sign_ins = Integer(default=0)
    locked_until = Timestamptz(null=True, default=None)


class UserToken(Table, tablename="user_tokens", db=engine):
    """A single-use set-up or password-reset link; only the token's sha256 is kept."""

    user = ForeignKey(references=User, on_delete=OnDelete.cascade)
    purpose = Varchar(length=10)  # "setup" | "reset"
    token_hash = Varchar(length=64, unique=True)
    expires_at = Timestamptz()
    used_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())


class Customer(Table, tablename="customers", db=engine):
    """A motorist the company serves."""

    name = Varchar(length=200)
    phone = Varchar(length=20, null=True, default=None, index=True)
    email = Varchar(length=254, null=True, default=None)
    notes = Text(default="")
    archived_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz()
    updated_at = Timestamptz()


class CustomerSignIn(Table, tablename="customer_sign_ins", db=engine):
    """A sign-in link (email) or code (SMS) sent to a customer: hashed, short-lived, used once."""

    id = BigSerial(primary_key=True)
    customer_id = Integer()
    channel = Varchar(length=5)
    address = Varchar(length=254)
    secret_hash = Varchar(length=64, index=True)
    attempts = Integer(default=0)
    expires_at = Timestamptz()
    used_at = Timestamptz(null=True, default=None)
    voided_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz()


class Membership(Table, tablename="memberships", db=engine):
    """A customer's membership of a motor club or insurer's roadside cover."""

    customer = ForeignKey(references=Customer, on_delete=OnDelete.cascade, index=True)
    provider = Varchar(length=100)
    number = Varchar(length=100)
    valid_until = Date(null=True, default=None)
    created_at = Timestamptz()


class Vehicle(Table, tablename="vehicles", db=engine):
    """A customer's vehicle."""

    customer = ForeignKey(references=Customer, on_delete=OnDelete.restrict, index=True)
    make = Varchar(length=60, default="")
    model = Varchar(length=60, default="")
    year = SmallInt(null=True, default=None)
    colour = Varchar(length=40, default="")
    plate = Varchar(length=20, default="", index=True)
    vin = Varchar(length=17, default="")
    archived_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz()


class Driver(Table, tablename="drivers", db=engine):
    """A driver and truck: status, skills, and last known position."""

    user = ForeignKey(references=User, on_delete=OnDelete.set_null, null=True, default=None)
    name = Varchar(length=200)
    phone = Varchar(length=20, null=True, default=None)
    status = Varchar(length=20, choices=DriverStatus, default=DriverStatus.off_duty, index=True)
    skills = Array(base_column=Varchar(length=40), default=list)
    truck = Varchar(length=100, default="")
    last_lat = DoublePrecision(null=True, default=None)
    last_lng = DoublePrecision(null=True, default=None)
    last_seen_at = Timestamptz(null=True, default=None)
    rating = Integer(null=True, default=None)  # average rating x 100 (e.g. 472 = 4.72)
    archived_at = Timestamptz(null=True, default=None)
    # When they last came on duty from off duty (a break does not restart it): their hours on
    # shift today count from then (tenant_0020).
    on_duty_since = Timestamptz(null=True, default=None)
    created_at = Timestamptz()
    updated_at = Timestamptz()


class Shift(Table, tablename="shifts", db=engine):
    """A driver's planned or worked shift."""

    driver = ForeignKey(references=Driver, on_delete=OnDelete.cascade, index=True)
    starts_at = Timestamptz()
    ends_at = Timestamptz()


class ServiceType(Table, tablename="service_types", db=engine):
    """A service the company sells and its price (integer minor units)."""

    code = Varchar(length=40, unique=True)
    name = Varchar(length=100)
    base_price = Integer(default=0)
    per_distance_price = Integer(default=0)  # per km or mile, as the tenant's units say
    after_hours_surcharge = Integer(default=0)
    needs_destination = Boolean(default=False)
    required_skills = Array(base_column=Varchar(length=40), default=list)
    active = Boolean(default=True)
    updated_at = Timestamptz()


class ServiceRequest(Table, tablename="service_requests", db=engine):
    """A call for help and its journey from pending to completed or cancelled."""

    number = BigInt(unique=True)
    customer = ForeignKey(references=Customer, on_delete=OnDelete.restrict, index=True)
    vehicle = ForeignKey(references=Vehicle, on_delete=OnDelete.restrict, null=True, default=None)
    service_type = ForeignKey(references=ServiceType, on_delete=OnDelete.restrict)
    priority = Varchar(length=20, choices=Priority, default=Priority.normal)
    status = Varchar(length=20, choices=RequestStatus, default=RequestStatus.pending)
    source = Varchar(length=20, choices=RequestSource, default=RequestSource.admin)
    pickup_lat = DoublePrecision()
    pickup_lng = DoublePrecision()
    pickup_address = Varchar(length=300, default="")
    destination_lat = DoublePrecision(null=True, default=None)
    destination_lng = DoublePrecision(null=True, default=None)
    destination_address = Varchar(length=300, default="")
    notes = Text(default="")
    quoted_price = Integer(default=0)
    currency = Varchar(length=3, default="USD")
    driver = ForeignKey(
        references=Driver, on_delete=OnDelete.restrict, null=True, default=None, index=True
    )
    cancel_reason = Varchar(length=60, default="")
    version = Integer(default=1)
    created_by = Varchar(length=80, default="")  # "user:12", "partner:club-a", "system"
    # The partner's API client (its client_id) that created it: partners see only these
    # (tenant_0019).
    api_client = Varchar(length=64, null=True, default=None)
    created_at = Timestamptz(index=True)
    updated_at = Timestamptz()
    assigned_at = Timestamptz(null=True, default=None)
    en_route_at = Timestamptz(null=True, default=None)
    on_scene_at = Timestamptz(null=True, default=None)
    started_at = Timestamptz(null=True, default=None)
    completed_at = Timestamptz(null=True, default=None)
    cancelled_at = Timestamptz(null=True, default=None)


class RequestEvent(Table, tablename="request_events", db=engine):
    """One transition of a request: who, when, from, to, where, why."""

    request = ForeignKey(references=ServiceRequest, on_delete=OnDelete.cascade, index=True)
    from_status = Varchar(length=20, null=True, default=None)
    to_status = Varchar(length=20)
    actor_type = Varchar(length=20)
    actor_id = Varchar(length=64, default="")
    reason_code = Varchar(length=60, default="")
    note = Text(default="")
    lat = DoublePrecision(null=True, default=None)
    lng = DoublePrecision(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())


class ActivityLog(Table, tablename="activity_log", db=engine):
    """Every change: who did what to which record, with the record before and after."""

    actor_type = Varchar(length=20)
    actor_id = Varchar(length=64, default="")
    entity = Varchar(length=40, index=True)
    entity_id = Varchar(length=64, default="")
    action = Varchar(length=60)
    before = JSONB(null=True, default=None)
    after = JSONB(null=True, default=None)
    created_at = Timestamptz(index=True)


class Outbox(Table, tablename="outbox", db=engine):
    """Domain events committed with the change that caused them; a relay publishes them."""

    topic = Varchar(length=60)
    entity = Varchar(length=40)
    entity_id = Varchar(length=64)
    payload = JSONB()
    created_at = Timestamptz()
    published_at = Timestamptz(null=True, default=None, index=True)


class IdempotencyKey(Table, tablename="idempotency_keys", db=engine):
    """The first result of a create, so a retry with the same key returns it again; a key is
    one caller's (`kind:id`) and remembers its input's sha256 (tenant_0018)."""

    operation = Varchar(length=60)
    caller = Text(default="")
    key = Varchar(length=200)
    input_sha256 = Varchar(length=64, default="")
    entity_id = Varchar(length=64)
    created_at = Timestamptz()


class PersistedDocument(Table, tablename="persisted_documents", db=engine):
    """A GraphQL document a company registered; allow-listed clients may run only these."""

    sha256 = Varchar(length=64, unique=True)
    name = Varchar(length=200)
    document = Text()
    created_at = Timestamptz()


class PluginConfig(Table, tablename="plugin_configs", db=engine):
    """Whether a plugin is on for this company, and its settings (secrets encrypted)."""

    plugin = Varchar(length=100, unique=True)
    enabled = Boolean(default=False)
    config = JSONB(default={})
    updated_at = Timestamptz()


class UserTwoFactor(Table, tablename="user_two_factor", db=engine):
    """A staff user's TOTP secret (sealed), active once confirmed; `last_step` refuses replays."""

    user = ForeignKey(
        references=User, on_delete=OnDelete.cascade, primary_key=True, db_column_name="user_id"
    )
    secret = JSONB()
    confirmed_at = Timestamptz(null=True, default=None)
    last_step = BigInt(null=True, default=None)
    created_at = Timestamptz()
    updated_at = Timestamptz()


class UserRecoveryCode(Table, tablename="user_recovery_codes", db=engine):
    """A one-time recovery code, stored as its SHA-256; `used_at` is set when it is spent."""

    user = ForeignKey(references=User, on_delete=OnDelete.cascade, db_column_name="user_id")
    code_hash = Varchar(length=64)
    used_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz()

"""The platform registry: plans, tenants and their domains, in the `platform` schema."""

from __future__ import annotations

from enum import StrEnum

from piccolo.columns import (
    JSONB,
    UUID,
    Array,
    BigInt,
    BigSerial,
    Boolean,
    ForeignKey,
    Integer,
    OnDelete,
    OnUpdate,
    Text,
    Timestamptz,
    Varchar,
)
from piccolo.table import Table

from patone.core.runtime.db import engine

# What the platform migrations' DDL holds that the classes do not, and why.
DDL_ONLY: dict[str, str] = {
    "migration": "Piccolo's own record of the platform migrations applied",
    "multi-column indexes": "Piccolo 1.x indexes single columns only (operator_activity's)",
}


class TenantStatus(StrEnum):
    active = "active"
    suspended = "suspended"
    deleted = "deleted"
    # A company `patone simulate` made for one run: that process plays the relay, the workers
    # and the scheduler for it on simulated time, so no other process works for it.
    simulation = "simulation"


class Plan(Table, tablename="plans", schema="platform", db=engine):
    """A plan in the catalogue and the limits later features read (null means unlimited).

    Rate limits (`patone/core/identity/ratelimits.py`): API requests per minute per caller and
    for the whole company; sign-in attempts per hour per address and per account; sign-in code
    or link requests per hour per phone or email and per address."""

    name = Varchar(length=40, primary_key=True)
    title = Varchar(length=100)
    api_requests_per_minute = Integer(default=60)
    tenant_api_requests_per_minute = Integer(default=600)
    sign_ins_per_ip_per_hour = Integer(default=60)
    sign_ins_per_account_per_hour = Integer(default=20)
    code_requests_per_address_per_hour = Integer(default=5)
    code_requests_per_ip_per_hour = Integer(default=30)
    max_drivers = Integer(null=True, default=None)
    max_users = Integer(null=True, default=None)
    max_plugins = Integer(null=True, default=None)
    plugins_allowed = Array(base_column=Varchar(length=100), default=list)
    created_at = Timestamptz()


class Tenant(Table, tablename="tenants", schema="platform", db=engine):
    """A roadside company: its slug, schema, role, status, plan, branding and shard."""

    id = UUID(primary_key=True)
    slug = Varchar(length=40, unique=True)
    name = Varchar(length=200)
    schema_name = Varchar(length=63, unique=True)
    role_name = Varchar(length=63, unique=True)
    status = Varchar(length=20, choices=TenantStatus, default=TenantStatus.active, index=True)
    status_reason = Text(default="")
    plan = ForeignKey(references=Plan, on_delete=OnDelete.restrict)
    branding = JSONB(default={})
    shard = Varchar(length=63, default="default")
    applied_migrations = Array(base_column=Varchar(length=200), default=list)
    created_at = Timestamptz()
    updated_at = Timestamptz()
    deleted_at = Timestamptz(null=True, default=None)
    purge_after = Timestamptz(null=True, default=None)


class PurgedSlug(Table, tablename="purged_slugs", schema="platform", db=engine):
    """The slug of a purged tenant and the id it had: taken again only when an operator says so."""

    slug = Varchar(length=40, primary_key=True)
    tenant_id = UUID()
    purged_at = Timestamptz()


class TenantDomain(Table, tablename="tenant_domains", schema="platform", db=engine):
    """A custom domain that resolves to a tenant (e.g. help.acme-towing.com)."""

    tenant = ForeignKey(references=Tenant, on_delete=OnDelete.cascade, index=True)
    domain = Varchar(length=255, unique=True)
    is_primary = Boolean(default=False)
    created_at = Timestamptz()


class SigningKey(Table, tablename="signing_keys", schema="platform", db=engine):
    """A key pair that signs access tokens (`core/identity/signing_keys.py`); private half
    sealed."""

    kid = Varchar(length=64, primary_key=True)
    algorithm = Varchar(length=10)
    public_jwk = JSONB()
    private_jwk = JSONB()
    created_at = Timestamptz()
    active_from = Timestamptz()
    verify_until = Timestamptz(null=True, default=None)


class OAuthClientIndex(Table, tablename="oauth_clients", schema="platform", db=engine):
    """Which tenant a partner's OAuth client_id belongs to, for the token endpoint."""

    client_id = Varchar(length=64, primary_key=True)
    tenant = ForeignKey(
        references=Tenant,
        null=False,
        on_delete=OnDelete.cascade,
        on_update=OnUpdate.no_action,
        index=True,
    )
    created_at = Timestamptz()


class Operator(Table, tablename="operators", schema="platform", db=engine):
    """A platform operator: signs in with a password and a TOTP code (always on)."""

    email = Varchar(length=254, unique=True)
    name = Varchar(length=200)
    password_hash = Text()
    totp_secret = JSONB()  # sealed (patone.core.identity.two_factor.secret_box)
    last_step = BigInt(null=True, default=None)  # the last accepted TOTP step: no replays
    recovery_codes = Array(base_column=Varchar(length=64), default=list)  # SHA-256 hashes
    active = Boolean(default=True)
    created_at = Timestamptz()
    updated_at = Timestamptz()


class OperatorActivity(Table, tablename="operator_activity", schema="platform", db=engine):
    """What operators did (tenants created, suspended ...) and every sign-in and failure."""

    id = BigSerial(primary_key=True)
    operator_id = ForeignKey(
        references=Operator, on_delete=OnDelete.set_null, on_update=OnUpdate.no_action
    )
    email = Varchar(length=254, default="")
    action = Varchar(length=60)
    entity = Varchar(length=40, default="")
    entity_id = Varchar(length=64, default="")
    detail = JSONB(null=True, default=None)
    ip = Varchar(length=64, default="")
    created_at = Timestamptz()

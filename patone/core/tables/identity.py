"""Staff and their credentials, customers' sign-ins, partners' API clients."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

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
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.constraints import Check, Unique
from piccolo.table import Table

from patone.core.runtime.db import engine
from patone.core.tables.customers import Customer
from patone.core.tables.records import Record


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
    # No password until the user follows a set-up link.
    password_hash = Text(null=True, default=None)
    must_change_password = Boolean(default=False)
    password_changed_at = Timestamptz(null=True, default=None)
    failed_sign_ins = Integer(default=0)
    locked_until = Timestamptz(null=True, default=None)


class UserToken(Table, tablename="user_tokens", db=engine):
    """A single-use set-up or password-reset link; only the token's sha256 is kept."""

    id = BigSerial(primary_key=True)
    user = ForeignKey(
        references=User, null=False, on_delete=OnDelete.cascade, on_update=OnUpdate.no_action
    )
    purpose = Varchar(length=10)
    token_hash = Varchar(length=64, unique=True)
    expires_at = Timestamptz()
    used_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())

    user_tokens_purpose_check = Check("purpose IN ('setup', 'reset')")


class UserTwoFactor(Table, tablename="user_two_factor", db=engine):
    """A staff user's TOTP secret (sealed), active once confirmed; `last_step` refuses replays."""

    user_id = ForeignKey(
        references=User,
        primary_key=True,
        on_delete=OnDelete.cascade,
        on_update=OnUpdate.no_action,
    )
    secret = JSONB()
    confirmed_at = Timestamptz(null=True, default=None)
    last_step = BigInt(null=True, default=None)
    created_at = Timestamptz()
    updated_at = Timestamptz()


class UserRecoveryCode(Table, tablename="user_recovery_codes", db=engine):
    """A one-time recovery code, stored as its SHA-256; `used_at` is set when it is spent."""

    user_id = ForeignKey(
        references=User, null=False, on_delete=OnDelete.cascade, on_update=OnUpdate.no_action
    )
    code_hash = Varchar(length=64)
    used_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz()

    user_recovery_codes_user_id_code_hash_key = Unique(["user_id", "code_hash"])


class CustomerSignIn(Table, tablename="customer_sign_ins", db=engine):
    """A sign-in link (email) or code (SMS) sent to a customer: hashed, short-lived, used once."""

    id = BigSerial(primary_key=True)
    customer_id = ForeignKey(
        references=Customer,
        null=False,
        on_delete=OnDelete.cascade,
        on_update=OnUpdate.no_action,
    )
    channel = Varchar(length=5)
    address = Varchar(length=254)
    secret_hash = Varchar(length=64, index=True)
    attempts = Integer(default=0)
    expires_at = Timestamptz()
    used_at = Timestamptz(null=True, default=None)
    voided_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz()

    customer_sign_ins_channel_check = Check("channel IN ('email', 'sms')")


class RefreshToken(Table, tablename="refresh_tokens", db=engine):
    """A refresh token (its sha256 only). Tokens of one sign-in share a `family`; each use
    issues a child (`parent`), and a token used twice revokes its whole family."""

    id = BigSerial(primary_key=True)
    family = UUID(index=True)
    subject_kind = Varchar(length=20)
    subject = Varchar(length=64)
    token_hash = Varchar(length=64, unique=True)
    parent: ForeignKey[RefreshToken] = ForeignKey(
        references="self", on_delete=OnDelete.cascade, on_update=OnUpdate.no_action
    )
    access_token_id = Varchar(length=64)
    access_expires_at = Timestamptz()
    created_at = Timestamptz()
    used_at = Timestamptz(null=True, default=None)
    revoked_at = Timestamptz(null=True, default=None)
    expires_at = Timestamptz()


class ApiClient(Table, tablename="api_clients", db=engine):
    """A partner's OAuth2 client: its `client_id` (what requests it created refer to), the
    sha256 of its secret, and the scopes it may be granted."""

    client_id = Varchar(length=64, unique=True)
    name = Varchar(length=200)
    secret_hash = Varchar(length=64)
    scopes = Array(base_column=Varchar(length=40), default=list)
    allow_list_only = Boolean(default=False)
    created_at = Timestamptz()
    last_used_at = Timestamptz(null=True, default=None)
    revoked_at = Timestamptz(null=True, default=None)


@dataclass(frozen=True, slots=True)
class RoleRow(Record):
    """A role as `users.list_roles` and `users.set_role_permissions` return it."""

    table: ClassVar[type[Table]] = Role
    name: str
    title: str
    permissions: list[str]


@dataclass(frozen=True, slots=True)
class UserRow(Record):
    """A staff member as `users` returns them: no credentials."""

    table: ClassVar[type[Table]] = User
    id: int
    email: str
    name: str
    role: str
    active: bool
    must_change_password: bool
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class ApiClientRow(Record):
    """A partner's API client as `api_clients` returns it: never its secret's hash."""

    table: ClassVar[type[Table]] = ApiClient
    id: int
    client_id: str
    name: str
    scopes: list[str]
    allow_list_only: bool
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

"""Global ids: opaque, carry the type, never the tenant ("ServiceRequest:42", base64)."""

from __future__ import annotations

import base64
import binascii

from patone.core.runtime.errors import NotFound, UserError


def to_global_id(type_name: str, pk: object) -> str:
    return base64.urlsafe_b64encode(f"{type_name}:{pk}".encode()).decode().rstrip("=")


# Keys are Postgres `serial` (32-bit) but for these types' tables, which are `bigserial`. A number
# beyond its column's range is no id: refused here, where every id is read, rather than by the
# database driver as an unexpected error.
_BIGINT_KEYS = frozenset({"Notification", "Offer", "WebhookDelivery"})
_INT_MAX = 2**31 - 1
_BIGINT_MAX = 2**63 - 1


def from_global_id(global_id: str) -> tuple[str, int]:
    """(type name, primary key) of a global id, or a UserError saying it is malformed or its
    number is out of range."""
    try:
        padded = global_id + "=" * (-len(global_id) % 4)
        type_name, _, number = base64.urlsafe_b64decode(padded.encode()).decode().partition(":")
        pk = int(number)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise UserError("invalid_id", f"{global_id!r} is not an id", "id") from None
    if not 1 <= pk <= (_BIGINT_MAX if type_name in _BIGINT_KEYS else _INT_MAX):
        raise UserError("invalid_id", f"{global_id!r} is not an id (out of range)", "id")
    return type_name, pk


def pk_of(global_id: str, type_name: str, field: str = "id") -> int:
    """The primary key of a global id that must name a `type_name`."""
    try:
        found, pk = from_global_id(global_id)
    except UserError:
        raise UserError("invalid_id", f"{global_id!r} is not an id", field) from None
    if found != type_name:
        raise NotFound("not_found", f"no {type_name} has the id {global_id!r}", field)
    return pk

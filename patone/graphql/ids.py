"""Global ids: opaque, carry the type, never the tenant ("ServiceRequest:42", base64)."""

from __future__ import annotations

import base64
import binascii

from patone.core.errors import NotFound, UserError


def to_global_id(type_name: str, pk: object) -> str:
    return base64.urlsafe_b64encode(f"{type_name}:{pk}".encode()).decode().rstrip("=")


def from_global_id(global_id: str) -> tuple[str, int]:
    """(type name, primary key) of a global id, or a UserError saying it is malformed."""
    try:
        padded = global_id + "=" * (-len(global_id) % 4)
        type_name, _, pk = base64.urlsafe_b64decode(padded.encode()).decode().partition(":")
        return type_name, int(pk)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise UserError("invalid_id", f"{global_id!r} is not an id", "id") from None


def pk_of(global_id: str, type_name: str, field: str = "id") -> int:
    """The primary key of a global id that must name a `type_name`."""
    try:
        found, pk = from_global_id(global_id)
    except UserError:
        raise UserError("invalid_id", f"{global_id!r} is not an id", field) from None
    if found != type_name:
        raise NotFound("not_found", f"no {type_name} has the id {global_id!r}", field)
    return pk

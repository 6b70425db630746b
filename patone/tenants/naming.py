"""Slug rules and the Postgres names derived from a slug.

A slug is a DNS label (it becomes `<slug>.BASE_DOMAIN`) and the stem of a schema and a role
name, so it is kept to lower-case letters, digits and single hyphens. Hyphens become
underscores in Postgres names; slugs never contain underscores, so the mapping is one to one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SLUG_MIN = 2
SLUG_MAX = 40  # "t_" + slug + "_role" stays well under Postgres' 63-byte identifier limit

RESERVED_SLUGS = frozenset(
    {
        "admin", "api", "app", "assets", "auth", "cdn", "docs", "ext", "graphql", "help",
        "information-schema", "internal", "login", "mail", "oauth", "pg", "platform", "portal",
        "public", "root", "smtp", "static", "status", "support", "system", "template", "www",
    }
)  # fmt: skip
RESERVED_PREFIXES = ("pg-", "xn--")

_SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


@dataclass(frozen=True)
class SlugError(ValueError):
    """A slug that cannot name a tenant; `code` is stable, `message` is for people."""

    code: str
    message: str
    field: str = "slug"

    def __str__(self) -> str:
        return self.message


def validate_slug(slug: str) -> str:
    """Return the slug if it may name a new tenant, else raise `SlugError` saying why."""
    if not isinstance(slug, str) or not slug:
        raise SlugError("required", "slug is required")
    if len(slug) < SLUG_MIN or len(slug) > SLUG_MAX:
        raise SlugError(
            "too_short" if len(slug) < SLUG_MIN else "too_long",
            f"slug must be {SLUG_MIN} to {SLUG_MAX} characters long (got {len(slug)})",
        )
    if slug != slug.lower():
        raise SlugError("invalid", f"slug {slug!r} must be lower-case")
    if not _SLUG.fullmatch(slug):
        raise SlugError(
            "invalid",
            f"slug {slug!r} may contain only lower-case letters, digits and single hyphens, "
            "and must start and end with a letter or digit",
        )
    if not slug[0].isalpha():
        raise SlugError("invalid", f"slug {slug!r} must start with a letter")
    if slug in RESERVED_SLUGS or slug.startswith(RESERVED_PREFIXES):
        raise SlugError("reserved", f"slug {slug!r} is reserved")
    return slug


def schema_for(slug: str) -> str:
    return "t_" + slug.replace("-", "_")


def role_for(slug: str) -> str:
    return schema_for(slug) + "_role"


def quote_ident(name: str) -> str:
    """Quote a Postgres identifier (names here come from validated slugs; quote anyway)."""
    return '"' + name.replace('"', '""') + '"'

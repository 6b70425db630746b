"""Rules every file-storage plugin follows: which keys are allowed and how tenants are kept apart.

A key is the tenant's own name for a file (`requests/1042/photo-1.jpg`). Storage plugins put it
under the tenant's slug (`<slug>/<key>`), so two companies sharing a bucket or a disk can never
read or overwrite each other's files, and refuse keys that could climb out of that folder.
"""

from __future__ import annotations

import re

MAX_KEY_BYTES = 900  # S3 allows 1,024 bytes for the whole key; leave room for prefix and slug
MAX_URL_SECONDS = 7 * 24 * 3600  # the longest an S3 presigned URL (SigV4) can live

_SLUG = re.compile(r"[a-z0-9]+(?:[-_][a-z0-9]+)*")


class InvalidFileKey(ValueError):
    """A key that could escape the tenant's folder or that a storage cannot hold."""


def check_key(key: str) -> str:
    """Return `key` if it is a safe relative name, else raise `InvalidFileKey` saying why."""
    if not isinstance(key, str) or not key:
        raise InvalidFileKey("a file key must not be empty")
    if len(key.encode()) > MAX_KEY_BYTES:
        raise InvalidFileKey(f"a file key must be at most {MAX_KEY_BYTES} bytes")
    if any(ord(c) < 32 or ord(c) == 127 for c in key):
        raise InvalidFileKey("a file key must not contain control characters")
    if "\\" in key:
        raise InvalidFileKey("a file key separates folders with '/', not '\\'")
    if key.startswith("/"):
        raise InvalidFileKey("a file key must be relative (no leading '/')")
    for part in key.split("/"):
        if part in ("", ".", ".."):
            raise InvalidFileKey(
                "a file key must not contain '..', '.' or empty folder names ('//', trailing '/')"
            )
    return key


def check_expires_in(expires_in: int) -> int:
    """Return `expires_in` if it is a usable URL lifetime in seconds, else raise ValueError."""
    if not isinstance(expires_in, int) or not 1 <= expires_in <= MAX_URL_SECONDS:
        raise ValueError(f"expires_in must be 1 to {MAX_URL_SECONDS} seconds")
    return expires_in


def tenant_folder(slug: str, prefix: str = "") -> str:
    """The folder of a tenant's files in a shared store: `<prefix>/<slug>/`."""
    if not _SLUG.fullmatch(slug):
        raise InvalidFileKey(f"{slug!r} is not a tenant slug")
    return "/".join(part for part in (prefix, slug) if part) + "/"


def tenant_key(slug: str, key: str, prefix: str = "") -> str:
    """Where a tenant's file lives in a shared store: `<prefix>/<slug>/<key>`."""
    return tenant_folder(slug, prefix) + check_key(key)

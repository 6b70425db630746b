"""Automatic persisted queries (Apollo's protocol, sha256).

A client first sends only `extensions.persistedQuery.sha256Hash`; if the server knows the hash
it runs the stored document, otherwise it answers `PersistedQueryNotFound` and the client sends
the document with its hash once, which is checked and stored. Each company keeps its own, in
Redis under its key prefix (`t:<slug>:apq:<hash>`, so a purge removes them) for `TTL` seconds:
a document's text can say whom a company looked for, and another company must not be able to
confirm it by its hash.
"""

from __future__ import annotations

import hashlib
from typing import Any

from patone.core.domain.documents import registered_document, sha256_of
from patone.core.runtime.errors import UserError
from patone.core.runtime.redis import get_redis, tenant_key
from patone.tenants.isolation import TenantRef

TTL = 30 * 24 * 3600


def _key(tenant: TenantRef, digest: str) -> str:
    return tenant_key(tenant.slug, "apq", digest)


class PersistedQueryError(UserError):
    """A persisted query refused; `code` is one of `persisted_query_*`."""


async def allow_listed(tenant: TenantRef, body: dict[str, Any]) -> dict[str, Any]:
    """For an allow-listed client: the body with the registered document, or a refusal."""
    persisted = (body.get("extensions") or {}).get("persistedQuery")
    query = body.get("query")
    if isinstance(persisted, dict) and persisted.get("sha256Hash"):
        digest = str(persisted["sha256Hash"]).lower()
    elif query:
        digest = sha256_of(str(query))
    else:
        raise PersistedQueryError("persisted_query_required", "Send a registered document's hash")
    document = await registered_document(tenant, digest)
    if document is None or (query and sha256_of(str(query)) != digest):
        raise PersistedQueryError(
            "persisted_query_not_allowed", "This client may run only registered documents"
        )
    return {**body, "query": document}


async def resolve(tenant: TenantRef, body: dict[str, Any]) -> dict[str, Any]:
    """The request body with its `query` filled in or registered; raises PersistedQueryError."""
    persisted = (body.get("extensions") or {}).get("persistedQuery")
    if not isinstance(persisted, dict):
        return body
    if persisted.get("version") != 1:
        raise PersistedQueryError("persisted_query_not_supported", "PersistedQueryNotSupported")
    digest = str(persisted.get("sha256Hash", "")).lower()
    if len(digest) != 64:
        raise PersistedQueryError("persisted_query_invalid", "sha256Hash must be 64 hex digits")
    query = body.get("query")
    redis = get_redis()
    if not query:
        stored = await redis.get(_key(tenant, digest))
        if stored is None:
            raise PersistedQueryError("persisted_query_not_found", "PersistedQueryNotFound")
        return {**body, "query": stored}
    if hashlib.sha256(str(query).encode()).hexdigest() != digest:
        raise PersistedQueryError(
            "persisted_query_hash_mismatch", "provided sha does not match query"
        )
    await redis.set(_key(tenant, digest), str(query), ex=TTL)
    return body

"""Registered GraphQL documents: the allow-list a partner client can be switched to.

A company registers the exact documents a client may run; a client in allow-list mode can run
only those (by their sha256, or by sending the same text), so a leaked token cannot be used to
explore or scrape the API.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

from graphql import GraphQLSyntaxError, parse
from pydantic import Field, StringConstraints

from patone.core.common.activity import record
from patone.core.common.inputs import Input
from patone.core.common.inputs import parse as parse_input
from patone.core.common.permissions import Actor, require
from patone.core.common.rows import fetch_records, insert_row, record_by_id
from patone.core.runtime.clock import now
from patone.core.runtime.db import engine
from patone.core.runtime.errors import UserError
from patone.core.tables.company import DocumentRow
from patone.tenants.isolation import TenantRef, tenant_transaction


class DocumentInput(Input):
    name: str = Field(min_length=1, max_length=200)
    # Kept exactly as given, final newline and all: its sha256 is what a client computes from
    # the same file, and the text it sends must match it.
    document: Annotated[
        str, StringConstraints(strip_whitespace=False, min_length=1, max_length=100_000)
    ]


def sha256_of(document: str) -> str:
    return hashlib.sha256(document.encode()).hexdigest()


async def register_document(tenant: TenantRef, actor: Actor, data: Any) -> DocumentRow:
    """Add a document to the company's allow-list (registering the same text again is a no-op)."""
    require(actor, "settings.manage")
    given = parse_input(DocumentInput, data)
    try:
        parse(given.document)
    except GraphQLSyntaxError as error:
        raise UserError("invalid", f"not a GraphQL document: {error.message}", "document") from None
    digest = sha256_of(given.document)
    async with tenant_transaction(tenant):
        existing = await fetch_records(
            DocumentRow,
            f"SELECT {DocumentRow.columns()} FROM persisted_documents WHERE sha256 = $1",
            digest,
        )
        if existing:
            return existing[0]
        document_id = await insert_row(
            "persisted_documents",
            {"sha256": digest, "name": given.name, "document": given.document, "created_at": now()},
        )
        created = await record_by_id(DocumentRow, document_id, what="document", field="id")
        await record(actor, "persisted_document", document_id, "document.registered", None, created)
    return created


async def list_documents(tenant: TenantRef, actor: Actor) -> list[DocumentRow]:
    require(actor, "settings.manage")
    async with tenant_transaction(tenant):
        return await fetch_records(
            DocumentRow, f"SELECT {DocumentRow.columns()} FROM persisted_documents ORDER BY id"
        )


async def registered_document(tenant: TenantRef, digest: str) -> str | None:
    """The registered document with this sha256, if the company has one."""
    async with tenant_transaction(tenant):
        rows = await engine.fetch(
            "SELECT document FROM persisted_documents WHERE sha256 = $1", digest.lower()
        )
    return str(rows[0]["document"]) if rows else None

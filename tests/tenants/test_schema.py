"""The platform schema is its classes: every table and column of `platform` matches the class
in `patone.tenants.tables` (name, type, nullability, default, foreign keys), either way, the
tables' `DDL_ONLY` aside; and every class is registered with the platform app."""

from __future__ import annotations

import re
import uuid

import asyncpg
from piccolo.table import Table, sort_table_classes

from patone.tenants import tables
from patone.tenants.naming import quote_ident
from patone.tenants.piccolo_app import APP_CONFIG
from tests.conftest import DATABASE_URL
from tests.core.tables.test_schema import Description, describe, drift


def _classes() -> list[type[Table]]:
    return [
        value
        for value in vars(tables).values()
        if isinstance(value, type)
        and issubclass(value, Table)
        and value is not Table
        and value.__module__ == tables.__name__
    ]


async def platform_classes_described(connection: asyncpg.Connection) -> Description:
    """What the platform classes say: Piccolo's DDL for them with its `"platform"` qualifier
    rewritten to a scratch schema's, run there and read back, then rolled back."""
    scratch = f"scratch_{uuid.uuid4().hex[:12]}"
    qualifier = re.compile(r'"platform"(?=\.|\s*$)')
    transaction = connection.transaction()
    await transaction.start()
    try:
        await connection.execute(f"CREATE SCHEMA {quote_ident(scratch)}")
        for table in sort_table_classes(_classes()):
            for statement in table.create_table().ddl:
                if statement.startswith("CREATE SCHEMA"):
                    continue
                await connection.execute(qualifier.sub(quote_ident(scratch), statement))
        return await describe(connection, scratch)
    finally:
        await transaction.rollback()


def test_every_platform_class_is_registered() -> None:
    assert set(APP_CONFIG.table_classes) == set(_classes())


async def test_every_platform_table_and_column_is_its_class() -> None:
    connection = await asyncpg.connect(DATABASE_URL)
    try:
        stated = await platform_classes_described(connection)
        assert set(stated) == {t._meta.tablename for t in _classes()}
        found = await describe(connection, "platform")
        problems = drift(stated, found, tables.DDL_ONLY)
        assert problems == [], "\n".join(problems)
        # A column the class states and the table lacks is drift, and so is one the other way.
        del found["plans"]["max_users"]
        found["tenants"]["nickname"] = {"type": "text", "nullable": True, "default": None}
        assert drift(stated, found, tables.DDL_ONLY) == [
            "plans.max_users: only in the class",
            "tenants.nickname: only in the table",
        ]
    finally:
        await connection.close()

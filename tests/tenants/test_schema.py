"""The platform schema is its classes: every table and column of `platform` matches the class
in `patone.tenants.tables` (name, type, nullability, default, foreign keys), either way, the
tables' `DDL_ONLY` aside; and every class is registered with the platform app."""

from __future__ import annotations

import re

import asyncpg
from piccolo.table import Table

from patone.tenants import tables
from patone.tenants.naming import quote_ident
from patone.tenants.piccolo_app import APP_CONFIG
from tests.conftest import DATABASE_URL
from tests.core.tables.test_schema import classes_described, describe, drift


def _classes() -> list[type[Table]]:
    return [
        value
        for value in vars(tables).values()
        if isinstance(value, type)
        and issubclass(value, Table)
        and value is not Table
        and value.__module__ == tables.__name__
    ]


def _in_scratch(statement: str, scratch: str) -> str | None:
    """Piccolo's DDL for a platform class, its `"platform"` qualifier made the scratch
    schema's (which exists already)."""
    if statement.startswith("CREATE SCHEMA"):
        return None
    return re.sub(r'"platform"(?=\.|\s*$)', quote_ident(scratch), statement)


def test_every_platform_class_is_registered() -> None:
    assert set(APP_CONFIG.table_classes) == set(_classes())


async def test_every_platform_table_and_column_is_its_class() -> None:
    connection = await asyncpg.connect(DATABASE_URL)
    try:
        stated = await classes_described(connection, _classes(), _in_scratch)
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

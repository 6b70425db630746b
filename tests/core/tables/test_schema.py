"""The table classes are the schema: every table and column of a freshly provisioned company
matches its Piccolo class (name, type, nullability, default where the database has one, foreign
keys; each table's check and unique constraints), either way, `DDL_ONLY` aside; and every typed
row reads columns its table has."""

from __future__ import annotations

import dataclasses
import re
import types
import typing
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import asyncpg
from piccolo.table import Table, sort_table_classes

from patone.core import tables
from patone.core.tables.records import Record
from patone.tenants.naming import quote_ident
from patone.tenants.registry import TenantInfo
from tests.conftest import DATABASE_URL

Description = dict[str, dict[str, Any]]  # table -> column -> what the catalog says

COLUMNS = """
    SELECT c.table_name, c.column_name, c.is_nullable = 'YES' AS nullable, c.column_default,
           format_type(a.atttypid, a.atttypmod) AS type
    FROM information_schema.columns c
    JOIN pg_namespace n ON n.nspname = c.table_schema
    JOIN pg_class r ON r.relnamespace = n.oid AND r.relname = c.table_name
    JOIN pg_attribute a ON a.attrelid = r.oid AND a.attname = c.column_name
    WHERE c.table_schema = $1 AND NOT r.relispartition AND r.relkind IN ('r', 'p')
"""
FOREIGN_KEYS = """
    SELECT r.relname AS table_name, a.attname AS column_name, fr.relname AS references,
           fa.attname AS target,
           CASE c.confupdtype WHEN 'a' THEN 'no action' WHEN 'r' THEN 'restrict'
                WHEN 'c' THEN 'cascade' WHEN 'n' THEN 'set null' ELSE 'set default' END
               AS update_rule,
           CASE c.confdeltype WHEN 'a' THEN 'no action' WHEN 'r' THEN 'restrict'
                WHEN 'c' THEN 'cascade' WHEN 'n' THEN 'set null' ELSE 'set default' END
               AS delete_rule
    FROM pg_constraint c
    JOIN pg_class r ON r.oid = c.conrelid
    JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
    JOIN pg_class fr ON fr.oid = c.confrelid
    JOIN pg_attribute fa ON fa.attrelid = c.confrelid AND fa.attnum = c.confkey[1]
    WHERE c.contype = 'f' AND NOT r.relispartition
      AND c.connamespace = (SELECT oid FROM pg_namespace WHERE nspname = $1)
"""
CONSTRAINTS = """
    SELECT r.relname AS table_name, pg_get_constraintdef(c.oid) AS definition
    FROM pg_constraint c
    JOIN pg_class r ON r.oid = c.conrelid
    WHERE c.connamespace = (SELECT oid FROM pg_namespace WHERE nspname = $1)
      AND c.contype IN ('c', 'u') AND NOT r.relispartition
    UNION ALL
    -- A unique index on plain columns says what a unique constraint says.
    SELECT r.relname, 'UNIQUE (' || string_agg(a.attname, ', ' ORDER BY k.n) || ')'
    FROM pg_index i
    JOIN pg_class r ON r.oid = i.indrelid
    CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k (attnum, n)
    JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum = k.attnum
    WHERE r.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = $1)
      AND i.indisunique AND NOT i.indisprimary AND i.indpred IS NULL AND i.indexprs IS NULL
      AND NOT r.relispartition
      AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
    GROUP BY r.relname, i.indexrelid
"""


def _default(text: str | None) -> str | None:
    """A default as the catalog writes it, with what differs only in spelling made equal."""
    if text is None or text == "NULL::" or text.upper() == "NULL":
        return None
    text = re.sub(r"nextval\('(?:[^'.]+\.)?([^']+)'::regclass\)", r"nextval('\1')", text)
    return {"CURRENT_TIMESTAMP": "now()", "true": "true", "false": "false"}.get(text, text)


async def describe(connection: asyncpg.Connection, schema: str) -> Description:
    await connection.execute(f"SET search_path TO {quote_ident(schema)}")
    found: Description = {}
    for row in await connection.fetch(COLUMNS, schema):
        found.setdefault(row["table_name"], {})[row["column_name"]] = {
            "type": row["type"],
            "nullable": row["nullable"],
            "default": _default(row["column_default"]),
        }
    for row in await connection.fetch(FOREIGN_KEYS, schema):
        found[row["table_name"]][row["column_name"]]["references"] = (
            f"{row['references']}.{row['target']} on update {row['update_rule']}"
            f" on delete {row['delete_rule']}".lower()
        )
    for row in await connection.fetch(CONSTRAINTS, schema):
        # Compared by what they say, not by name: a key of its own beside the columns.
        found[row["table_name"]][f"[{row['definition']}]"] = {}
    return found


async def classes_described(
    connection: asyncpg.Connection,
    classes: list[type[Table]] | None = None,
    rewrite: Callable[[str, str], str | None] = lambda statement, _scratch: statement,
) -> Description:
    """What the classes (by default the tenant tables') say: Piccolo's own DDL for them, each
    statement passed through `rewrite(statement, scratch)` (None skips it), run in a scratch
    schema and read back (so Postgres spells both sides the same way), then rolled back."""
    scratch = f"scratch_{uuid.uuid4().hex[:12]}"
    transaction = connection.transaction()
    await transaction.start()
    try:
        await connection.execute(f"CREATE SCHEMA {quote_ident(scratch)}")
        await connection.execute(f"SET LOCAL search_path TO {quote_ident(scratch)}")
        for table in sort_table_classes(tables.table_classes() if classes is None else classes):
            for statement in table.create_table().ddl:
                written = rewrite(statement, scratch)
                if written is not None:
                    await connection.execute(written)
        return await describe(connection, scratch)
    finally:
        await transaction.rollback()


def drift(
    stated: Description, found: Description, ddl_only: Mapping[str, str] | None = None
) -> list[str]:
    """Every difference between the classes and a schema, `ddl_only` (by default the tenant
    schema's `DDL_ONLY`) aside."""
    ddl_only = tables.DDL_ONLY if ddl_only is None else ddl_only
    problems: list[str] = []
    for table in sorted(set(stated) | set(found)):
        if table in ddl_only:
            continue
        if table not in found:
            problems.append(f"{table}: a class, but no such table")
            continue
        if table not in stated:
            problems.append(f"{table}: a table with no class")
            continue
        for column in sorted(set(stated[table]) | set(found[table])):
            if f"{table}.{column}" in ddl_only:
                continue
            says, has = stated[table].get(column), found[table].get(column)
            if says is None or has is None:
                where = "the class" if has is None else "the table"
                problems.append(f"{table}.{column}: only in {where}")
                continue
            for key in ("type", "nullable", "references"):
                if says.get(key) != has.get(key):
                    problems.append(
                        f"{table}.{column}: {key} {says.get(key)!r} in the class, "
                        f"{has.get(key)!r} in the table"
                    )
            if has.get("default") is not None and says.get("default") != has["default"]:
                problems.append(
                    f"{table}.{column}: default {says.get('default')!r} in the class, "
                    f"{has['default']!r} in the table"
                )
    return problems


async def test_every_table_and_column_is_its_class(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    connection = await asyncpg.connect(DATABASE_URL)
    try:
        stated = await classes_described(connection)
        for company in two_tenants:
            found = await describe(connection, company.schema_name)
            assert drift(stated, found) == [], "\n".join(drift(stated, found))
        # A column added by DDL alone is drift, as is one the class has and the table lacks.
        acme, bolt = two_tenants
        await connection.execute(
            f"ALTER TABLE {quote_ident(acme.schema_name)}.drivers ADD COLUMN nickname text"
        )
        await connection.execute(
            f"ALTER TABLE {quote_ident(bolt.schema_name)}.drivers DROP COLUMN truck"
        )
        assert drift(stated, await describe(connection, acme.schema_name)) == [
            "drivers.nickname: only in the table"
        ]
        assert drift(stated, await describe(connection, bolt.schema_name)) == [
            "drivers.truck: only in the class"
        ]
    finally:
        await connection.close()


def _records() -> list[type[Record]]:
    for module in tables.modules():
        assert module  # importing them declares their records
    found, todo = [], list(Record.__subclasses__())
    while todo:
        kind = todo.pop()
        found.append(kind)
        todo += kind.__subclasses__()
    return found


def _allows_none(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in (
        typing.get_args(hint)
    )


def test_every_typed_row_reads_columns_of_its_table() -> None:
    problems = []
    for kind in _records():
        table: type[Table] = kind.table
        columns = {c._meta.db_column_name: c for c in table._meta.columns}
        hints = typing.get_type_hints(kind)
        for field in dataclasses.fields(kind):  # type: ignore[arg-type]
            if field.metadata.get("sql"):
                continue
            column = columns.get(field.name)
            if column is None:
                problems.append(f"{kind.__name__}.{field.name}: no such column of {table}")
            elif _allows_none(hints[field.name]) != column._meta.null:
                problems.append(
                    f"{kind.__name__}.{field.name}: None allowed is not the column's "
                    f"nullability ({column._meta.null})"
                )
    assert problems == []

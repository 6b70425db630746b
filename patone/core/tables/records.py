"""Typed rows: a frozen dataclass per kind of row a service returns, its SQL column list
derived from its fields.

    @dataclass(frozen=True, slots=True)
    class CustomerRow(Record):
        table: ClassVar[type[Table]] = Customer
        id: int
        name: str
        phone: str | None

    CustomerRow.columns()        # '"id", "name", "phone"'
    CustomerRow.of(record)       # from an asyncpg Record or a mapping with those keys

A field that is not a column of `table` (a count, a join) says how it is computed:
`vehicles: int = field(metadata={"sql": "(SELECT count(*) FROM vehicles v WHERE ...)"})`;
`columns()` writes it as `(<sql>) AS vehicles`. The schema test checks every other field
against its table's class: the name is a column, and `None` is allowed exactly when the column
is nullable.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar, Self

from piccolo.table import Table

from patone.tenants.naming import quote_ident


class Record:
    """Base of typed rows (subclasses are frozen dataclasses)."""

    table: ClassVar[type[Table]]

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return _names(cls)

    @classmethod
    def columns(cls, alias: str = "") -> str:
        """The SELECT list for this row, columns qualified by `alias` when given."""
        return _columns(cls, alias)

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> Self:
        return cls(**{name: row[name] for name in _names(cls)})

    def replace(self, **changes: Any) -> Self:
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]

    def as_dict(self) -> dict[str, Any]:
        """The row as plain data (for JSON: activity records, events, webhooks)."""
        return {name: getattr(self, name) for name in _names(type(self))}


_NAMES: dict[type, tuple[str, ...]] = {}
_COLUMNS: dict[tuple[type, str], str] = {}


def _names(cls: type[Record]) -> tuple[str, ...]:
    if cls not in _NAMES:
        _NAMES[cls] = tuple(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]
    return _NAMES[cls]


def _columns(cls: type[Record], alias: str) -> str:
    if (cls, alias) not in _COLUMNS:
        _COLUMNS[cls, alias] = _column_list(cls, alias)
    return _COLUMNS[cls, alias]


def _column_list(cls: type[Record], alias: str) -> str:
    prefix = f"{quote_ident(alias)}." if alias else ""
    parts = []
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        sql = f.metadata.get("sql")
        name = quote_ident(f.name)
        parts.append(f"({sql}) AS {name}" if sql else f"{prefix}{name}")
    return ", ".join(parts)


def computed(sql: str, **kwargs: Any) -> Any:
    """A field computed by `sql` rather than read from a column."""
    return dataclasses.field(metadata={"sql": sql}, **kwargs)

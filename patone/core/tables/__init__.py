"""The tables in every tenant schema, each described once as a Piccolo `Table` class.

Unqualified: the tenant transaction's search_path picks them. Money is integer minor units
(cents), never floats. Rows that people may want back are archived (`archived_at`), not deleted.
Rows that change concurrently carry a `version` for optimistic locking.

A module per concern (`identity`, `customers`, `fleet`, `requests`, `dispatch`,
`notifications`, `webhooks`, `company`) holds its tables and, beside each, the typed row
(`patone.core.tables.records.Record`) its owner's queries return. The migrations in
`patone/core/domain/piccolo_migrations/` create them; `tests/core/tables/test_schema.py` checks
every class against a freshly provisioned schema, so the two cannot drift apart.

What Piccolo cannot state stays in the migrations' DDL only, listed in `DDL_ONLY`.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from piccolo.table import Table

MODULES = (
    "identity",
    "customers",
    "fleet",
    "requests",
    "dispatch",
    "notifications",
    "webhooks",
    "company",
)

# What the migrations' DDL holds that the classes do not, and why.
DDL_ONLY: dict[str, str] = {
    "migration": "Piccolo's own record of the migrations applied to the schema",
    "customers.search": "a generated tsvector column: Piccolo 1.x has no generated columns",
    "partial, expression and multi-column indexes": "Piccolo 1.x indexes one whole column; "
    "unique ones are stated as `Unique` constraints and checked, the others are not compared",
    "driver_positions partitions": "the table is partitioned by range of recorded_at, one "
    "partition a day made by dispatch/positions.py; Piccolo 1.x has no partitioning",
    "driver_positions primary key": "(driver_id, recorded_at): Piccolo 1.x has one-column keys",
    "fleet_plan_stops primary key": (
        "(plan_id, driver_id, seq): Piccolo 1.x has one-column primary keys, so the class "
        "names plan_id"
    ),
}


def modules() -> list[ModuleType]:
    return [importlib.import_module(f"{__name__}.{name}") for name in MODULES]


def table_classes() -> list[type[Table]]:
    """Every tenant table's class, in the order of `MODULES` and of each module."""
    found: list[type[Table]] = []
    for module in modules():
        found += [
            value
            for value in vars(module).values()
            if isinstance(value, type)
            and issubclass(value, Table)
            and value is not Table
            and value.__module__ == module.__name__
        ]
    return found

"""Tables in every tenant schema. Unqualified: the tenant transaction's search_path picks them."""

from __future__ import annotations

from piccolo.columns import JSONB, Timestamptz, Varchar
from piccolo.table import Table

from patone.core.db import engine


class Setting(Table, tablename="settings", db=engine):
    """A company setting (profile, units, currency, time zone, ...) as a JSON value."""

    key = Varchar(length=100, unique=True)
    value = JSONB()
    updated_at = Timestamptz()

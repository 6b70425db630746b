"""Test migration: a nullable column, the shape of a typical expand step."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import Text

ID = "2099-01-01T00:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "settings.note"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="tenant", description=DESCRIPTION)
    manager.add_column(
        table_class_name="Setting",
        tablename="settings",
        column_name="note",
        db_column_name="note",
        column_class_name="Text",
        column_class=Text,
        params={"default": None, "null": True},
        schema=None,
    )
    return manager

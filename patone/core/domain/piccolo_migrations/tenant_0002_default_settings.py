from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from patone.core.runtime.db import engine

ID = "2026-11-24T09:57:18:000000"
VERSION = "1.38.0"
DESCRIPTION = "default company settings"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="tenant", description=DESCRIPTION)

    async def default_settings() -> None:
        await engine.execute(
            """
            INSERT INTO settings (key, value) VALUES
                ('units', '"km"'),
                ('currency', '"USD"'),
                ('time_zone', '"UTC"'),
                ('locale', '"en"')
            """
        )

    manager.add_raw(default_settings)

    return manager

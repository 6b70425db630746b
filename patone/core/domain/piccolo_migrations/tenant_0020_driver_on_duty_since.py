"""When each driver last came on duty, so the engine counts their hours from then.

A driver's load is measured against their time on shift; without this, a driver with no shift
on record counted from midnight ("0 jobs in 15.6 h" a minute after coming on duty). Drivers on
duty now are taken to have come on duty at their last change, the best record there is.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from patone.core.runtime.db import engine

ID = "2026-12-07T18:20:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "when each driver came on duty"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="tenant", description=DESCRIPTION)

    async def on_duty_since() -> None:
        await engine.execute(
            """
            ALTER TABLE drivers ADD COLUMN on_duty_since timestamptz;
            UPDATE drivers SET on_duty_since = updated_at WHERE status IN ('available', 'busy');
            """
        )

    manager.add_raw(on_duty_since)

    return manager

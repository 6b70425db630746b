"""A request always has its customer and service type, and an event its request: the columns
say so (they were created nullable, as Piccolo's foreign keys are by default, though nothing
ever wrote a null), so the table classes and the rows they type can say so too.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from patone.core.runtime.db import engine

ID = "2026-12-08T00:30:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "a request's customer and service type, an event's request, not null"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="tenant", description=DESCRIPTION)

    async def request_tables() -> None:
        await engine.execute(
            """
            ALTER TABLE service_requests
                ALTER COLUMN customer SET NOT NULL,
                ALTER COLUMN service_type SET NOT NULL;
            ALTER TABLE request_events ALTER COLUMN request SET NOT NULL;
            """
        )

    manager.add_raw(request_tables)

    return manager

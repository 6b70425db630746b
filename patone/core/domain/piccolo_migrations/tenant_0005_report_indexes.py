"""Indexes the reports read: requests by completion and cancellation time."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from patone.core.runtime.db import engine

ID = "2026-11-24T12:30:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "report indexes, one account per e-mail address whatever its case"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="tenant", description=DESCRIPTION)

    async def report_indexes() -> None:
        await engine.execute(
            """
            CREATE INDEX service_requests_completed_at ON service_requests (completed_at)
                WHERE completed_at IS NOT NULL;
            CREATE INDEX service_requests_cancelled_at ON service_requests (cancelled_at)
                WHERE cancelled_at IS NOT NULL;
            CREATE UNIQUE INDEX users_email_lower ON users (lower(email));
            """
        )

    manager.add_raw(report_indexes)
    return manager

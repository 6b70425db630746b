"""Dispatchers see reports' counts and timings; money figures need `reports.revenue`.

Reports' revenue figures move behind their own permission. Every role that could see reports
before keeps seeing their money (so no company loses a figure it had), Admins hold every
permission, and Dispatchers get `reports.view`: they read the day's jobs and times.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from patone.core.runtime.db import engine

ID = "2026-12-07T18:30:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "reports for dispatchers, revenue behind its own permission"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="tenant", description=DESCRIPTION)

    async def report_grants() -> None:
        # One statement, so both conditions read the roles as they were before it.
        await engine.execute(
            """
            UPDATE roles SET permissions = permissions
                || CASE WHEN (name = 'admin' OR 'reports.view' = ANY (permissions))
                             AND NOT 'reports.revenue' = ANY (permissions)
                        THEN ARRAY['reports.revenue']::varchar[] ELSE '{}'::varchar[] END
                || CASE WHEN name = 'dispatcher' AND NOT 'reports.view' = ANY (permissions)
                        THEN ARRAY['reports.view']::varchar[] ELSE '{}'::varchar[] END;
            """
        )

    manager.add_raw(report_grants)

    return manager

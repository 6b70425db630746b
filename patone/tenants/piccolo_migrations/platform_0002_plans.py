from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from patone.core.runtime.db import engine

ID = "2026-11-24T09:57:17:000000"
VERSION = "1.38.0"
DESCRIPTION = "plan catalogue"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="platform", description=DESCRIPTION)

    async def plan_catalogue() -> None:
        await engine.execute(
            """
            INSERT INTO platform.plans
                (name, title, api_requests_per_minute, max_drivers, max_users, max_plugins,
                 plugins_allowed)
            VALUES
                ('free', 'Free', 60, 5, 3, 2, '{}'),
                ('standard', 'Standard', 600, 100, 50, 10, '{}'),
                ('enterprise', 'Enterprise', 6000, NULL, NULL, NULL, '{}')
            """
        )

    manager.add_raw(plan_catalogue)

    return manager

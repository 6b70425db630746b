"""Slugs of purged companies: a new company may take one only when the operator says so.

Tokens, links and job messages name a company by slug and id; recording the purged slug lets
`create_tenant` refuse to hand it on silently (`patone/platform/provisioning.py`).
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from patone.core.runtime.db import engine

ID = "2026-12-07T17:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "purged slugs"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="platform", description=DESCRIPTION)

    async def purged_slugs() -> None:
        await engine.execute(
            """
            CREATE TABLE IF NOT EXISTS platform.purged_slugs (
                slug varchar(40) PRIMARY KEY,
                tenant_id uuid NOT NULL,
                purged_at timestamptz NOT NULL DEFAULT now()
            )
            """
        )

    manager.add_raw(purged_slugs)

    return manager

"""Test migration that depends on each tenant's own data, so it must run live per tenant."""

import json

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from patone.core.runtime.db import engine

ID = "2099-01-02T00:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "company.initials from company.name"
REPLAYABLE = False


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="tenant", description=DESCRIPTION)

    async def initials() -> None:
        rows = await engine.fetch("SELECT value FROM settings WHERE key = 'company.name'")
        name = json.loads(rows[0]["value"]) if rows else ""
        letters = "".join(word[0] for word in name.split() if word).upper()
        await engine.execute(
            "INSERT INTO settings (key, value) VALUES ('company.initials', $1::jsonb)",
            json.dumps(letters),
        )

    manager.add_raw(initials)
    return manager

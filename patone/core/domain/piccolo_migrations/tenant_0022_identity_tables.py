"""Token and secret hashes are `varchar(64)`, as their table classes state.

Three columns were `char(64)`, a type Piccolo's columns cannot state. A sha256 in hex is always
64 characters, so the two types hold and compare the same values.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from patone.core.runtime.db import engine

ID = "2026-12-08T00:10:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "token and secret hashes as varchar(64)"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="tenant", description=DESCRIPTION)

    async def hashes_as_varchar() -> None:
        await engine.execute(
            """
            ALTER TABLE user_tokens ALTER COLUMN token_hash TYPE varchar(64);
            ALTER TABLE refresh_tokens ALTER COLUMN token_hash TYPE varchar(64);
            ALTER TABLE api_clients ALTER COLUMN secret_hash TYPE varchar(64);
            """
        )

    manager.add_raw(hashes_as_varchar)

    return manager

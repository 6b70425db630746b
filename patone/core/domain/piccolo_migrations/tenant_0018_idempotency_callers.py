"""Idempotency keys belong to their caller and remember their input.

A key was unique per operation only, so one caller reusing another's key got the other's
result back. Keys are now unique per (operation, caller, key) and keep a sha256 of the input
they were first used with (`patone/core/domain/idempotency.py`). Keys recorded before this have no
caller and match no one's any more: a retry across the upgrade creates anew.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from patone.core.runtime.db import engine

ID = "2026-12-07T12:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "idempotency keys per caller, with the input's hash"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="tenant", description=DESCRIPTION)

    async def idempotency_callers() -> None:
        await engine.execute(
            """
            ALTER TABLE idempotency_keys
                ADD COLUMN caller text NOT NULL DEFAULT '',
                ADD COLUMN input_sha256 varchar(64) NOT NULL DEFAULT '';
            CREATE UNIQUE INDEX idempotency_keys_operation_caller_key
                ON idempotency_keys (operation, caller, key);
            DROP INDEX idempotency_keys_operation_key;
            """
        )

    manager.add_raw(idempotency_callers)

    return manager

"""Two-factor authentication: each staff user's TOTP secret and recovery codes, and the company
setting listing the roles that must use it (default: admins).

Written as SQL like 0008; `patone/core/identity/two_factor.py` documents how the tables are used.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from patone.core.runtime.db import engine

ID = "2026-12-02T07:12:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "two-factor secrets, recovery codes and the roles that require them"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="tenant", description=DESCRIPTION)

    async def two_factor() -> None:
        await engine.execute(
            """
            CREATE TABLE user_two_factor (
                user_id integer PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
                secret jsonb NOT NULL,
                confirmed_at timestamptz,
                last_step bigint,
                created_at timestamptz NOT NULL DEFAULT now(),
                updated_at timestamptz NOT NULL DEFAULT now()
            );

            CREATE TABLE user_recovery_codes (
                id serial PRIMARY KEY,
                user_id integer NOT NULL REFERENCES users (id) ON DELETE CASCADE,
                code_hash varchar(64) NOT NULL,
                used_at timestamptz,
                created_at timestamptz NOT NULL DEFAULT now(),
                UNIQUE (user_id, code_hash)
            );

            INSERT INTO settings (key, value) VALUES ('two_factor.required_roles', '["admin"]')
                ON CONFLICT (key) DO NOTHING;
            """
        )

    manager.add_raw(two_factor)
    return manager

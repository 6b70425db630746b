"""Staff credentials: password hashes and lockout state on `users`, and single-use tokens.

Written as SQL like 0008; `patone/core/identity/credentials.py` documents how the columns are used.
No password ships anywhere: `password_hash` is NULL until the user follows a set-up link.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from patone.core.runtime.db import engine

ID = "2026-12-02T07:10:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "staff passwords, lockout, set-up and reset tokens"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="tenant", description=DESCRIPTION)

    async def credentials() -> None:
        await engine.execute(
            """
            ALTER TABLE users
                ADD COLUMN password_hash text,
                ADD COLUMN must_change_password boolean NOT NULL DEFAULT false,
                ADD COLUMN password_changed_at timestamptz,
                ADD COLUMN failed_sign_ins integer NOT NULL DEFAULT 0,
                ADD COLUMN locked_until timestamptz;

            CREATE TABLE user_tokens (
                id bigserial PRIMARY KEY,
                "user" integer NOT NULL REFERENCES users (id) ON DELETE CASCADE,
                purpose varchar(10) NOT NULL CHECK (purpose IN ('setup', 'reset')),
                token_hash char(64) NOT NULL UNIQUE,
                expires_at timestamptz NOT NULL,
                used_at timestamptz,
                created_at timestamptz NOT NULL DEFAULT now()
            );
            CREATE INDEX user_tokens_user ON user_tokens ("user", purpose) WHERE used_at IS NULL;
            """
        )

    manager.add_raw(credentials)
    return manager

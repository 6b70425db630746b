"""Refresh tokens and partners' OAuth clients (`patone/core/identity/refresh_tokens.py` and
`patone/core/identity/api_clients.py` say how they are used); Admins may manage API clients."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from patone.core.runtime.db import engine

ID = "2026-12-02T11:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "refresh tokens, API clients"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="tenant", description=DESCRIPTION)

    async def tokens() -> None:
        await engine.execute(
            """
            CREATE TABLE refresh_tokens (
                id bigserial PRIMARY KEY,
                family uuid NOT NULL,
                subject_kind varchar(20) NOT NULL,
                subject varchar(64) NOT NULL,
                token_hash char(64) NOT NULL UNIQUE,
                parent bigint REFERENCES refresh_tokens (id) ON DELETE CASCADE,
                access_token_id varchar(64) NOT NULL,
                access_expires_at timestamptz NOT NULL,
                created_at timestamptz NOT NULL DEFAULT now(),
                used_at timestamptz,
                revoked_at timestamptz,
                expires_at timestamptz NOT NULL
            );
            CREATE INDEX refresh_tokens_family ON refresh_tokens (family);
            CREATE INDEX refresh_tokens_subject ON refresh_tokens (subject_kind, subject)
                WHERE revoked_at IS NULL;

            CREATE TABLE api_clients (
                id serial PRIMARY KEY,
                client_id varchar(64) NOT NULL UNIQUE,
                name varchar(200) NOT NULL,
                secret_hash char(64) NOT NULL,
                scopes varchar(40)[] NOT NULL DEFAULT '{}',
                allow_list_only boolean NOT NULL DEFAULT false,
                created_at timestamptz NOT NULL DEFAULT now(),
                last_used_at timestamptz,
                revoked_at timestamptz
            );

            UPDATE roles SET permissions = array_append(permissions, 'api_clients.manage')
                WHERE name = 'admin' AND NOT 'api_clients.manage' = ANY (permissions);
            """
        )

    manager.add_raw(tokens)
    return manager

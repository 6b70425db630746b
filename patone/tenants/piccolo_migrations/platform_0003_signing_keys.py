"""Token signing keys and the OAuth client index (`patone/core/identity/signing_keys.py` and
`patone/core/identity/api_clients.py` say how they are used)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from patone.core.runtime.db import engine

ID = "2026-12-02T03:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "signing keys, OAuth client index"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="platform", description=DESCRIPTION)

    async def signing_keys() -> None:
        await engine.execute(
            """
            CREATE TABLE platform.signing_keys (
                kid varchar(64) PRIMARY KEY,
                algorithm varchar(10) NOT NULL,
                public_jwk jsonb NOT NULL,
                private_jwk jsonb NOT NULL,
                created_at timestamptz NOT NULL DEFAULT now(),
                active_from timestamptz NOT NULL DEFAULT now(),
                verify_until timestamptz
            );

            CREATE TABLE platform.oauth_clients (
                client_id varchar(64) PRIMARY KEY,
                tenant uuid NOT NULL REFERENCES platform.tenants (id) ON DELETE CASCADE,
                created_at timestamptz NOT NULL DEFAULT now()
            );
            CREATE INDEX oauth_clients_tenant ON platform.oauth_clients (tenant);
            """
        )

    manager.add_raw(signing_keys)
    return manager

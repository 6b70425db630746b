"""Platform operators (two-factor always on) and their own activity log.

Written as SQL; `patone/platform/operators.py` documents how the tables are used.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from patone.core.runtime.db import engine

ID = "2026-12-02T07:04:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "platform operators and their activity log"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="platform", description=DESCRIPTION)

    async def operators() -> None:
        await engine.execute(
            """
            CREATE TABLE platform.operators (
                id serial PRIMARY KEY,
                email varchar(254) NOT NULL UNIQUE,
                name varchar(200) NOT NULL,
                password_hash text NOT NULL,
                totp_secret jsonb NOT NULL,
                last_step bigint,
                recovery_codes varchar(64)[] NOT NULL DEFAULT '{}',
                active boolean NOT NULL DEFAULT true,
                created_at timestamptz NOT NULL DEFAULT now(),
                updated_at timestamptz NOT NULL DEFAULT now()
            );

            CREATE TABLE platform.operator_activity (
                id bigserial PRIMARY KEY,
                operator_id integer REFERENCES platform.operators (id) ON DELETE SET NULL,
                email varchar(254) NOT NULL DEFAULT '',
                action varchar(60) NOT NULL,
                entity varchar(40) NOT NULL DEFAULT '',
                entity_id varchar(64) NOT NULL DEFAULT '',
                detail jsonb,
                ip varchar(64) NOT NULL DEFAULT '',
                created_at timestamptz NOT NULL DEFAULT now()
            );
            CREATE INDEX operator_activity_operator ON platform.operator_activity (operator_id, id);
            CREATE INDEX operator_activity_entity ON platform.operator_activity (entity, entity_id);
            """
        )

    manager.add_raw(operators)
    return manager

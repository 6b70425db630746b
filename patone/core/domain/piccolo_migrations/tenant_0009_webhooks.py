"""Outbound webhooks: partners' endpoints, one delivery per event and endpoint, every attempt.

Written as SQL like 0008; `patone/core/domain/webhooks.py` documents how the tables are used.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from patone.core.runtime.db import engine

ID = "2026-11-24T16:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "webhook endpoints, deliveries and their attempts"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="tenant", description=DESCRIPTION)

    async def webhooks() -> None:
        await engine.execute(
            """
            CREATE TABLE webhook_endpoints (
                id serial PRIMARY KEY,
                url text NOT NULL,
                description text NOT NULL DEFAULT '',
                event_types varchar(60)[] NOT NULL DEFAULT '{}',
                secret jsonb NOT NULL,
                previous_secret jsonb,
                previous_secret_expires_at timestamptz,
                enabled boolean NOT NULL DEFAULT true,
                failure_streak integer NOT NULL DEFAULT 0,
                failing_since timestamptz,
                last_success_at timestamptz,
                last_failure_at timestamptz,
                disabled_at timestamptz,
                disabled_reason text NOT NULL DEFAULT '',
                created_at timestamptz NOT NULL DEFAULT now(),
                updated_at timestamptz NOT NULL DEFAULT now()
            );

            CREATE TABLE webhook_deliveries (
                id bigserial PRIMARY KEY,
                endpoint_id integer NOT NULL
                    REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
                message_id varchar(64) NOT NULL UNIQUE,
                event_id bigint,
                event_type varchar(60) NOT NULL,
                payload jsonb NOT NULL,
                status varchar(10) NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'succeeded', 'failed', 'dead')),
                attempts integer NOT NULL DEFAULT 0,
                round_attempts integer NOT NULL DEFAULT 0,
                replays integer NOT NULL DEFAULT 0,
                response_status integer,
                response_body text NOT NULL DEFAULT '',
                error text NOT NULL DEFAULT '',
                duration_ms integer,
                lease_until timestamptz,
                next_attempt_at timestamptz,
                last_attempt_at timestamptz,
                succeeded_at timestamptz,
                created_at timestamptz NOT NULL DEFAULT now(),
                updated_at timestamptz NOT NULL DEFAULT now(),
                UNIQUE (endpoint_id, event_id)
            );
            CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id DESC);
            CREATE INDEX webhook_deliveries_status ON webhook_deliveries (status, id DESC);
            CREATE INDEX webhook_deliveries_event ON webhook_deliveries (event_id)
                WHERE event_id IS NOT NULL;

            CREATE TABLE webhook_attempts (
                id bigserial PRIMARY KEY,
                delivery_id bigint NOT NULL
                    REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
                attempt integer NOT NULL,
                trigger varchar(10) NOT NULL
                    CHECK (trigger IN ('event', 'retry', 'replay', 'test')),
                response_status integer,
                response_body text NOT NULL DEFAULT '',
                error text NOT NULL DEFAULT '',
                duration_ms integer NOT NULL DEFAULT 0,
                created_at timestamptz NOT NULL DEFAULT now()
            );
            CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id, id);
            """
        )

    manager.add_raw(webhooks)
    return manager

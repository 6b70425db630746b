"""Notifications: rules, templates, preferences, the delivery log and push subscriptions.

Written as SQL (checks, partial indexes and seeded default rules say more than Piccolo columns);
`patone/core/notifications.py` documents how the tables are used.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from patone.core.runtime.db import engine

ID = "2026-11-24T15:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "notifications, delivery log, push subscriptions"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="tenant", description=DESCRIPTION)

    async def notifications() -> None:
        await engine.execute(
            """
            CREATE TABLE notification_rules (
                id serial PRIMARY KEY,
                event varchar(60) NOT NULL,
                recipient varchar(20) NOT NULL
                    CHECK (recipient IN ('customer', 'driver', 'dispatchers')),
                channel varchar(10) NOT NULL CHECK (channel IN ('email', 'sms', 'push')),
                enabled boolean NOT NULL DEFAULT true,
                updated_at timestamptz NOT NULL DEFAULT now(),
                UNIQUE (event, recipient, channel)
            );
            INSERT INTO notification_rules (event, recipient, channel) VALUES
                ('request.created', 'customer', 'sms'),
                ('request.created', 'customer', 'email'),
                ('request.created', 'dispatchers', 'push'),
                ('request.assigned', 'customer', 'sms'),
                ('request.assigned', 'driver', 'push'),
                ('request.en_route', 'customer', 'sms'),
                ('request.en_route', 'customer', 'push'),
                ('request.on_scene', 'customer', 'sms'),
                ('request.completed', 'customer', 'email'),
                ('request.cancelled', 'customer', 'sms'),
                ('request.cancelled', 'customer', 'email'),
                ('request.cancelled', 'driver', 'push');

            CREATE TABLE notification_templates (
                id serial PRIMARY KEY,
                event varchar(60) NOT NULL,
                channel varchar(10) NOT NULL CHECK (channel IN ('email', 'sms', 'push')),
                subject text NOT NULL DEFAULT '',
                body text NOT NULL,
                html text NOT NULL DEFAULT '',
                updated_at timestamptz NOT NULL DEFAULT now(),
                UNIQUE (event, channel)
            );

            CREATE TABLE notification_preferences (
                id serial PRIMARY KEY,
                subject_kind varchar(10) NOT NULL CHECK (subject_kind IN ('user', 'customer')),
                subject_id integer NOT NULL,
                event varchar(60) NOT NULL,
                channel varchar(10) NOT NULL CHECK (channel IN ('email', 'sms', 'push')),
                enabled boolean NOT NULL,
                updated_at timestamptz NOT NULL DEFAULT now(),
                UNIQUE (subject_kind, subject_id, event, channel)
            );

            CREATE TABLE notifications (
                id bigserial PRIMARY KEY,
                event_id bigint NOT NULL,
                event varchar(60) NOT NULL,
                entity varchar(40) NOT NULL DEFAULT '',
                entity_id varchar(64) NOT NULL DEFAULT '',
                recipient_kind varchar(10) NOT NULL
                    CHECK (recipient_kind IN ('user', 'customer', 'driver')),
                recipient_id integer NOT NULL,
                channel varchar(10) NOT NULL CHECK (channel IN ('email', 'sms', 'push')),
                address text NOT NULL,
                subject text NOT NULL DEFAULT '',
                body text NOT NULL,
                html text NOT NULL DEFAULT '',
                status varchar(20) NOT NULL DEFAULT 'queued',
                provider varchar(100) NOT NULL DEFAULT '',
                provider_id varchar(200) NOT NULL DEFAULT '',
                provider_status varchar(40) NOT NULL DEFAULT '',
                attempts integer NOT NULL DEFAULT 0,
                ambiguous_attempts integer NOT NULL DEFAULT 0,
                error text NOT NULL DEFAULT '',
                lease_until timestamptz,
                created_at timestamptz NOT NULL DEFAULT now(),
                sent_at timestamptz,
                updated_at timestamptz NOT NULL DEFAULT now(),
                UNIQUE (event_id, recipient_kind, recipient_id, channel, address)
            );
            CREATE INDEX notifications_entity ON notifications (entity, entity_id);
            CREATE INDEX notifications_created_at ON notifications (created_at DESC);
            CREATE INDEX notifications_provider_id ON notifications (provider, provider_id)
                WHERE provider_id <> '';
            CREATE INDEX notifications_unfinished ON notifications (updated_at)
                WHERE status IN ('queued', 'sending', 'retrying');

            CREATE TABLE push_subscriptions (
                id serial PRIMARY KEY,
                owner_kind varchar(10) NOT NULL CHECK (owner_kind IN ('user', 'customer')),
                owner_id integer NOT NULL,
                endpoint text NOT NULL UNIQUE,
                p256dh text NOT NULL,
                auth text NOT NULL,
                user_agent text NOT NULL DEFAULT '',
                created_at timestamptz NOT NULL DEFAULT now(),
                last_used_at timestamptz
            );
            CREATE INDEX push_subscriptions_owner ON push_subscriptions (owner_kind, owner_id);
            """
        )

    manager.add_raw(notifications)
    return manager

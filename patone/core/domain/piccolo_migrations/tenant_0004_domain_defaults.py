"""Indexes Piccolo cannot declare, the request number sequence, default roles and services."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from patone.core.runtime.db import engine

ID = "2026-11-24T12:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "domain indexes, roles, service types"

DISPATCH = (
    "'requests.view', 'requests.create', 'requests.update', 'requests.assign', "
    "'requests.transition', 'requests.cancel', 'customers.view', 'customers.manage', "
    "'drivers.view'"
)


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="tenant", description=DESCRIPTION)

    async def domain_defaults() -> None:
        await engine.execute(
            f"""
            CREATE SEQUENCE service_request_number_seq START 1001;
            CREATE UNIQUE INDEX idempotency_keys_operation_key
                ON idempotency_keys (operation, key);
            CREATE INDEX service_requests_open
                ON service_requests (priority, created_at)
                WHERE status NOT IN ('completed', 'cancelled');
            CREATE INDEX service_requests_status_created ON service_requests (status, created_at);
            CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;
            CREATE INDEX request_events_created ON request_events (created_at);
            ALTER TABLE customers ADD COLUMN search tsvector GENERATED ALWAYS AS (
                to_tsvector('simple', coalesce(name, '') || ' ' || coalesce(email, ''))
            ) STORED;
            CREATE INDEX customers_search ON customers USING gin (search);
            CREATE INDEX vehicles_plate_upper ON vehicles (upper(plate));

            INSERT INTO roles (name, title, permissions, updated_at) VALUES
                ('admin', 'Admin', ARRAY[
                    'requests.view', 'requests.view_assigned', 'requests.create',
                    'requests.update', 'requests.assign', 'requests.transition',
                    'requests.transition_assigned', 'requests.cancel', 'customers.view',
                    'customers.manage', 'customers.export', 'drivers.view', 'drivers.manage',
                    'service_types.manage', 'users.manage', 'roles.manage', 'reports.view',
                    'activity.view', 'settings.manage'], now()),
                ('manager', 'Manager', ARRAY[{DISPATCH},
                    'customers.export', 'drivers.manage', 'service_types.manage',
                    'reports.view', 'activity.view', 'users.manage'], now()),
                ('dispatcher', 'Dispatcher', ARRAY[{DISPATCH}], now()),
                ('driver', 'Driver',
                    ARRAY['requests.view_assigned', 'requests.transition_assigned'], now());

            INSERT INTO service_types (code, name, base_price, per_distance_price,
                    after_hours_surcharge, needs_destination, required_skills, active, updated_at)
            VALUES
                ('towing', 'Towing', 9500, 400, 2500, TRUE, ARRAY['tow'], TRUE, now()),
                ('flat_tyre', 'Flat tyre', 6500, 0, 2000, FALSE, ARRAY[]::varchar[], TRUE, now()),
                ('jump_start', 'Jump start', 5500, 0, 2000, FALSE, ARRAY[]::varchar[], TRUE, now()),
                ('lockout', 'Lockout', 6000, 0, 2000, FALSE, ARRAY['lockout'], TRUE, now()),
                ('fuel_delivery', 'Fuel delivery', 5000, 0, 2000, FALSE, ARRAY[]::varchar[],
                    TRUE, now()),
                ('winching', 'Winching', 12000, 0, 3000, FALSE, ARRAY['winch'], TRUE, now());

            INSERT INTO settings (key, value) VALUES
                ('company.phone', '""'),
                ('company.email', '""'),
                ('company.address', '""'),
                ('business_hours', '{{"mon": ["08:00", "18:00"], "tue": ["08:00", "18:00"],
                    "wed": ["08:00", "18:00"], "thu": ["08:00", "18:00"],
                    "fri": ["08:00", "18:00"], "sat": null, "sun": null}}');
            """
        )

    manager.add_raw(domain_defaults)
    return manager

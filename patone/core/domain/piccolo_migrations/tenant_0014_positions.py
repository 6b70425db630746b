"""Drivers' GPS history: one table partitioned by day, and the setting that says how many days
are kept (default 30).

Partitions are not created here: a captured migration is replayed later, so dates written now
would be stale. `patone/core/dispatch/positions.py` creates each day's partition ahead of time
(and on demand when a flush meets a day without one) and drops the expired ones.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from patone.core.runtime.db import engine

ID = "2026-12-02T13:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "driver positions history, partitioned by day; positions retention setting"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="tenant", description=DESCRIPTION)

    async def positions() -> None:
        # No foreign key to drivers: checking one on ~17 million rows a day costs more than a
        # stale id in an append-only log would. The primary key makes a redelivered batch
        # insert nothing twice (a driver is in one place at one instant).
        await engine.execute(
            """
            CREATE TABLE driver_positions (
                driver_id integer NOT NULL,
                recorded_at timestamptz NOT NULL,
                lat double precision NOT NULL,
                lng double precision NOT NULL,
                accuracy_m real NOT NULL,
                speed_mps real,
                heading_deg real,
                received_at timestamptz NOT NULL,
                PRIMARY KEY (driver_id, recorded_at)
            ) PARTITION BY RANGE (recorded_at);

            INSERT INTO settings (key, value) VALUES ('positions_retention_days', '30')
                ON CONFLICT (key) DO NOTHING;
            """
        )

    manager.add_raw(positions)

    return manager

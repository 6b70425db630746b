"""Staging as delivered: each driver's current waiting-place suggestion (what their phone was
told), and when the company's drivers were last told (so the periodic job knows when it is due
and two racing rounds publish once).

`patone/core/dispatch/staging.py` documents how they are used.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from patone.core.runtime.db import engine

ID = "2026-12-05T09:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "staging moves"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="tenant", description=DESCRIPTION)

    async def staging_moves() -> None:
        await engine.execute(
            """
            CREATE TABLE staging_moves (
                driver_id integer PRIMARY KEY REFERENCES drivers (id) ON DELETE CASCADE,
                lat double precision NOT NULL,
                lng double precision NOT NULL,
                km double precision NOT NULL,
                place text NOT NULL DEFAULT '',
                suggested_at timestamptz NOT NULL
            );

            CREATE TABLE staging_rounds (
                at timestamptz PRIMARY KEY
            );
            """
        )

    manager.add_raw(staging_moves)

    return manager

"""The fleet re-plan's records: each plan's header, every driver's planned stops with their
planned arrivals, and the suggestions it makes to dispatchers.

`patone/core/dispatch/replan.py` documents how they are used.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from patone.core.runtime.db import engine

ID = "2026-12-04T09:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "fleet plans"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="tenant", description=DESCRIPTION)

    async def fleet_plans() -> None:
        await engine.execute(
            """
            CREATE TABLE fleet_plans (
                id bigserial PRIMARY KEY,
                created_at timestamptz NOT NULL,
                solver varchar(10) NOT NULL CHECK (solver IN ('or-tools', 'greedy')),
                objective bigint NOT NULL,
                travel_s integer NOT NULL,
                solve_ms integer NOT NULL,
                drivers integer NOT NULL,
                jobs integer NOT NULL
            );
            CREATE INDEX fleet_plans_created ON fleet_plans (created_at);

            CREATE TABLE fleet_plan_stops (
                plan_id bigint NOT NULL REFERENCES fleet_plans (id) ON DELETE CASCADE,
                driver_id integer NOT NULL REFERENCES drivers (id) ON DELETE CASCADE,
                seq smallint NOT NULL,
                request_id integer NOT NULL REFERENCES service_requests (id) ON DELETE CASCADE,
                accepted boolean NOT NULL,
                arrive_at timestamptz NOT NULL,
                depart_at timestamptz NOT NULL,
                travel_s integer NOT NULL,
                PRIMARY KEY (plan_id, driver_id, seq)
            );

            CREATE TABLE fleet_plan_suggestions (
                id bigserial PRIMARY KEY,
                plan_id bigint NOT NULL REFERENCES fleet_plans (id) ON DELETE CASCADE,
                kind varchar(10) NOT NULL CHECK (kind IN ('reassign', 'offer', 'unserved')),
                request_id integer NOT NULL REFERENCES service_requests (id) ON DELETE CASCADE,
                driver_id integer REFERENCES drivers (id) ON DELETE CASCADE,
                from_driver_id integer REFERENCES drivers (id) ON DELETE CASCADE,
                arrive_at timestamptz,
                sooner_s integer,
                why text NOT NULL
            );
            CREATE INDEX fleet_plan_suggestions_plan ON fleet_plan_suggestions (plan_id, id);
            """
        )

    manager.add_raw(fleet_plans)

    return manager

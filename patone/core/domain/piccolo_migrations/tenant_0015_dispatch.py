"""The dispatch engine's records: every decision with its explanation, every offer, and what a
request needs for dispatch (offer count, the dispatcher flag, pre-emption, the ETA shown).

`patone/core/dispatch/` documents how they are used.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from patone.core.runtime.db import engine

ID = "2026-12-02T13:30:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "dispatch decisions and offers"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="tenant", description=DESCRIPTION)

    async def dispatch() -> None:
        await engine.execute(
            """
            CREATE TABLE dispatch_decisions (
                id bigserial PRIMARY KEY,
                request_id integer NOT NULL REFERENCES service_requests (id) ON DELETE CASCADE,
                made_at timestamptz NOT NULL,
                outcome varchar(20) NOT NULL
                    CHECK (outcome IN ('offered', 'no_candidate', 'flagged')),
                driver_id integer REFERENCES drivers (id) ON DELETE SET NULL,
                strategy varchar(20) NOT NULL,
                explanation jsonb NOT NULL
            );
            CREATE INDEX dispatch_decisions_request ON dispatch_decisions (request_id, id);

            CREATE TABLE offers (
                id bigserial PRIMARY KEY,
                request_id integer NOT NULL REFERENCES service_requests (id) ON DELETE CASCADE,
                driver_id integer NOT NULL REFERENCES drivers (id) ON DELETE CASCADE,
                decision_id bigint REFERENCES dispatch_decisions (id) ON DELETE SET NULL,
                status varchar(10) NOT NULL DEFAULT 'open'
                    CHECK (status IN ('open', 'accepted', 'declined', 'expired', 'withdrawn')),
                offered_by varchar(80) NOT NULL,
                sent_at timestamptz NOT NULL,
                deadline timestamptz NOT NULL,
                responded_at timestamptz,
                reason varchar(60) NOT NULL DEFAULT '',
                travel_s integer,
                distance_m integer,
                preempts integer REFERENCES service_requests (id) ON DELETE SET NULL
            );
            -- One live offer per request and per driver (FEATURES.md, "Domain facts").
            CREATE UNIQUE INDEX offers_open_request ON offers (request_id) WHERE status = 'open';
            CREATE UNIQUE INDEX offers_open_driver ON offers (driver_id) WHERE status = 'open';
            CREATE INDEX offers_open_deadline ON offers (deadline) WHERE status = 'open';
            CREATE INDEX offers_request ON offers (request_id, id);

            ALTER TABLE service_requests
                ADD COLUMN offers_made integer NOT NULL DEFAULT 0,
                ADD COLUMN needs_dispatcher boolean NOT NULL DEFAULT false,
                ADD COLUMN requeued_at timestamptz,
                ADD COLUMN eta_at timestamptz,
                ADD COLUMN eta_updated_at timestamptz;
            CREATE INDEX service_requests_waiting ON service_requests (created_at)
                WHERE status = 'pending';

            UPDATE roles SET permissions = array_append(permissions, 'offers.respond')
                WHERE name IN ('driver', 'admin') AND NOT ('offers.respond' = ANY (permissions));
            """
        )

    manager.add_raw(dispatch)

    return manager

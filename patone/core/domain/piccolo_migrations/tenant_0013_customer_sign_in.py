"""Customers' sign-in links and codes for the portal, stored hashed.

`patone/core/identity/customer_sign_in.py` documents how the table is used.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from patone.core.runtime.db import engine

ID = "2026-12-02T07:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "customer sign-in links and codes"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="tenant", description=DESCRIPTION)

    async def customer_sign_ins() -> None:
        await engine.execute(
            """
            CREATE TABLE customer_sign_ins (
                id bigserial PRIMARY KEY,
                customer_id integer NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
                channel varchar(5) NOT NULL CHECK (channel IN ('email', 'sms')),
                address varchar(254) NOT NULL,
                secret_hash varchar(64) NOT NULL,
                attempts integer NOT NULL DEFAULT 0,
                expires_at timestamptz NOT NULL,
                used_at timestamptz,
                voided_at timestamptz,
                created_at timestamptz NOT NULL DEFAULT now()
            );
            CREATE INDEX customer_sign_ins_hash ON customer_sign_ins (secret_hash);
            CREATE INDEX customer_sign_ins_pending ON customer_sign_ins (channel, address, id DESC)
                WHERE used_at IS NULL AND voided_at IS NULL;
            """
        )

    manager.add_raw(customer_sign_ins)

    return manager

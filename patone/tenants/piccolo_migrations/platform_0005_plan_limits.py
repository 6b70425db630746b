"""Rate limits per plan: the whole company's API budget, sign-in and sign-in-code requests.

`api_requests_per_minute` (0002) stays the budget of one caller (a user or a partner client);
`patone/core/identity/ratelimits.py` documents how each limit is applied.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from patone.core.runtime.db import engine

ID = "2026-12-02T07:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "rate limits per plan"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="platform", description=DESCRIPTION)

    async def plan_limits() -> None:
        await engine.execute(
            """
            ALTER TABLE platform.plans
                ADD COLUMN tenant_api_requests_per_minute integer NOT NULL DEFAULT 600,
                ADD COLUMN sign_ins_per_ip_per_hour integer NOT NULL DEFAULT 60,
                ADD COLUMN sign_ins_per_account_per_hour integer NOT NULL DEFAULT 20,
                ADD COLUMN code_requests_per_address_per_hour integer NOT NULL DEFAULT 5,
                ADD COLUMN code_requests_per_ip_per_hour integer NOT NULL DEFAULT 30;
            UPDATE platform.plans SET tenant_api_requests_per_minute = CASE name
                WHEN 'free' THEN 300 WHEN 'standard' THEN 3000 WHEN 'enterprise' THEN 30000
                ELSE tenant_api_requests_per_minute END,
                sign_ins_per_ip_per_hour = CASE name
                WHEN 'enterprise' THEN 300 ELSE sign_ins_per_ip_per_hour END,
                code_requests_per_ip_per_hour = CASE name
                WHEN 'enterprise' THEN 120 ELSE code_requests_per_ip_per_hour END;
            """
        )

    manager.add_raw(plan_limits)

    return manager

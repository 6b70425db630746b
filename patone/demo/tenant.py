"""The demo company on the embedded default: created and filled the first time, migrated at
each start, with its staff and a set-up link for its admin while the admin has no password."""

from __future__ import annotations

import contextlib
import logging

from patone.core.common.permissions import SYSTEM
from patone.core.identity import credentials, users
from patone.core.runtime.errors import UserError
from patone.demo.company import fill_demo_tenant
from patone.platform.provisioning import create_tenant
from patone.tenants.migrations import migrate_tenants
from patone.tenants.registry import TenantInfo, get_tenant

log = logging.getLogger(__name__)

DEMO_SLUG = "demo"
DEMO_STAFF = (
    ("admin@demo-towing.example", "Alex Admin", "admin"),
    ("dispatcher@demo-towing.example", "Dana Dispatcher", "dispatcher"),
)
DEMO_ADMIN = DEMO_STAFF[0][0]


async def ensure_demo_tenant(base_url: str) -> tuple[TenantInfo, credentials.Link | None]:
    """The demo tenant, created and filled with sample data the first time; with a fresh
    set-up link for its admin while the admin has no password (no password ships)."""
    tenant = await get_tenant(DEMO_SLUG)
    if tenant is not None:
        # A newer release's migrations reach the demo company at the next start (other
        # companies wait for `patone migrate`, which an operator runs at a rollout).
        await _migrate_demo(tenant)
    if tenant is None:
        try:
            # Turning the demo on asks for this company by name: a purged demo comes back,
            # new (with a new id) and filled with sample data again.
            tenant = await create_tenant(
                DEMO_SLUG, "Demo Towing & Recovery", plan="enterprise", reuse_purged_slug=True
            )
        except UserError:
            # Another process created it at the same moment.
            tenant = await get_tenant(DEMO_SLUG)
            assert tenant is not None
    known = {u.email for u in await users.list_users(tenant, SYSTEM)}
    for email, name, role in DEMO_STAFF:
        if email not in known:
            with contextlib.suppress(UserError):  # created by a process starting beside us
                await users.create_user(
                    tenant, SYSTEM, {"email": email, "name": name, "role": role}
                )
    summary = await fill_demo_tenant(tenant)
    if summary.filled:
        log.info("demo data created", extra={"summary": str(summary)})
    link = None
    if not await credentials.has_password(tenant, DEMO_ADMIN):
        link = await credentials.issue_setup_link(tenant, SYSTEM, DEMO_ADMIN, base_url=base_url)
    return tenant, link


async def _migrate_demo(tenant: TenantInfo) -> None:
    report = await migrate_tenants(slugs=[tenant.slug])
    for result in report.results:
        if result.status == "migrated":
            log.info("demo company migrated", extra={"applied": result.applied})
        elif result.status == "failed":
            log.error("demo company could not be migrated: %s", result.error)

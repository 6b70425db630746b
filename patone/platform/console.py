"""What a signed-in operator does to tenants, each action logged with who did it.

The platform API calls these; they call the same provisioning functions as `patone tenants ...`,
so there is one path per action, and add the operators' activity log.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from patone.core.common.inputs import Email, Input, Name, parse
from patone.core.identity.credentials import Link
from patone.platform import provisioning
from patone.platform.operators import Operator, record_activity
from patone.settings import get_settings
from patone.tenants.registry import TenantInfo, get_tenant


class FirstAdmin(Input):
    admin_email: Email
    admin_name: Name


@dataclass(frozen=True)
class CreatedTenant:
    tenant: TenantInfo
    admin: dict[str, Any]
    setup_link: Link  # the first admin's one-time set-up link (no password ships)


async def _logged(operator: Operator, action: str, slug: str, **detail: Any) -> None:
    await record_activity(
        action,
        operator_id=operator.id,
        email=operator.email,
        entity="tenant",
        entity_id=slug,
        detail=detail or None,
    )


async def create_tenant(
    operator: Operator,
    *,
    slug: str,
    name: str,
    plan: str,
    admin_email: str,
    admin_name: str,
    domains: list[str] | None = None,
    reuse_purged_slug: bool = False,
) -> CreatedTenant:
    """A new tenant and its first admin (checked before anything is created), who gets a
    one-time set-up link under the company's address."""
    admin = parse(FirstAdmin, {"admin_email": admin_email, "admin_name": admin_name})
    created = await provisioning.create_tenant_with_admin(
        slug,
        name,
        admin_email=admin.admin_email,
        admin_name=admin.admin_name,
        base_url=get_settings().tenant_url_template().replace("{slug}", slug),
        plan=plan,
        domains=domains or (),
        reuse_purged_slug=reuse_purged_slug,
    )
    extra = {"reused_purged_slug": True} if reuse_purged_slug else {}
    await _logged(
        operator, "tenant.created", slug, plan=plan, admin=created.admin["email"], **extra
    )
    return CreatedTenant(tenant=created.tenant, admin=created.admin, setup_link=created.link)


async def suspend_tenant(operator: Operator, slug: str, reason: str) -> TenantInfo:
    tenant = await provisioning.suspend_tenant(slug, reason)
    await _logged(operator, "tenant.suspended", slug, reason=tenant.status_reason)
    return tenant


async def resume_tenant(operator: Operator, slug: str) -> TenantInfo:
    tenant = await provisioning.resume_tenant(slug)
    await _logged(operator, "tenant.resumed", slug)
    return tenant


async def delete_tenant(
    operator: Operator, slug: str, *, grace_days: int, reason: str = ""
) -> TenantInfo:
    tenant = await provisioning.delete_tenant(slug, grace_days, reason)
    await _logged(operator, "tenant.deleted", slug, reason=reason, purge_after=tenant.purge_after)
    return tenant


async def restore_tenant(operator: Operator, slug: str) -> TenantInfo:
    tenant = await provisioning.restore_tenant(slug)
    await _logged(operator, "tenant.restored", slug)
    return tenant


async def purge_tenant(operator: Operator, slug: str, *, force: bool = False) -> None:
    await provisioning.purge_tenant(slug, force=force)
    await _logged(operator, "tenant.purged", slug, force=force)


async def change_plan(operator: Operator, slug: str, plan: str) -> TenantInfo:
    before = await get_tenant(slug)
    tenant = await provisioning.change_plan(slug, plan)
    await _logged(
        operator, "tenant.plan_changed", slug, before=before.plan if before else None, after=plan
    )
    return tenant

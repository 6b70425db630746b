"""Named permissions, the default grants of the four staff roles, and the one check.

Every entry point (GraphQL, admin UI, jobs, plugins) asks `require(actor, permission)`; roles and
their grants are stored per tenant (table `roles`) and seeded from `DEFAULT_GRANTS`. The matrix
is documented in docs/permissions.md, which a test keeps equal to this module.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from patone.core.runtime.errors import UserError

PERMISSIONS: dict[str, str] = {
    "requests.view": "See every service request",
    "requests.view_assigned": "See the requests assigned to oneself (drivers)",
    "requests.view_own": "See the requests one's own API client created (partners)",
    "requests.create": "Create service requests",
    "requests.update": "Change a request's details (location, notes, price, priority)",
    "requests.assign": "Assign and unassign drivers by hand",
    "requests.transition": "Move any request through its states",
    "requests.transition_assigned": "Move one's own assigned requests through their states",
    "requests.cancel": "Cancel requests",
    "offers.respond": "Accept or decline the offers made to oneself (drivers)",
    "customers.view": "See customers, vehicles and memberships",
    "customers.manage": "Create, change and archive customers and vehicles",
    "customers.export": "Export customer data",
    "drivers.view": "See drivers, their status and position",
    "drivers.manage": "Create, change and archive drivers and shifts",
    "service_types.manage": "Change services and prices",
    "users.manage": "Invite, change and deactivate staff users",
    "roles.manage": "Change which permissions each role has",
    "reports.view": "See daily and monthly reports (counts and timings)",
    "reports.revenue": "See the money figures of reports (revenue)",
    "activity.view": "See the activity log",
    "settings.manage": "Change company settings",
    "api_clients.manage": "Create and revoke partners' API clients (OAuth client credentials)",
}

ROLES: dict[str, str] = {
    "admin": "Admin",
    "manager": "Manager",
    "dispatcher": "Dispatcher",
    "driver": "Driver",
}

_DISPATCH = (
    "requests.view",
    "requests.create",
    "requests.update",
    "requests.assign",
    "requests.transition",
    "requests.cancel",
    "customers.view",
    "customers.manage",
    "drivers.view",
)

DEFAULT_GRANTS: dict[str, tuple[str, ...]] = {
    "admin": tuple(PERMISSIONS),
    "manager": (
        *_DISPATCH,
        "customers.export",
        "drivers.manage",
        "service_types.manage",
        "reports.view",
        "reports.revenue",
        "activity.view",
        "users.manage",
    ),
    # Dispatchers read the day's jobs and times, not the company's takings.
    "dispatcher": (*_DISPATCH, "reports.view"),
    "driver": ("requests.view_assigned", "requests.transition_assigned", "offers.respond"),
}


class PermissionDenied(UserError):
    def __init__(self, permission: str) -> None:
        super().__init__(
            "forbidden",
            f"You do not have the permission {permission!r} ({PERMISSIONS[permission]}).",
        )
        self.permission = permission


@dataclass(frozen=True)
class Actor:
    """Who is acting: a staff user, a partner client, a customer or the system itself."""

    kind: str  # "user", "partner", "customer", "system"
    id: str = ""
    role: str | None = None
    permissions: frozenset[str] = field(default_factory=frozenset)
    driver_id: int | None = None  # set when the user is a driver
    allow_list_only: bool = False  # may run only the company's registered GraphQL documents

    def can(self, permission: str) -> bool:
        if permission not in PERMISSIONS:
            raise ValueError(f"unknown permission {permission!r}")
        return self.kind == "system" or permission in self.permissions


SYSTEM = Actor(kind="system", id="system")


def require(actor: Actor, *any_of: str) -> None:
    """Raise `PermissionDenied` unless the actor holds one of these permissions."""
    if not any(actor.can(p) for p in any_of):
        raise PermissionDenied(any_of[0])


def validate_grants(permissions: Iterable[str]) -> list[str]:
    unknown = sorted(set(permissions) - set(PERMISSIONS))
    if unknown:
        raise UserError(
            "invalid_choice", f"unknown permissions: {', '.join(unknown)}", "permissions"
        )
    return sorted(set(permissions))


def matrix_markdown() -> str:
    """The default role x permission matrix as a Markdown table (docs/permissions.md)."""
    header = "| permission | what it allows | " + " | ".join(ROLES.values()) + " |"
    rule = "| --- | --- | " + " | ".join("---" for _ in ROLES) + " |"
    lines = [header, rule]
    for permission, meaning in PERMISSIONS.items():
        marks = " | ".join("yes" if permission in DEFAULT_GRANTS[r] else "-" for r in ROLES)
        lines.append(f"| `{permission}` | {meaning} | {marks} |")
    return "\n".join(lines) + "\n"

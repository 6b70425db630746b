"""The service-request state machine, in one place (FEATURES.md, "Domain facts").

pending → assigned | cancelled
assigned → en_route | pending (driver withdrew, or pre-empted by an emergency) | cancelled
en_route → on_scene | cancelled
on_scene → in_progress | cancelled (e.g. gone on arrival: billable)
in_progress → completed | cancelled
"""

from __future__ import annotations

from patone.core.runtime.errors import UserError
from patone.core.tables.requests import RequestStatus as S

TRANSITIONS: dict[S, frozenset[S]] = {
    S.pending: frozenset({S.assigned, S.cancelled}),
    S.assigned: frozenset({S.en_route, S.pending, S.cancelled}),
    S.en_route: frozenset({S.on_scene, S.cancelled}),
    S.on_scene: frozenset({S.in_progress, S.cancelled}),
    S.in_progress: frozenset({S.completed, S.cancelled}),
    S.completed: frozenset(),
    S.cancelled: frozenset(),
}

OPEN = frozenset({S.pending, S.assigned, S.en_route, S.on_scene, S.in_progress})

# Transitions that need a reason code, and the codes people pick from.
REASONS: dict[S, frozenset[str]] = {
    S.cancelled: frozenset(
        {
            "customer_cancelled",
            "gone_on_arrival",
            "duplicate",
            "no_driver_available",
            "unable_to_service",
            "other",
        }
    ),
    S.pending: frozenset({"driver_withdrew", "pre_empted", "reassigned"}),
}

# The timestamp column each state sets when entered.
ENTERED_AT: dict[S, str] = {
    S.assigned: "assigned_at",
    S.en_route: "en_route_at",
    S.on_scene: "on_scene_at",
    S.in_progress: "started_at",
    S.completed: "completed_at",
    S.cancelled: "cancelled_at",
}


class IllegalTransition(UserError):
    def __init__(self, current: str, wanted: str) -> None:
        allowed = ", ".join(sorted(TRANSITIONS[S(current)])) or "none (it is final)"
        super().__init__(
            "illegal_transition",
            f"A request that is {current} cannot become {wanted}; allowed next: {allowed}.",
            "status",
        )


def check_transition(current: str, wanted: str, reason_code: str = "") -> None:
    """Raise a clear error unless `current → wanted` is legal with this reason code."""
    try:
        target = S(wanted)
    except ValueError:
        raise UserError("invalid_choice", f"{wanted!r} is not a request status", "status") from None
    if target not in TRANSITIONS[S(current)]:
        raise IllegalTransition(current, wanted)
    codes = REASONS.get(target)
    if codes is not None and reason_code not in codes:
        raise UserError(
            "invalid_choice" if reason_code else "required",
            f"becoming {wanted} needs a reason code, one of: {', '.join(sorted(codes))}",
            "reason_code",
        )

"""How simulated drivers answer offers.

Fixed assumptions, printed with the results, so the figures can't be tuned away: a driver
accepts 85 % of offers, answering 5-60 s after the offer (uniformly); declines take as long.
Offers expire after 30 s, or 10 s for emergencies, so some answers come too late: those count
as no answer.

Each answer is fixed by (seed, driver, offer key), not drawn in sequence, so the engine run and
the greedy baseline get the same answer to the same offer whatever else happened. The offer key
must therefore be one both runs make alike (for example "<request spec id>:<attempt>"), never a
database id.
"""

from __future__ import annotations

from dataclasses import dataclass

from patone.simulation.draws import uniforms

ACCEPT_RATE = 0.85
RESPONSE_DELAY_S = (5.0, 60.0)
OFFER_DEADLINE_S = 30.0
EMERGENCY_OFFER_DEADLINE_S = 10.0


@dataclass(frozen=True)
class DriverBehaviour:
    """The drivers of one simulation run."""

    seed: int

    def respond(self, driver_id: str, offer_id: str) -> tuple[bool, float]:
        """(accepts, seconds after the offer the answer comes)."""
        accept, delay = uniforms(self.seed, "offer", driver_id, offer_id, n=2)
        low, high = RESPONSE_DELAY_S
        return accept < ACCEPT_RATE, low + (high - low) * delay

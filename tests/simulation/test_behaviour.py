"""How simulated drivers answer offers."""

from __future__ import annotations

import statistics

from patone.simulation.behaviour import (
    ACCEPT_RATE,
    EMERGENCY_OFFER_DEADLINE_S,
    OFFER_DEADLINE_S,
    RESPONSE_DELAY_S,
    DriverBehaviour,
)


def _answers(seed: int, n: int = 20_000) -> list[tuple[bool, float]]:
    drivers = DriverBehaviour(seed)
    return [drivers.respond(f"drv-{k % 50:03d}", f"req-{k:05d}:1") for k in range(n)]


def test_drivers_accept_85_percent_of_offers_after_5_to_60_seconds() -> None:
    answers = _answers(1)
    accepted = [after for yes, after in answers if yes]
    declined = [after for yes, after in answers if not yes]
    assert abs(len(accepted) / len(answers) - ACCEPT_RATE) < 0.01
    low, high = RESPONSE_DELAY_S
    for delays in (accepted, declined):  # declines take their time too
        assert low <= min(delays) and max(delays) <= high
        assert abs(statistics.fmean(delays) - (low + high) / 2) < 1.0
    on_time = sum(after <= OFFER_DEADLINE_S for _, after in answers) / len(answers)
    assert abs(on_time - (OFFER_DEADLINE_S - low) / (high - low)) < 0.02


def test_the_same_offer_gets_the_same_answer_in_every_run_with_the_seed() -> None:
    assert _answers(1, 500) == _answers(1, 500)
    assert _answers(1, 500) != _answers(2, 500)
    drivers = DriverBehaviour(1)
    assert drivers.respond("drv-001", "req-00001:1") != drivers.respond("drv-002", "req-00001:1")


def test_emergency_offers_expire_sooner() -> None:
    assert EMERGENCY_OFFER_DEADLINE_S == 10 < OFFER_DEADLINE_S == 30

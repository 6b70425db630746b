"""A short simulation through the real engine: every figure reported, for both runs."""

from __future__ import annotations

import json
import statistics
from dataclasses import replace
from pathlib import Path

import pytest
from rich.console import Console

from patone.core.db import engine
from patone.simulation.simulate import FIGURES, Options, assignment_bound, simulate

KEYS = {
    "auto_assigned_within_2min",
    "emergency_offer_p50_s",
    "emergency_offer_p99_s",
    "load_spread",
    "travel_time_vs_greedy",
    "eta_mae_min",
}


async def _simulation_companies() -> int:
    rows = await engine.fetch("SELECT count(*) AS n FROM platform.tenants WHERE slug LIKE 'sim-%'")
    return int(rows[0]["n"])


async def test_a_short_run_reports_every_figure_beside_the_baseline(tmp_path: Path) -> None:
    before = await _simulation_companies()
    out, chart = tmp_path / "figures.json", tmp_path / "chart.png"
    console = Console(record=True, width=120)
    result = await simulate(
        Options(drivers=6, requests=24, hours=1.0, seed=3, out=out, chart=chart), console
    )

    assert set(result) >= KEYS and set(result["baseline"]) >= KEYS
    written = json.loads(out.read_text())
    assert written["auto_assigned_within_2min"] == result["auto_assigned_within_2min"]
    assert written["assumptions"]["requests"] == 24
    assert written["assumptions"]["emergencies"] == 1  # 5 % of 24, rounded
    for run in (result, result["baseline"]):
        assert 0 <= run["auto_assigned_within_2min"] <= 1
        assert run["completed"] > 0
        assert run["emergency_offer_p99_s"] is not None  # the emergency was offered
        assert run["eta_mae_min"] is not None and run["eta_mae_min"] >= 0
        # The load spread is made of each full-shift driver's jobs, listed beside it.
        full = run["full_shift_jobs"]
        assert 1 <= len(full) <= 6 and sum(full) <= run["completed"]
        mean = statistics.fmean(full)
        assert run["load_spread"] == pytest.approx(max(abs(n - mean) for n in full) / mean)
        # Beside it, the least any split of those jobs could read, and the counts' range.
        assert 0 <= run["load_spread_floor"] <= run["load_spread"]
        assert run["full_shift_job_range"] == max(full) - min(full)
        assert run["preempted"] >= 0 and run["preempted"] == int(run["preempted"])
        # Beside each driver's jobs, the offers they were sent: at least one per job.
        offers = run["full_shift_offers"]
        assert len(offers) == len(full)
        assert all(sent >= done for sent, done in zip(offers, full, strict=True))
    assert result["baseline"]["travel_time_vs_greedy"] == 0.0
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = console.export_text()
    assert "accept 85% of offers after 5-60 s" in text
    assert "a what-if, not comparable" not in text
    assert written["assumptions"]["engine_deadlines_changed"] is None
    for _key, label, *_ in FIGURES:
        assert label in text
    assert await _simulation_companies() == before  # both companies purged


async def test_several_seeds_report_each_seed_and_their_means(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    console = Console(record=True, width=160)
    result = await simulate(
        Options(drivers=4, requests=10, hours=0.5, seeds=(1, 2), out=out, history_days=0),
        console,
    )

    assert [run["assumptions"]["seed"] for run in result["runs"]] == [1, 2]
    for summary, runs in (
        (result, result["runs"]),
        (result["baseline"], [run["baseline"] for run in result["runs"]]),
    ):
        assert set(summary) >= KEYS
        for key in KEYS:
            values = [run[key] for run in runs if run[key] is not None]
            if not values:  # e.g. no emergency offered in so short a run
                assert summary[key] is None and summary["range"][key] is None
                continue
            assert summary[key] == pytest.approx(statistics.fmean(values))
            assert summary["range"][key] == [min(values), max(values)]
    written = json.loads(out.read_text())
    assert written["seeds"] == [1, 2]
    assert written["load_spread"] == pytest.approx(result["load_spread"])
    text = console.export_text()
    assert "City seed 1" in text and "City seed 2" in text
    assert "Means over seeds 1, 2" in text


async def test_with_the_clock_frozen_a_run_repeats_exactly() -> None:
    """Business time standing still while the engine works, the same seed and code give the
    same figures whatever else the machine is doing: settings can be compared run against run."""
    options = Options(drivers=5, requests=14, hours=0.75, seed=4, baseline=False, history_days=0)
    console = Console(record=True, width=120)
    frozen = replace(options, frozen_clock=True)
    first = await simulate(frozen, console)
    second = await simulate(frozen, Console(width=120))

    figures = [key for key, *_ in FIGURES]
    assert [first[k] for k in figures] == [second[k] for k in figures]
    assert first["full_shift_jobs"] == second["full_shift_jobs"]
    assert first["completed"] > 0 and first["assumptions"]["frozen_clock"] is True
    assert "Business time stands still while the engine works" in console.export_text()


async def test_engine_deadlines_off_the_fixed_ones_are_called_a_what_if() -> None:
    console = Console(record=True, width=160)
    result = await simulate(
        Options(
            drivers=3,
            requests=6,
            hours=0.25,
            seed=5,
            baseline=False,
            history_days=0,
            frozen_clock=True,
            engine_settings={"offer_seconds": 60},
        ),
        console,
    )
    assert result["assumptions"]["engine_deadlines_changed"] == "60 s, 10 s for emergencies"
    text = " ".join(console.export_text().split())  # as one line, however the console wrapped
    assert "The engine's offers last 60 s, 10 s for emergencies here" in text
    assert "its offers lasting 60 s, 10 s for emergencies" in text


def test_the_bound_on_two_minute_assignment_follows_the_offer_deadline() -> None:
    """Drivers answer after 5-60 s: with 30 s offers about 39 % are accepted in time and four
    fit in two minutes (about 86 %); with 60 s offers every answer comes in time, and a decline
    leaves time for a second offer (about 99 %)."""
    fixed = assignment_bound(1, 0.0, trials=4000)
    longer = assignment_bound(1, 0.0, trials=4000, deadlines=(60.0, 10.0))
    assert 0.83 < fixed < 0.89
    assert 0.97 < longer <= 1.0

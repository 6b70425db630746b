"""A short simulation through the real engine: every figure reported, for both runs."""

from __future__ import annotations

import json
import statistics
from dataclasses import replace
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pytest
from rich.console import Console

from patone.core.runtime.db import engine
from patone.simulation.runner import SHIFT_HOURS
from patone.simulation.simulate import (
    FIGURES,
    Options,
    assignment_bound,
    chart_figure,
    chart_title,
    simulate,
)
from tests.simulation.runs import made_run

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
        assert run["preempted"] >= 0 and run["preempted"] == int(run["preempted"])
        # An hour is shorter than a shift: no load spread to measure (`test_runner.py`).
        assert run["full_shift_jobs"] == [] and run["load_spread"] is None
    assert result["baseline"]["travel_time_vs_greedy"] == 0.0
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = console.export_text()
    assert "accept 85% of offers after 5-60 s" in text
    assert "a what-if, not comparable" not in text
    assert written["assumptions"]["engine_deadlines_changed"] is None
    for _key, label, *_ in FIGURES:
        assert label in text
    assert "Load spread: not enough full shifts to measure (the 1 h run is shorter than" in text
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
    text = console.export_text()
    assert "Business time stands still while the engine works" in text
    # No baseline ran: the table shows the engine's column alone, not a copy as "greedy".
    header = next(line for line in text.splitlines() if "figure" in line and "engine" in line)
    assert "greedy" not in header


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


def _tick_values(axis: Any) -> list[float]:
    low, high = axis.get_view_interval()
    return [tick for tick in axis.get_ticklocs() if low <= tick <= high]


def test_the_chart_is_titled_and_labelled_as_the_table_with_whole_job_counts() -> None:
    ours = made_run(SHIFT_HOURS + 4, whole_run=[2, 1, 1, 2, 1])
    greedy = made_run(SHIFT_HOURS + 4, whole_run=[0, 2, 1, 3, 1])
    title = "Dispatch simulation, seed 3: 5 drivers, 7 requests over 12 h"
    figure = chart_figure(ours, greedy, title)
    left, right = figure.axes
    assert figure.get_suptitle() == title
    for axes in (left, right):
        assert [t.get_text() for t in axes.get_legend().get_texts()] == ["engine", "greedy"]
    # Jobs and drivers are whole: 0, 1, 2, 3, never 0.25 or 1.75.
    for axis in (right.yaxis, right.xaxis):
        assert all(tick == int(tick) for tick in _tick_values(axis))
    assert len(_tick_values(right.yaxis)) >= 3
    plt.close(figure)

    alone = chart_figure(ours, None, title)  # --no-baseline: the engine alone, once
    assert [t.get_text() for t in alone.axes[0].get_legend().get_texts()] == ["engine"]
    plt.close(alone)


def test_the_chart_of_a_run_shorter_than_a_shift_says_why_it_shows_no_load() -> None:
    short = made_run(2.0, whole_run=[0, 1, 6])
    figure = chart_figure(short, short, "Dispatch simulation, seed 1: 3 drivers")
    texts = " ".join(t.get_text() for t in figure.axes[1].texts).replace("\n", " ")
    assert "not enough full shifts to measure (the 2 h run is shorter than one 8 h shift)" in texts
    plt.close(figure)


def test_the_chart_title_names_the_seed_and_the_settings() -> None:
    options = Options(
        drivers=50, hours=12, seed=4, frozen_clock=True, engine_settings={"offer_seconds": 60}
    )
    assert chart_title(options, 339) == (
        "Dispatch simulation, seed 4: 50 drivers, 339 requests over 12 h; "
        'engine settings {"offer_seconds": 60}; clock frozen'
    )

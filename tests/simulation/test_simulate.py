"""A short simulation through the real engine: every figure reported, for both runs."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console

from patone.core.db import engine
from patone.simulation.simulate import FIGURES, Options, simulate

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
    assert result["baseline"]["travel_time_vs_greedy"] == 0.0
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = console.export_text()
    assert "accept 85% of offers after 5-60 s" in text
    for _key, label, *_ in FIGURES:
        assert label in text
    assert await _simulation_companies() == before  # both companies purged

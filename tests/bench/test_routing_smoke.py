"""The route optimisation benchmark runs end to end in its smoke mode: every plan checked
(nothing lost, skills and fixed drivers kept, schedules adding up) and its table printed."""

from __future__ import annotations

from pathlib import Path

from tests.bench.smoke import run_smoke


def test_routing_smoke(tmp_path: Path) -> None:
    needles = (
        "OR-Tools against greedy nearest-available, same instances",
        "1x5",
        "10x20",
        "30x60",
        "60x80",
        "summary: driving below greedy nearest-available, worst size of the re-plans",
        "a driver's 5 queued jobs p99",
    )
    data = run_smoke("routing.py", tmp_path, needles, timeout=120)
    sizes = {row["size"]: row for row in data["sizes"]}
    assert list(sizes) == ["1x5", "10x20", "30x60", "60x80"]
    for row in sizes.values():
        assert row["or_tools"]["unassigned"] == row["greedy"]["unassigned"] == 0
        assert row["or_tools"]["solve_ms"]["count"] == row["instances"] > 0
        # The plan never scores worse than greedy: it is greedy's when the solver can't beat it.
        assert row["objective_better_pct"] >= 0
    for size in ("10x20", "30x60", "60x80"):
        assert sizes[size]["time_limit_s"] == 0.2
        assert sizes[size]["or_tools"]["solve_ms"]["max"] < 2000

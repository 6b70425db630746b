"""The simulator's runs: the figures made from a run's counts, and companies that no other
process works for."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from patone.simulation.runner import SHIFT_HOURS, even_split_spread
from patone.simulation.simulate import FIGURES, Options, simulate
from tests.demo_product import demo_env, serving, stop
from tests.simulation.runs import made_run
from tests.test_embedded import _free_port


def test_the_most_even_split_of_whole_jobs_is_the_floor_of_the_load_spread() -> None:
    assert even_split_spread([8] * 40) == 0.0
    assert even_split_spread([9, 7] * 20) == 0.0  # 320 jobs split evenly: 8 each
    assert even_split_spread([7, 8]) == pytest.approx(0.5 / 7.5)
    # 315 jobs among 40 drivers (mean 7.875): at best 35 at 8 and 5 at 7, 11 % below the mean.
    assert even_split_spread([7] * 7 + [8] * 31 + [9] * 2) == pytest.approx(0.875 / 7.875)
    # 311 jobs (mean 7.775): 9 at 7 and 31 at 8 is within 10 %.
    assert even_split_spread([7] * 9 + [8] * 31) == pytest.approx(0.775 / 7.775)
    assert even_split_spread([7] * 9 + [8] * 31) < 0.10
    assert even_split_spread([]) is None and even_split_spread([0, 0]) is None


def test_load_spread_is_measured_among_the_drivers_who_worked_a_whole_shift() -> None:
    run = made_run(SHIFT_HOURS + 4, whole_run=[8, 7, 9, 8], early=(1, 12))
    figures = run.figures()
    assert run.full_shift_jobs() == [8, 7, 9, 8]  # not the early shift's
    assert figures["load_spread"] == pytest.approx(1 / 8)
    assert figures["load_spread_floor"] == 0.0 and figures["full_shift_job_range"] == 2


def test_a_run_shorter_than_a_shift_has_no_load_spread_to_measure() -> None:
    """Two hours: each driver does a job or none, where one job more read as 540 % off the
    mean."""
    run = made_run(2.0, whole_run=[0] * 30 + [1] * 8 + [6])
    figures = run.figures()
    assert run.full_shift_jobs() == [] and run.full_shift_offers() == []
    assert figures["load_spread"] is None
    assert figures["load_spread_floor"] is None and figures["full_shift_job_range"] is None


SEED = 7919  # the run's companies are `sim-7919-ours-...` and `sim-7919-greedy-...`


def _figures(result: dict[str, object]) -> list[object]:
    keys = [key for key, *_ in FIGURES]
    baseline = result["baseline"]
    assert isinstance(baseline, dict)
    return [result[k] for k in keys] + [baseline[k] for k in keys]


async def test_a_server_on_the_same_data_leaves_the_simulations_companies_alone(
    tmp_path: Path,
) -> None:
    """`patone serve` (relay, scheduler) and `patone worker` on the same database and Redis
    run no job of the simulation's companies, and its figures are those of a run alone."""
    options = Options(
        drivers=4, requests=10, hours=0.5, seed=SEED, history_days=0, frozen_clock=True
    )
    alone = await simulate(options, Console(width=160))

    env = demo_env(_free_port(), DEMO_TENANT="false", LOG_LEVEL="INFO")
    worker_path = tmp_path / "worker.log"
    with serving(env, tmp_path / "serve.log") as serve_log, worker_path.open("w+") as worker_log:
        # At DEBUG the worker logs every message it receives, with its tenant's slug.
        worker = subprocess.Popen(
            [sys.executable, "-m", "patone", "worker", "--threads", "2"],
            env={**env, "LOG_LEVEL": "DEBUG"},
            stdout=worker_log,
            stderr=subprocess.STDOUT,
        )
        try:
            beside = await simulate(options, Console(width=160))
        finally:
            stop(worker)
        serve_log.seek(0)
        worker_log.seek(0)
        logs = serve_log.read() + worker_log.read()

    assert "Received message" in logs or "worker started" in logs  # the worker did run
    assert f"sim-{SEED}-" not in logs
    assert _figures(beside) == _figures(alone)

"""Runs made by hand, for the figures and charts made from a run's counts."""

from __future__ import annotations

from patone.simulation.demand import DriverSpec
from patone.simulation.runner import Driver, Run, driver_actor


def made_run(hours: float, whole_run: list[int], early: tuple[int, ...] = ()) -> Run:
    """A run's drivers with these job counts: `whole_run` worked all of it, `early` its first
    half."""
    run = Run(strategy="scored", hours=hours)
    for n, (done, end) in enumerate(
        [(jobs, hours * 3600) for jobs in whole_run] + [(jobs, hours * 1800) for jobs in early]
    ):
        spec = DriverSpec(f"drv-{n:03d}", f"Driver {n}", (52.5, 13.4), 0.0, end, ("tow",))
        run.drivers[n] = Driver(spec, n, driver_actor(n), spec.home, jobs_done=done, offers=done)
    return run

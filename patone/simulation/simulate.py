"""`patone simulate`: the engine and the greedy baseline on the same city, demand and seed.

Prints the fixed assumptions, then each figure side by side with the baseline and the goal;
writes the figures as JSON (`--out`) and a chart of assignment times and jobs per driver.
With several seeds (`--seeds 1,2,3`) each seed is its own city, demand and drivers, run one
after the other; the figures are then their means, with the lowest and highest beside them:
one seed's run is one draw of a noisy process (a job more or less for one driver moves the load
spread by 13 points).
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from patone.plugins import config as plugins
from patone.plugins.manager import PluginManager
from patone.plugins.secrets import SecretBox
from patone.simulation import behaviour as behaviour_model
from patone.simulation.behaviour import DriverBehaviour
from patone.simulation.city import NOISE_CV, PEAK_FACTOR, City
from patone.simulation.demand import (
    TARGET_PEAK_UTILISATION,
    emergencies_for,
    generate_demand,
    generate_fleet,
    peak_utilisation,
    size_demand_for_utilisation,
)
from patone.simulation.maps_plugin import SimulatedMaps
from patone.simulation.runner import (
    ASSIGNED_WITHIN_S,
    SHIFT_HOURS,
    START,
    Run,
    Simulation,
    run_in_new_company,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# (key, label, goal, seed's bar, better when lower)
FIGURES: list[tuple[str, str, str, str, bool]] = [
    ("auto_assigned_within_2min", "auto-assigned within 2 min", ">= 95 %", "80 %", False),
    ("emergency_offer_p50_s", "emergency request-to-offer p50 (s)", "", "", True),
    ("emergency_offer_p99_s", "emergency request-to-offer p99 (s)", "< 1 s", "30 s", True),
    ("load_spread", "load spread (max dev. from mean)", "<= 10 %", "15 %", True),
    ("load_spread_floor", "load spread of the most even split", "", "", True),
    ("full_shift_job_range", "jobs, busiest minus idlest driver", "", "", True),
    ("travel_time_min", "mean travel to scene (min)", "", "", True),
    ("travel_time_vs_greedy", "travel time vs greedy", "<= -20 %", "-15 %", True),
    ("eta_mae_min", "ETA mean absolute error (min)", "<= 3", "5", True),
    ("wait_to_arrival_min", "mean wait, call to arrival (min)", "", "", True),
    ("offers_per_request", "offers per request", "", "", True),
    ("preempted", "accepted jobs taken back for an emergency", "", "", True),
    ("completed", "jobs completed", "", "", False),
]
PERCENT = {"auto_assigned_within_2min", "load_spread", "load_spread_floor", "travel_time_vs_greedy"}


@dataclass(frozen=True)
class Options:
    drivers: int = 50
    requests: int | None = None  # None: sized to keep the fleet ~70 % busy at peak
    hours: float = 12.0
    seed: int = 1
    out: Path | None = None
    chart: Path | None = None
    keep: bool = False
    engine_settings: dict[str, Any] | None = None  # dispatch settings the engine's run uses
    baseline: bool = True  # also run the greedy baseline
    history_days: int = 7  # earlier days of calls the company has on record
    seeds: tuple[int, ...] = ()  # several seeds: each run in turn, the means reported
    frozen_clock: bool = False  # business time stands still while the engine works


def _runtime(city: City) -> plugins.PluginRuntime:
    manager = PluginManager(load_entry_points=False)
    manager.register(SimulatedMaps(city))
    return plugins.PluginRuntime(manager=manager, box=SecretBox("simulation"))


def _format(key: str, value: float | None) -> str:
    if value is None:
        return "-"
    if key in PERCENT:
        return f"{value * 100:+.1f} %" if key == "travel_time_vs_greedy" else f"{value * 100:.1f} %"
    if key in ("completed", "full_shift_job_range", "preempted"):
        return f"{value:.0f}" if value == round(value) else f"{value:.1f}"
    return f"{value:.2f}"


def results(ours: Run, greedy: Run) -> dict[str, Any]:
    """The figures of both runs in the shape `--out` writes (docs/dispatch.md, "The simulator")."""
    mine: dict[str, Any] = {**ours.figures()}
    theirs: dict[str, Any] = {**greedy.figures()}
    a, b = mine["travel_time_min"], theirs["travel_time_min"]
    mine["travel_time_vs_greedy"] = a / b - 1 if a is not None and b else None
    theirs["travel_time_vs_greedy"] = 0.0 if b else None
    # What the load spread is made of: each full-shift driver's jobs.
    mine["full_shift_jobs"] = ours.full_shift_jobs()
    theirs["full_shift_jobs"] = greedy.full_shift_jobs()
    mine["full_shift_offers"] = ours.full_shift_offers()
    theirs["full_shift_offers"] = greedy.full_shift_offers()
    return {**mine, "baseline": theirs}


async def simulate(options: Options, console: Console | None = None) -> dict[str, Any]:
    """Run both, print the comparison, write the files; returns the result dictionary. With
    several seeds, each seed's run in turn (each printed), then their means."""
    console = console or Console()
    if len(options.seeds) == 1:
        options = replace(options, seed=options.seeds[0], seeds=())
    if not options.seeds:
        return await _simulate_seed(options, console)
    runs = []
    for seed in options.seeds:
        chart_path = options.chart
        if chart_path is not None:
            chart_path = chart_path.with_name(f"{chart_path.stem}-seed{seed}{chart_path.suffix}")
        runs.append(
            await _simulate_seed(
                replace(options, seed=seed, seeds=(), out=None, chart=chart_path), console
            )
        )
    result = over_seeds(runs)
    _seeds_table(console, result)
    _write(options.out, result, console)
    return result


def over_seeds(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Several seeds' results in one: each figure's mean at the top level (the baseline's under
    `baseline`, as for one seed), its lowest and highest under `range`, each seed's own result
    under `runs`."""

    def means(results: list[dict[str, Any]]) -> dict[str, Any]:
        summary: dict[str, Any] = {"range": {}}
        for key, *_ in FIGURES:
            values = [r[key] for r in results if r.get(key) is not None]
            summary[key] = statistics.fmean(values) if values else None
            summary["range"][key] = [min(values), max(values)] if values else None
        return summary

    return {
        **means(list(runs)),
        "baseline": means([r["baseline"] for r in runs]),
        "seeds": [r["assumptions"]["seed"] for r in runs],
        "runs": list(runs),
    }


def _write(out: Path | None, result: dict[str, Any], console: Console) -> None:
    if out is not None:
        out.write_text(json.dumps(result, indent=2, default=str) + "\n")
        console.print(f"figures written to {out}")


async def _simulate_seed(options: Options, console: Console) -> dict[str, Any]:
    """One seed: the engine and (unless left out) the baseline, printed and written."""
    city = City.build(options.seed)
    fleet = generate_fleet(city, options.seed, options.drivers, options.hours)
    requests = options.requests or size_demand_for_utilisation(
        city, fleet, options.seed, options.hours, START
    )
    demand = generate_demand(city, options.seed, requests, options.hours, START)
    history = [
        (day + timedelta(seconds=spec.at_s), spec)
        for back in range(1, options.history_days + 1)
        for day in [START - timedelta(days=back)]
        for spec in generate_demand(city, options.seed * 1000 + back, requests, options.hours, day)
    ]
    used = peak_utilisation(city, fleet, demand, START)
    _assumptions(console, options, requests, used, len(demand))
    try:
        previous: plugins.PluginRuntime | None = plugins.get_runtime()
    except RuntimeError:
        previous = None
    plugins.set_runtime(_runtime(city))
    runs: dict[str, Run] = {}
    try:
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f} %"),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            plan = [("ours", "scored"), ("greedy", "nearest")][: 2 if options.baseline else 1]
            for label, strategy in plan:
                task = progress.add_task(f"{label:>6} ({strategy})", total=options.hours * 3600)
                simulation = Simulation(
                    city=city,
                    fleet=fleet,
                    demand=demand,
                    behaviour=DriverBehaviour(options.seed),
                    strategy=strategy,
                    hours=options.hours,
                    on_progress=partial(_advance, progress, task),
                    settings=options.engine_settings if strategy == "scored" else None,
                    history=history,
                    frozen_clock=options.frozen_clock,
                )
                runs[label] = await run_in_new_company(
                    simulation, f"{options.seed}-{label}", options.keep
                )
    finally:
        plugins.set_runtime(previous)
    result = results(runs["ours"], runs.get("greedy") or runs["ours"])
    result["assumptions"] = _assumption_values(options, requests, used)
    result["assumptions"]["auto_assigned_within_2min_bound"] = round(
        assignment_bound(
            options.seed,
            emergencies_for(requests) / max(1, requests),
            deadlines=_engine_deadlines(options),
        ),
        4,
    )
    _table(console, result)
    _write(options.out, result, console)
    if options.chart is not None:
        chart(options.chart, runs["ours"], runs.get("greedy"), chart_title(options, requests))
        console.print(f"chart written to {options.chart}")
    return result


def chart_title(options: Options, requests: int) -> str:
    """What a chart shows, in its title: the seed and the run's settings."""
    title = (
        f"Dispatch simulation, seed {options.seed}: {options.drivers} drivers, "
        f"{requests} requests over {options.hours:g} h"
    )
    if options.engine_settings:
        title += f"; engine settings {json.dumps(options.engine_settings, sort_keys=True)}"
    if options.frozen_clock:
        title += "; clock frozen"
    return title


# The offer deadlines the drivers' behaviour assumes (normal, emergency), in seconds.
FIXED_DEADLINES = (behaviour_model.OFFER_DEADLINE_S, behaviour_model.EMERGENCY_OFFER_DEADLINE_S)


def assignment_bound(
    seed: int,
    emergency_share: float,
    trials: int = 20_000,
    deadlines: tuple[float, float] = FIXED_DEADLINES,
) -> float:
    """The best share of requests an engine making one offer at a time can expect to have
    accepted within two minutes under the drivers' fixed behaviour: a driver always free, offered
    the instant the last offer closed (a decline closes it when it comes, silence at the
    deadline). `deadlines`: (normal, emergency) offer seconds, the fixed ones unless given.
    Estimated over `trials` such requests."""
    behaviour = DriverBehaviour(seed)
    normal, urgent = deadlines
    within = 0
    for trial in range(trials):
        emergency = trial < trials * emergency_share
        deadline = urgent if emergency else normal
        elapsed, attempt = 0.0, 0
        while elapsed <= ASSIGNED_WITHIN_S:
            attempt += 1
            accepts, after = behaviour.respond(f"bound-{trial}", str(attempt))
            if after <= deadline and accepts:
                within += elapsed + after <= ASSIGNED_WITHIN_S
                break
            elapsed += min(after, deadline)
    return within / trials


def _advance(progress: Progress, task: TaskID, seconds: float) -> None:
    progress.update(task, completed=seconds)


def _engine_deadlines(options: Options) -> tuple[float, float]:
    """The engine's offer deadlines (normal, emergency): the fixed ones unless
    `--engine-settings` moves them."""
    settings = options.engine_settings or {}
    normal, urgent = FIXED_DEADLINES
    return (
        float(settings.get("offer_seconds", normal)),
        float(settings.get("emergency_offer_seconds", urgent)),
    )


def _changed_deadlines(options: Options) -> str:
    """The engine's offer deadlines where `--engine-settings` moved them off the fixed ones
    ("60 s, 10 s for emergencies"), or "" where it did not."""
    normal, urgent = _engine_deadlines(options)
    if (normal, urgent) == FIXED_DEADLINES:
        return ""
    return f"{normal:g} s, {urgent:g} s for emergencies"


def _assumption_values(options: Options, requests: int, used: float) -> dict[str, Any]:
    return {
        "drivers": options.drivers,
        "requests": requests,
        "hours": options.hours,
        "seed": options.seed,
        "emergencies": emergencies_for(requests),
        "accept_rate": behaviour_model.ACCEPT_RATE,
        "response_delay_s": list(behaviour_model.RESPONSE_DELAY_S),
        "offer_deadline_s": behaviour_model.OFFER_DEADLINE_S,
        "emergency_offer_deadline_s": behaviour_model.EMERGENCY_OFFER_DEADLINE_S,
        "engine_deadlines_changed": _changed_deadlines(options) or None,
        "travel_noise_cv": NOISE_CV,
        "peak_speed_factor": PEAK_FACTOR,
        "peak_utilisation_estimate": round(used, 3),
        "target_peak_utilisation": TARGET_PEAK_UTILISATION,
        "history_days": options.history_days,
        "frozen_clock": options.frozen_clock,
        "greedy_baseline": options.baseline,
        "shift_hours": SHIFT_HOURS,
    }


def _assumptions(console: Console, options: Options, requests: int, used: float, n: int) -> None:
    low, high = behaviour_model.RESPONSE_DELAY_S
    console.print(
        f"[bold]City[/bold] seed {options.seed}: {options.drivers} drivers, {n} requests "
        f"({emergencies_for(requests)} emergencies) over {options.hours:g} h from "
        f"{START:%a %H:%M} (Europe/Berlin)."
    )
    console.print(
        f"Fixed: drivers accept {behaviour_model.ACCEPT_RATE:.0%} of offers after "
        f"{low:g}-{high:g} s; offers last {behaviour_model.OFFER_DEADLINE_S:g} s "
        f"({behaviour_model.EMERGENCY_OFFER_DEADLINE_S:g} s for emergencies); true trip = "
        f"estimate x log-normal (CV {NOISE_CV:.0%}); peak speeds {PEAK_FACTOR:g}x free flow; "
        f'"assigned" = accepted by a driver within {ASSIGNED_WITHIN_S} s.'
    )
    if options.history_days:
        console.print(
            f"The company's last {options.history_days} days of calls (the same demand model, "
            "other seeds) are on record, as a working company's would be."
        )
    changed = _changed_deadlines(options)
    if changed:
        console.print(
            f"[red]The engine's offers last {changed} here (--engine-settings), not the fixed "
            "deadlines:[/red] a what-if, not comparable with the baseline."
        )
    if options.frozen_clock:
        console.print(
            "[yellow]Business time stands still while the engine works[/yellow] "
            "(--frozen-clock): the run repeats exactly; the engine's own time is not counted, "
            "so the emergency request-to-offer times read 0."
        )
    note = "" if used <= TARGET_PEAK_UTILISATION * 1.15 else " [red](over the target)[/red]"
    console.print(
        f"Demand keeps the fleet about {used:.0%} busy at peak "
        f"(target {TARGET_PEAK_UTILISATION:.0%}){note}."
    )


def _table(console: Console, result: dict[str, Any]) -> None:
    greedy = result["assumptions"]["greedy_baseline"]
    table = Table(
        title="Dispatch simulation: the engine against greedy nearest-driver"
        if greedy
        else "Dispatch simulation: the engine (no greedy baseline run)"
    )
    columns = ("figure", "engine", "greedy", "goal", "seed's bar")
    for column in columns if greedy else [c for c in columns if c != "greedy"]:
        table.add_column(column, justify="left" if column == "figure" else "right")
    for key, label, goal, bar, _lower in FIGURES:
        theirs = [_format(key, result["baseline"].get(key))] if greedy else []
        table.add_row(label, _format(key, result.get(key)), *theirs, goal, bar)
    console.print(table)
    if not result["full_shift_jobs"]:
        console.print(f"Load spread: {_no_load_spread(result['assumptions']['hours'])}.")
    bound = result["assumptions"]["auto_assigned_within_2min_bound"]
    changed = result["assumptions"]["engine_deadlines_changed"]
    console.print(
        f"An engine making one offer at a time can expect at best {bound:.1%} accepted within "
        "2 minutes under these drivers' behaviour"
        + (f", its offers lasting {changed}" if changed else "")
        + " (a free driver offered the instant the last offer closed; one run of a few hundred "
        "requests varies by a few points)."
    )


def _seeds_table(console: Console, result: dict[str, Any]) -> None:
    seeds = ", ".join(str(seed) for seed in result["seeds"])
    greedy = result["runs"][0]["assumptions"]["greedy_baseline"]
    table = Table(title=f"Means over seeds {seeds} (lowest to highest in brackets)")
    columns = ("figure", "engine", "greedy", "goal", "seed's bar")
    for column in columns if greedy else [c for c in columns if c != "greedy"]:
        table.add_column(column, justify="left" if column == "figure" else "right")
    for key, label, goal, bar, _lower in FIGURES:
        theirs = [_with_range(key, result["baseline"])] if greedy else []
        table.add_row(label, _with_range(key, result), *theirs, goal, bar)
    console.print(table)


def _no_load_spread(hours: float) -> str:
    """Why a run has no load spread to show."""
    if hours < SHIFT_HOURS:
        return (
            f"not enough full shifts to measure (the {hours:g} h run is shorter than one "
            f"{SHIFT_HOURS:g} h shift)"
        )
    return "not enough full shifts to measure (no driver worked the whole run)"


def _with_range(key: str, summary: dict[str, Any]) -> str:
    span = summary["range"].get(key)
    if span is None:
        return _format(key, summary.get(key))
    low, high = (_format(key, value) for value in span)
    return f"{_format(key, summary.get(key))} ({low} to {high})"


def chart(path: Path, ours: Run, greedy: Run | None, title: str) -> None:
    """Write `chart_figure` as a PNG."""
    import matplotlib.pyplot as plt

    figure = chart_figure(ours, greedy, title)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def chart_figure(ours: Run, greedy: Run | None, title: str) -> Figure:
    """Assignment times (CDF) and jobs per full-shift driver, the engine beside greedy (when
    it ran), labelled as the table's columns are."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    runs = [(ours, "engine", "tab:blue")]
    if greedy is not None:
        runs.append((greedy, "greedy", "tab:orange"))
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    figure.suptitle(title)
    for run, label, colour in runs:
        minutes = sorted(
            (j.accepted_at - j.created_at).total_seconds() / 60
            for j in run.jobs.values()
            if j.accepted_at is not None
        )
        shares = [(i + 1) / max(1, len(run.jobs)) for i in range(len(minutes))]
        left.step(minutes, shares, where="post", label=label, color=colour)
    left.axvline(ASSIGNED_WITHIN_S / 60, color="grey", linestyle=":")
    left.set(xlabel="minutes from call to a driver's accept", ylabel="share of requests")
    left.set_xlim(0, 10)
    left.set_ylim(0, 1.02)
    left.legend()
    right.set(xlabel="full-shift drivers", ylabel="jobs completed")
    # Whole drivers and whole jobs: no tick between two.
    right.xaxis.set_major_locator(MaxNLocator(integer=True))
    right.yaxis.set_major_locator(MaxNLocator(integer=True))
    if not ours.full_shift_jobs():
        right.text(
            0.5,
            0.5,
            _no_load_spread(ours.hours).replace(" (", "\n("),
            ha="center",
            va="center",
            transform=right.transAxes,
        )
        right.set_yticks([])
        right.set_xticks([])
    else:
        width = 0.8 / len(runs)
        for n, (run, label, colour) in enumerate(runs):
            offset = (n - (len(runs) - 1) / 2) * width
            counts = run.full_shift_jobs()
            right.bar(
                [i + 1 + offset for i in range(len(counts))],
                counts,
                width,
                label=label,
                color=colour,
            )
        right.legend()
    figure.tight_layout()
    return figure

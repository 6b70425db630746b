"""What both benchmarks share: percentiles, summary statistics, goal verdicts, console lines."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from rich.console import Console


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass
class Stats:
    count: int
    p50: float
    p90: float
    p95: float
    p99: float
    max: float
    mean: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Stats:
        return cls(
            count=len(values),
            p50=percentile(values, 50),
            p90=percentile(values, 90),
            p95=percentile(values, 95),
            p99=percentile(values, 99),
            max=max(values) if values else math.nan,
            mean=sum(values) / len(values) if values else math.nan,
        )


def verdict(ok: bool | None) -> str:
    if ok is None:
        return "[dim]-[/dim]"
    return "[green]met[/green]" if ok else "[red]missed[/red]"


def with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + database))


def make_console(width: int = 180) -> Console:
    console = Console()
    if not console.is_terminal:
        # CI logs: wide enough that no figure is wrapped across lines.
        console = Console(width=max(console.width, width))
    return console


def phase(console: Console, text: str) -> None:
    console.print(f"[dim]{time.strftime('%H:%M:%S')}[/dim] [bold]{text}[/bold]")

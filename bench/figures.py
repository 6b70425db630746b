"""What both benchmarks share: percentiles, summary statistics, goal verdicts, console lines."""

from __future__ import annotations

import argparse
import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import asyncpg
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


# --- the benchmarks' own database ---------------------------------------------------------------


def role_pattern(prefix: str) -> str:
    """A regex for the roles of a benchmark's tenants (LIKE would treat `_` as a wildcard)."""
    return f"^t_{prefix}_[0-9]+_role$"


async def drop_roles(admin: asyncpg.Connection, prefix: str) -> int:
    """Drop the roles of tenants whose slugs start with `prefix`; returns how many."""
    names = [
        r["rolname"]
        for r in await admin.fetch(
            "SELECT rolname FROM pg_roles WHERE rolname ~ $1 ORDER BY rolname",
            role_pattern(prefix),
        )
    ]
    for start in range(0, len(names), 500):
        chunk = names[start : start + 500]
        await admin.execute("DROP ROLE IF EXISTS " + ", ".join(f'"{n}"' for n in chunk))
    return len(names)


async def reset_database(admin_dsn: str, database: str, prefix: str, create: bool) -> int:
    """Drop the bench database and leftover bench roles; re-create the database if `create`."""
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        dropped = await drop_roles(admin, prefix)
        if create:
            await admin.execute(f'CREATE DATABASE "{database}"')
        return dropped
    finally:
        await admin.close()


def check_names(parser: argparse.ArgumentParser, prefix: str, database: str) -> None:
    """Refuse a tenant prefix or database name that is not a benchmark's own."""
    if not re.fullmatch(r"[a-z][a-z0-9]*", prefix):
        parser.error("--prefix must be lower-case letters and digits, starting with a letter")
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", database) or "bench" not in database:
        # It is dropped at start: refuse names that could be a real database.
        parser.error("--database must be a plain lower-case name containing 'bench'")

"""The positions benchmark runs end to end in its smoke mode: every ping accepted, shown live to
its own company's dispatcher only, written to history, and the summary printed."""

from __future__ import annotations

import os
from pathlib import Path

from tests.bench.smoke import run_smoke


def test_positions_smoke(tmp_path: Path) -> None:
    needles = (
        "baseline: Redis PUBLISH -> SUBSCRIBE",
        "patone: HTTP -> Lua -> pub/sub -> GraphQL ws",
        "accepted pings per second",
        "history rows in Postgres",
        "server (patone serve)",
        "Redis server (shared)",
        "Postgres: the bench database backends",
        "summary: 40 drivers every 1 s",
        "dropped database 'patone_bench_positions_smoke'",
    )
    data = run_smoke("positions.py", tmp_path, needles, "--redis", os.environ["REDIS_URL"])
    assert data["failures"] == []
    assert data["load"]["sent"] == data["load"]["accepted"] == 160
    assert data["history_rows"] == 160
    assert data["leaked_messages"] == 0
    assert data["latency_s"]["count"] == 160 and data["latency_s"]["p99"] > 0
    assert data["baseline_latency_s"]["count"] == 80
    assert data["cpu_percent"]["server"] > 0

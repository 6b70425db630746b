"""The GraphQL board benchmark runs end to end in its smoke mode and prints its summary."""

from __future__ import annotations

from pathlib import Path

from tests.bench.smoke import run_smoke


def test_graphql_board_smoke(tmp_path: Path) -> None:
    needles = (
        "items check: passed",
        "whole JSON identical: yes",
        "isolation: ok",
        "summary: dispatch board, 50 open requests per page, 32 clients",
        "requests/s",
        "latency p50",
        "latency p99",
        "SQL statements per request",
        "transactions per request",
        "server CPU per request",
        "peak RSS of the server process",
        "profile: top 15 by cumulative",
        "profile: top 15 by own time",
        "dropped database 'patone_bench_board_smoke'",
    )
    data = run_smoke("graphql_board.py", tmp_path, needles, "--profile", timeout=300)
    assert data["failures"] == []
    check = data["check"]
    assert check["passed"] is True
    assert check["items"] == 50
    assert check["isolation"] is True

    statements = data["statements"]
    per_request = statements["per_request"]
    assert len(per_request) == 5
    assert min(per_request) > 0
    # The same query costs the same statements every time, and at a smaller page size too.
    assert len(set(per_request)) == 1, per_request
    assert set(statements["page10_per_request"]) == set(per_request)
    assert set(statements["selects_per_request"]) == {statements["selects_per_request"][0]}
    assert statements["selects_per_request"][0] > 0

    for server in ("graphql", "floor"):
        result = data[server]
        assert result["requests"] > 0
        assert result["rps"] > 0
        assert result["errors"] == 0
        assert result["latency"]["p50"] > 0
        assert result["rss_peak"] > 0
        assert result["server_cpu_ms_per_request"] > 0
    assert data["ratio_rps"] > 0
    assert len(data["profile"]["by_cumulative"]) == 15

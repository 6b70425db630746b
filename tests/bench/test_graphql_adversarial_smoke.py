"""The adversarial GraphQL benchmark runs end to end in its smoke mode and prints its table."""

from __future__ import annotations

from pathlib import Path

from tests.bench.smoke import run_smoke


def test_graphql_adversarial_smoke(tmp_path: Path) -> None:
    needles = (
        "time to refuse or plan",
        "fan-out x2, 14 fragments",
        "fragment cycle behind a fan-out of 14",
        "deep nesting, 150 fields",
        "600 aliases",
        "long: 490 x viewer { tenant }",
        "the dispatch board (normal)",
        "summary: 13 documents, slowest refusal or plan",
    )
    data = run_smoke("graphql_adversarial.py", tmp_path, needles, timeout=300)
    assert data["failures"] == []
    cases = {case["name"]: case for case in data["cases"]}
    assert cases["fan-out x2, 40 fragments"]["after"] == "cost_limit_exceeded"
    assert cases["fan-out x2, 40 fragments"]["before"] is None  # the baseline would not finish
    assert cases["fan-out x2, 14 fragments"]["before"] == "planned"  # stock limits let it run
    for case in data["cases"]:
        assert case["after"] == case["expected"]
        assert case["after_ms_median"] > 0

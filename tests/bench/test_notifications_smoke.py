"""The notification benchmark runs end to end in its smoke mode: nothing lost, nothing sent twice
by us, and its summary printed."""

from __future__ import annotations

from pathlib import Path

from tests.bench.smoke import run_smoke


def test_notifications_smoke(tmp_path: Path) -> None:
    needles = (
        "SDK baseline",
        "settled after",
        "by channel: our log and the fake's ledger",
        "summary: 200 notifications (email and SMS), 2 companies, 2 worker processes",
        "throughput, to 99 % final",
        "throughput, to the last final row",
        "delivered (sent or logged)",
        "dead-lettered",
        "duplicates from our side",
        "ambiguous duplicates",
        "lost",
        "event-to-send latency p50 / p99",
        "CPU per notification, our share",
        "machine until 90 % final",
        "dropped database 'patone_bench_notifications_smoke'",
    )
    data = run_smoke("notifications.py", tmp_path, needles)
    assert data["failures"] == []
    assert data["settled"] is True
    assert data["notifications"] == data["expected"] == 200
    assert data["events"] == 100 and data["unpublished_events"] == 0
    assert data["lost"] == 0
    assert data["duplicates_ours"] == 0
    # Every extra copy a provider took followed an ambiguous attempt that our log counted.
    assert data["duplicates_ambiguous"] <= data["ambiguous_attempts"]
    assert data["delivered"] + data["dead"] == 200
    for channel in ("sms", "email"):
        figures_of = data["channels"][channel]
        assert figures_of["rows"] == 100
        assert figures_of["taken"] >= figures_of["statuses"].get("sent", 0)
        assert figures_of["calls"]["ok"] > 0
        assert figures_of["sdk_cpu_ms_per_call"] > 0
    for kind in ("clean", "faulty"):  # both SDK baselines were measured
        assert all(data["sdk_baseline"][kind][ch]["cpu_ms"] > 0 for ch in ("sms", "email"))
    assert data["throughput"] > 0
    assert data["latency_s"]["p99"] > 0
    cpu = data["cpu_ms_per_notification"]
    assert cpu["workers"] > 0 and cpu["sdk"] > 0
    assert data["main_phase"]["rate"] > 0

"""The tenant scale benchmark runs end to end in its smoke mode and prints its summary."""

from __future__ import annotations

import uuid
from pathlib import Path

from tests.bench.smoke import run_smoke


def test_tenant_scale_smoke(tmp_path: Path) -> None:
    # Its own database and slugs: benchmarks run by others at the same time keep theirs.
    run = uuid.uuid4().hex[:8]
    database, prefix = f"patone_bench_smoke_{run}", f"benchsmoke{run}"
    needles = (
        "summary: 20 tenants",
        # Short needles: the summary's columns wrap where its figures are long.
        "provisioning p95",
        "baseline",
        "building a spare",
        "disk per tenant",
        "migrate 20 tenants, one nullable column",
        "migrate 20 tenants, nothing to do",
        "reads warm: random / single p99",
        "RSS after 10 -> all tenants touched",
        "backend memory max, all touched",
        "delete + purge",
        f"dropped database '{database}'",
    )
    data = run_smoke(
        "tenant_scale.py", tmp_path, needles, "--database", database, "--prefix", prefix
    )
    assert data["tenants"] == 20
    assert data["provisioning"]["overall"]["count"] == 20
    assert data["provisioning"]["overall"]["p95"] > 0
    assert data["provisioning"]["goal_path"] == "spare"
    paths = data["provisioning"]["paths"]
    assert paths["spare"]["overall"]["count"] == paths["replay"]["overall"]["count"] == 10
    assert data["provisioning"]["spare_refill"]["count"] == 10
    assert data["disk"]["per_tenant_bytes"] > 0
    assert data["disk"]["tables_per_tenant"] >= 16
    assert data["migrate"]["add_column"]["migrated"] == 20
    assert data["migrate"]["add_column"]["failed"] == 0
    assert data["migrate"]["noop"]["up_to_date"] == 20
    assert data["migrate"]["altered"] == 20
    for phase in ("cold", "warm", "warm, recycling off"):
        reads = data["reads"][phase]
        assert reads["single"]["count"] == reads["random"]["count"] == 200
        assert reads["ratio_p99"] > 0
    for probe in ("recycled", "unbounded", "no cache"):
        memory = data["memory"][probe]
        assert memory["tenants"] == 20
        assert memory["rss_all"] > 0
        assert max(memory["backends_all"]) > 0
    assert data["purge"]["count"] == 5

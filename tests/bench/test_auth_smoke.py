"""The authentication benchmark runs end to end in its smoke mode and prints its summary."""

from __future__ import annotations

import os
from pathlib import Path

from tests.bench.smoke import run_smoke


def test_auth_smoke(tmp_path: Path) -> None:
    needles = (
        "baseline (actor preset)",
        "partner token",
        "staff token (+ role read)",
        "verify, first time (ES256)",
        "revocation check (Redis MGET)",
        "sign-in password check (argon2id)",
        "summary: added per authenticated request p50",
        "dropped database 'patone_bench_auth_smoke'",
    )
    data = run_smoke("auth.py", tmp_path, needles, "--redis", os.environ["REDIS_URL"])
    assert data["requests"] == 200
    for path in ("baseline", "partner", "staff"):
        assert data[path]["count"] == 200 and data[path]["p50"] > 0
    assert data["verify_first"]["p50"] > data["verify_remembered"]["p50"]

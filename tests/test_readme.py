"""The README's tour, run as a newcomer runs it.

`patone serve` as the README starts it, on the embedded default in a new folder; then, in one
shell session beside it (so what a command sets, the next sees), every command of the tour's
shell blocks in order, exactly as written. Only what must differ on a test machine is changed:
the server's port (8000 may be taken), the virtual environment (this one's, as activating it
would), and the two things only the user knows (the password typed at a prompt, the code the
authenticator app shows). Each command's outcome is checked against what the README says it
does; a command added to or changed in the tour fails here until `TOUR` says what it shows.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest

from patone.settings import Settings

README = Path(__file__).parent.parent / "README.md"
OPERATOR_PASSWORD = "Tow-truck horizon 42 at dawn"


def section(text: str, heading: str) -> str:
    """The part of a markdown text under `## heading`, up to the next `## `."""
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def shell_blocks(text: str) -> list[str]:
    return re.findall(r"^```sh\n(.*?)^```", text, re.S | re.M)


def commands(block: str) -> list[str]:
    """A shell block's commands: each line with its backslash continuations; lines that are
    only a comment are not commands."""
    found: list[str] = []
    pending = ""
    for line in block.splitlines():
        pending += line + "\n"
        if line.endswith("\\"):
            continue
        if pending.strip() and not pending.lstrip().startswith("#"):
            found.append(pending.rstrip("\n"))
        pending = ""
    return found


@dataclass
class Ran:
    command: str
    code: int
    out: str
    err: str

    def __str__(self) -> str:
        return f"$ {self.command}\n(exit {self.code})\n{self.out}\n{self.err}"


class Terminal:
    """One bash session with no terminal, the commands' output kept per command."""

    def __init__(self, cwd: Path, env: dict[str, str], scratch: Path) -> None:
        self.cwd, self.env, self.scratch, self.count = cwd, env, scratch, 0
        self.process = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,  # no terminal: a password prompt reads what it is given
        )

    def run(self, command: str, stdin: str = "", timeout: float = 120) -> Ran:
        self.count += 1
        given, out, err = (self.scratch / f"{self.count}.{part}" for part in ("in", "out", "err"))
        given.write_text(stdin)
        assert self.process.stdin is not None and self.process.stdout is not None
        # A group, not a subshell: the variables it sets stay for the next command.
        self.process.stdin.write(f'{{\n{command}\n}} <{given} >{out} 2>{err}\necho "::$?"\n')
        self.process.stdin.flush()
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        assert ready, f"no answer within {timeout} s from: {command}\n{err.read_text()}"
        code = int(self.process.stdout.readline().strip().removeprefix("::"))
        return Ran(command, code, out.read_text(), err.read_text())

    def variable(self, name: str) -> str:
        return self.run(f'printf %s "${name}"').out

    def until_stopped(self, command: str, ready: str) -> Ran:
        """A command that runs until Ctrl+C: run it until it prints `ready` (the test's own
        time-out bounds one that never does), then press Ctrl+C (SIGINT to its process group)
        and wait for it to end."""
        process = subprocess.Popen(
            ["bash", "-c", command],
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        assert process.stdout is not None
        seen: list[str] = []
        try:
            for line in process.stdout:
                seen.append(line)
                if ready in line:
                    break
            os.killpg(process.pid, signal.SIGINT)
            try:
                rest, _ = process.communicate(timeout=60)
            except subprocess.TimeoutExpired as late:
                seen.append(late.output or "")
                raise AssertionError(
                    f"still running 60 s after Ctrl+C: {command}\n" + "".join(seen)
                ) from None
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        return Ran(command, process.returncode, "".join(seen) + rest, "")

    def close(self) -> None:
        """End the session, and whatever a command that did not answer left running."""
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@dataclass
class Tour:
    """What the checks know: the server's port, the terminal, what earlier steps noted."""

    port: int
    terminal: Terminal
    noted: dict[str, str] = field(default_factory=dict)

    def get(self, host: str, path: str) -> httpx.Response:
        """A request to the server as `host` (Python does not send *.localhost to loopback by
        itself, as curl and browsers do)."""
        return httpx.get(
            f"http://127.0.0.1:{self.port}{path}",
            headers={"Host": f"{host}:{self.port}"},
            timeout=10,
        )


Check = Callable[[Ran, Tour], None]


@dataclass
class Step:
    starts: str  # how the README's command begins: a changed tour is noticed
    check: Check
    until: str = ""  # runs until Ctrl+C: ready once its output shows this
    stdin: str = ""
    placeholders: Callable[[Tour], dict[str, str]] | None = None


def ok(*patterns: str) -> Check:
    """Exit 0, and each regular expression (`{port}` standing for the server's) in the output."""

    def check(ran: Ran, tour: Tour) -> None:
        assert ran.code == 0, ran
        for pattern in patterns:
            assert re.search(pattern.replace("{port}", str(tour.port)), ran.out + ran.err), (
                pattern,
                str(ran),
            )

    return check


def answer(ran: Ran) -> Any:
    """The command's output, which is JSON."""
    assert ran.code == 0, ran
    return json.loads(ran.out)


def acme_schema(ran: Ran, tour: Tour) -> None:
    schema = answer(ran)["schema"]
    assert (schema["name"], schema["role"]) == ("t_acme", "t_acme_role"), ran
    assert "service_requests" in schema["tables"]


def no_such_company(ran: Ran, tour: Tour) -> None:
    assert answer(ran)["error"]["code"].lower() == "tenant_not_found", ran


def eventually(condition: Callable[[], bool], seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def acme_suspended(ran: Ran, tour: Tour) -> None:
    ok(r"acme: Acme Towing \[suspended\]")(ran, tour)
    response = None

    def refused() -> bool:
        nonlocal response
        response = tour.get("acme.localhost", "/")
        return response.status_code == 403

    assert eventually(refused), response
    assert response is not None and "invoice 42 unpaid" in response.text


def purged_slug_refused(ran: Ran, tour: Tour) -> None:
    assert ran.code == 1 and "--reuse-purged-slug" in ran.err and "Traceback" not in ran.err, ran


def token_in(name: str) -> Check:
    def check(ran: Ran, tour: Tour) -> None:
        assert ran.code == 0, ran
        assert tour.terminal.variable(name).count(".") == 2, ran  # a JWT

    return check


def dee_reads_the_api(ran: Ran, tour: Tour) -> None:
    data = answer(ran)["data"]
    assert data["viewer"] == {"companyName": "Acme Towing", "role": "dispatcher"}, ran
    assert data["serviceRequests"]["edges"] == []


def client_set(ran: Ran, tour: Tour) -> None:
    assert ran.code == 0, ran
    assert tour.terminal.variable("CLIENT_ID").startswith("pc_"), ran
    assert "shown only now" in ran.err


def partner_token(ran: Ran, tour: Tour) -> None:
    token = answer(ran)
    assert token["token_type"] == "Bearer" and token["access_token"].count(".") == 2, ran
    assert token["scope"] == "requests:read requests:write"


def public_keys(ran: Ran, tour: Tour) -> None:
    keys = answer(ran)["keys"]
    assert keys and all(key["alg"] == "ES256" for key in keys), ran
    tour.noted["kids"] = " ".join(key["kid"] for key in keys)


def new_key_published(ran: Ran, tour: Tour) -> None:
    ok("published now", "signs from")(ran, tour)
    kid = ran.out.split()[3].rstrip(",")
    assert kid not in tour.noted["kids"]
    assert kid in {
        key["kid"] for key in tour.get("localhost", "/.well-known/jwks.json").json()["keys"]
    }


def operator_created(ran: Ran, tour: Tour) -> None:
    ok(r"Operator ops@example\.com \(Olu\) created", "Recovery codes")(ran, tour)
    tour.noted["totp"] = re.findall(r"secret=([A-Z2-7]+)", ran.out)[0]


def operator_signed_in(ran: Ran, tour: Tour) -> None:
    token = answer(ran)
    assert token["token_type"] == "Bearer" and token["access_token"].count(".") == 2, ran


def what_the_user_knows(tour: Tour) -> dict[str, str]:
    return {
        "YOUR PASSWORD": OPERATOR_PASSWORD,
        "CODE FROM THE APP": pyotp.TOTP(tour.noted["totp"]).now(),
    }


def simulated(ran: Ran, tour: Tour) -> None:
    ok(r"auto-assigned within 2 min", "figures written to figures.json")(ran, tour)
    figures = json.loads((tour.terminal.cwd / "figures.json").read_text())
    assert figures["baseline"]  # the greedy run beside the engine's
    assert (tour.terminal.cwd / "figures.png").read_bytes().startswith(b"\x89PNG")


SET_UP_LINK = r"http://{slug}\.localhost:{port}/setup/[\w-]{40,}"

TOUR = [
    # A tour
    Step(
        "patone tenants create acme ",
        ok(r"acme: Acme Towing \[active\]", SET_UP_LINK.replace("{slug}", "acme")),
    ),
    Step("ADMIN=$(patone tokens issue --tenant acme", token_in("ADMIN")),
    Step('curl -H "Authorization: Bearer $ADMIN" http://acme.localhost', acme_schema),
    Step("curl -H \"Authorization: Bearer $ADMIN\" -H 'X-Tenant: acme'", acme_schema),
    Step("curl http://nobody.localhost", no_such_company),
    Step("patone tenants suspend acme", acme_suspended),
    Step("patone tenants resume acme", ok(r"acme: Acme Towing \[active\]")),
    Step("patone tenants list", ok(r"acme .*Acme Towing .*active", r"demo .*Demo Towing")),
    Step("patone tenants delete acme", ok(r"\[deleted\]", "restorable until")),
    Step("patone tenants restore acme", ok(r"acme: Acme Towing \[active\]")),
    Step(
        "patone tenants create zeta --admin-email zed",
        ok(r"zeta: Zeta \[active\]", SET_UP_LINK.replace("{slug}", "zeta")),
    ),
    Step("patone tenants delete zeta && patone tenants purge zeta", ok("zeta: purged")),
    Step("patone tenants create zeta --admin-email new", purged_slug_refused),
    Step("patone migrate", ok(r"tenants in .*, 0 failed")),
    Step("patone worker", ok("worker started", "shut down"), until="worker started"),
    Step("patone plugins list", ok("maps-offline", "email-smtp")),
    Step(
        "BROKER_URL=amqp://",
        ok("worker started", "shut down"),
        until="worker started",
    ),
    # The API
    Step(
        "patone users create --tenant acme --email dee",
        ok(SET_UP_LINK.replace("{slug}", "acme")),  # the server's port, found in the data dir
    ),
    Step("TOKEN=$(patone tokens issue --tenant acme --user dee", token_in("TOKEN")),
    Step('curl -H "Authorization: Bearer $TOKEN"', dee_reads_the_api),
    # Partners
    Step('eval "$(patone clients create --tenant acme', client_set),
    Step('curl -u "$CLIENT_ID:$CLIENT_SECRET"', partner_token),
    Step("curl http://localhost:8000/.well-known/jwks.json", public_keys),
    Step("patone keys rotate", new_key_published),
    # Operators
    Step(
        "patone operators create --email ops@example.com",
        operator_created,
        stdin=f"{OPERATOR_PASSWORD}\n{OPERATOR_PASSWORD}\n",
    ),
    Step(
        'curl -d \'{"email": "ops@example.com"',
        operator_signed_in,
        placeholders=what_the_user_knows,
    ),
    # Dispatch
    Step("patone simulate ", simulated),
]


def newcomers_environment() -> dict[str, str]:
    """This environment without any of the product's settings (a newcomer's shell sets none),
    with this virtual environment's commands first, as activating it would."""
    env = {k: v for k, v in os.environ.items() if k.lower() not in Settings.model_fields}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def serve_command() -> list[str]:
    """The README's command that runs the product, with this virtual environment's `patone`."""
    [first, *_] = shell_blocks(section(README.read_text(), "Two commands"))
    run = first.strip().split(" && ")[-1]
    assert run == ".venv/bin/patone serve", first
    return [str(Path(sys.executable).parent / "patone"), "serve"]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """`patone serve` on the embedded default in a new folder; its folder and port."""
    from tests.test_embedded import _free_port

    folder = tmp_path / "clone"
    folder.mkdir()
    port = _free_port()
    log = tmp_path / "serve.log"
    process = subprocess.Popen(
        serve_command(),
        cwd=folder,
        env={**newcomers_environment(), "PORT": str(port)},
        stdout=subprocess.PIPE,
        stderr=log.open("w"),
        text=True,
        start_new_session=True,
    )

    def healthy() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
        except httpx.TransportError:  # it listens just after it says it runs
            return False

    try:
        assert process.stdout is not None
        for line in process.stdout:
            if "Stop with Ctrl+C" in line:
                break
        assert process.poll() is None and eventually(healthy), log.read_text()[-3000:]
        yield folder, port
    finally:
        os.killpg(process.pid, signal.SIGINT)  # Ctrl+C, as the README says
        try:
            process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_the_readme_tour_runs_as_written(server: tuple[Path, int], tmp_path: Path) -> None:
    folder, port = server
    tour_text = section(README.read_text(), "A tour")
    written = [c for block in shell_blocks(tour_text) for c in commands(block)]
    assert [c[: len(s.starts)] for c, s in zip(written, TOUR, strict=False)] == [
        s.starts for s in TOUR
    ] and len(written) == len(TOUR), "the README's tour changed: say in TOUR what it shows"
    scratch = tmp_path / "terminal"
    scratch.mkdir()
    terminal = Terminal(folder, newcomers_environment(), scratch)
    tour = Tour(port, terminal)
    try:
        for command, step in zip(written, TOUR, strict=True):
            command = command.replace("localhost:8000", f"localhost:{port}")
            for placeholder, value in (
                step.placeholders(tour) if step.placeholders else {}
            ).items():
                assert placeholder in command, (placeholder, command)
                command = command.replace(placeholder, value)
            if step.until:
                ran = terminal.until_stopped(command, step.until)
            else:
                ran = terminal.run(command, stdin=step.stdin)
            step.check(ran, tour)
    finally:
        terminal.close()

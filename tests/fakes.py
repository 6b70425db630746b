"""Local fakes of providers that can fail the way real ones do, for tests and benchmarks.

Each fake speaks its provider's wire format (Twilio's REST API over HTTP, SMTP) and, following a
`FaultPlan`, answers a call in one of four ways:

- "ok": takes the message and says so;
- "refuse": refuses before taking it (Twilio 503 / SMTP 451): safe to retry;
- "lose": takes the message, then drops the connection before answering (the answer is lost);
- "timeout": takes the message and answers only after the client has given up.

Every message it takes is recorded with our message id (SMTP: the Message-ID header; Twilio: the
`n` parameter of the status callback URL), so duplicates can be counted: a message taken again
after an "ok" is a duplicate *from our side* (a bug); after "lose" or "timeout" it is an
*ambiguous* duplicate, which the channel's retry policy allows and counts.
"""

from __future__ import annotations

import asyncio
import base64
import email
import json
import random
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from aiosmtpd.controller import Controller

MODES = ("ok", "refuse", "lose", "timeout")


class _Server(ThreadingHTTPServer):
    # Twilio takes many connections at once; socketserver's default backlog of 5 refuses
    # connections under load, a failure the real provider does not have.
    request_queue_size = 256


@dataclass
class FaultPlan:
    """Which way each call goes: `refuse`, `lose` and `timeout` are rates (0-1)."""

    refuse: float = 0.0
    lose: float = 0.0
    timeout: float = 0.0
    seed: int = 7
    stall: float = 1.5  # how long a "timeout" answer takes (longer than the client waits)
    _random: random.Random = field(init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def next(self) -> str:
        with self._lock:
            draw = self._random.random()
        for mode, rate in (("refuse", self.refuse), ("lose", self.lose), ("timeout", self.timeout)):
            if draw < rate:
                return mode
            draw -= rate
        return "ok"


@dataclass
class Ledger:
    """What a fake took, by our message id, and how each call went."""

    taken: dict[str, list[str]] = field(default_factory=dict)  # our id -> modes it was taken in
    calls: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def call(self, mode: str) -> None:
        with self.lock:
            self.calls[mode] += 1

    def take(self, our_id: str, mode: str) -> None:
        with self.lock:
            self.taken.setdefault(our_id, []).append(mode)

    def duplicates(self) -> tuple[int, int]:
        """(duplicates from our side, ambiguous duplicates)."""
        ours = ambiguous = 0
        with self.lock:
            for modes in self.taken.values():
                for earlier in modes[:-1]:
                    if earlier == "ok":
                        ours += 1
                    else:
                        ambiguous += 1
        return ours, ambiguous

    def delivered(self) -> set[str]:
        with self.lock:
            return set(self.taken)


# --- Twilio ---------------------------------------------------------------------------------------

TWILIO_SID = "AC" + "1" * 32
TWILIO_TOKEN = "a-very-secret-auth-token"


class TwilioFake:
    """Twilio's Messages API: POST /2010-04-01/Accounts/{sid}/Messages.json (form-encoded,
    HTTP basic auth with the account SID and auth token), answered as Twilio answers."""

    def __init__(self, account_sid: str, auth_token: str, plan: FaultPlan | None = None) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.plan = plan or FaultPlan()
        self.ledger = Ledger()
        self.forms: list[dict[str, list[str]]] = []
        self.opted_out: set[str] = set()
        self._sid = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes: with Nagle's algorithm on, a kept-alive
            # client waits 40 ms (delayed ACK) for every answer, which Twilio does not do.
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                fake.handle(self)

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> TwilioFake:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _answer(self, handler: BaseHTTPRequestHandler, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length", 0))
        form = parse_qs(handler.rfile.read(length).decode())
        expected = (
            "Basic " + base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        )
        if handler.path != f"/2010-04-01/Accounts/{self.account_sid}/Messages.json":
            self._answer(handler, 404, {"code": 20404, "message": "not found", "status": 404})
            return
        if handler.headers.get("Authorization") != expected:
            self._answer(handler, 401, {"code": 20003, "message": "Authenticate", "status": 401})
            return
        to = form.get("To", [""])[0]
        if to in self.opted_out:
            self._answer(
                handler,
                400,
                {"code": 21610, "message": "Attempt to send to unsubscribed recipient",
                 "status": 400},
            )  # fmt: skip
            return
        mode = self.plan.next()
        self.ledger.call(mode)
        if mode == "refuse":
            self._answer(handler, 503, {"code": 20503, "message": "busy", "status": 503})
            return
        callback = form.get("StatusCallback", [""])[0]
        our_id = parse_qs(urlsplit(callback).query).get("n", [""])[0] or form["Body"][0]
        self.ledger.take(our_id, mode)
        with self.ledger.lock:
            self.forms.append(form)
            self._sid += 1
            sid = f"SM{self._sid:032x}"
        if mode == "lose":
            handler.close_connection = True
            return  # no answer at all: the connection closes
        if mode == "timeout":
            time.sleep(self.plan.stall)
        self._answer(
            handler,
            201,
            {"sid": sid, "status": "queued", "to": to, "from": form["From"][0],
             "body": form["Body"][0], "account_sid": self.account_sid},
        )  # fmt: skip


# --- SMTP -----------------------------------------------------------------------------------------


class _Inbox:
    def __init__(self, fake: SmtpFake) -> None:
        self.fake = fake

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        fake = self.fake
        mode = fake.plan.next()
        fake.ledger.call(mode)
        if mode == "refuse":
            return "451 4.3.0 Try again later"
        parsed = email.message_from_bytes(envelope.content)
        match = re.match(r"<(.+)@", parsed.get("Message-ID", ""))
        fake.ledger.take(match.group(1) if match else parsed.get("Message-ID", ""), mode)
        with fake.ledger.lock:
            fake.messages.append(parsed)
        if mode == "lose":
            server.transport.abort()  # the message is queued; the answer never leaves
            return "250 OK"
        if mode == "timeout":
            await asyncio.sleep(fake.plan.stall)
        return "250 Message accepted for delivery"


class SmtpFake:
    """An SMTP server (aiosmtpd) that takes messages the way the plan says."""

    def __init__(self, plan: FaultPlan | None = None) -> None:
        self.plan = plan or FaultPlan()
        self.ledger = Ledger()
        self.messages: list[email.message.Message] = []
        with socket.socket() as probe:  # aiosmtpd's Controller needs the port up front
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self.controller = Controller(_Inbox(self), hostname="127.0.0.1", port=self.port)

    def start(self) -> SmtpFake:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()


def running(*fakes: TwilioFake | SmtpFake) -> Iterator[None]:
    """Start fakes, yield, stop them (for fixtures)."""
    for fake in fakes:
        fake.start()
    try:
        yield
    finally:
        for fake in fakes:
            fake.stop()


# --- DNS ------------------------------------------------------------------------------------------


class FakeDns:
    """Name servers' answers for made-up names (`socket.getaddrinfo`, installed by the `dns`
    fixture); IP literals and names it was not told about resolve as usual.

    `answer(name, *lookups)`: each look-up of `name` gets the next answer (the last repeats); an
    answer is one address or several, comma-separated. `lookups[name]` counts them."""

    def __init__(self) -> None:
        self.real = socket.getaddrinfo
        self.answers: dict[str, list[str]] = {}
        self.lookups: Counter[str] = Counter()

    def answer(self, name: str, *lookups: str) -> None:
        self.answers[name] = list(lookups)

    def getaddrinfo(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        name = host.decode() if isinstance(host, bytes) else str(host)
        queue = self.answers.get(name)
        if queue is None:
            return self.real(host, port, *args, **kwargs)
        self.lookups[name] += 1
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        return [
            (
                socket.AF_INET6 if ":" in address else socket.AF_INET,
                socket.SOCK_STREAM,
                socket.IPPROTO_TCP,
                "",
                (address, int(port or 0)),
            )
            for address in answer.split(",")
        ]

#!/usr/bin/env python
"""Notification benchmark: email and SMS through the real broker, two workers and faulty fakes.

Prints figures next to the goals of the issue (0 lost, 0 duplicates from our side, at least 150
notifications per second on a 2-core machine, our own CPU under 1 ms per notification); it does
not pass or fail on speed. It exits non-zero only when something is broken: a notification was
lost or sent twice by our fault, a process did not start, the database could not be set up.

    python bench/notifications.py                       # 10,000 notifications, 4 companies
    python bench/notifications.py --rate 120            # events at 120 notifications/s
    python bench/notifications.py --smoke --json /tmp/notifications.json   # CI: 200

It works in its own database (default `patone_bench_notifications`, dropped and re-created at
start and dropped at the end unless `--keep`), its own Redis database (12) and broker namespace,
and its own companies (`benchnotif-01` ..., roles `t_benchnotif_01_role` ...).

Steps:

1. set-up: `--tenants` companies with sms-twilio and email-smtp enabled (default notification
   rules: a new request texts and emails its customer), customers with a phone and an email,
   automatic dispatch off (no drivers: see `setup_tenants`).
2. fakes: a helper process (this file with `--fakes-process`) runs `tests/fakes.py`'s TwilioFake
   and SmtpFake failing as in the tests: 10 % of calls refused before the message is taken,
   10 % taken and the answer lost, 10 % taken and answered after the client's 1 s time-out
   (`--stall` 1.5 s). Their CPU is theirs, not ours. It also runs an always-ok pair, and a
   faulty pair for the baseline.
3. SDK baseline: a fresh process (`--sdk-baseline`) calls the plugins' own `send_sms` and
   `send_email` directly, on the kind of event loop the workers run (`new_event_loop`: uvloop),
   and measures its CPU per call: what the Twilio SDK and aiosmtplib cost, with no job,
   database or broker around them. Twice: one call at a time to the
   always-ok fakes ("clean", printed), and 8 at a time to fakes failing like the pipeline's
   ("faulty": the calls the pipeline makes, with the reconnections after lost answers and
   time-outs, the exceptions and the threads they need). The faulty one splits the workers'
   CPU below.
4. pipeline: TWO worker processes (`worker_command` / `worker_env`, as `patone worker
   --processes 2` starts them, `--threads` each) and the outbox relay in a process of its own
   (`--relay-process`: `Relay` with the broker). By default (a burst) every request is created
   first through `create_request` (the real path: its `request.created` event is committed to
   the outbox) and then the relay is let go; with `--rate` the requests are created at that pace
   while everything runs. Each event fans out to one SMS and one email.
5. wait until every `notifications` row is final (sent, dead, failed, ...), with a progress bar.
6. figures: throughput (from the first event to the last final row, and to 99 % of them),
   outcomes, the fakes' ledgers (duplicates from our side: a message taken again after the fake
   had answered ok; ambiguous ones: taken again after a lost answer or a time-out), lost
   notifications (rows never written or never finished, and rows our log says sent that no fake
   took), event-to-send latency, and CPU per notification: the two workers' CPU split into the
   SDK's (calls made x the faulty baseline's CPU per call) and ours (the rest), beside the
   relay's, Postgres' and the fakes'; and split a second way, by py-spy sampling the workers'
   GIL holder during the run (`--sample-rate`, 50/s; 0 turns it off): the share of samples in
   provider calls (the SDKs, the stdlib email package, our two provider plugins) against the
   rest, applied to the workers' CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil
from figures import (
    Stats,
    check_names,
    make_console,
    phase,
    reset_database,
    verdict,
    with_database,
)

if TYPE_CHECKING:
    from rich.console import Console

    from patone.tenants.registry import TenantInfo

# Heavy imports (patone, rich) happen inside functions: the helper processes are this file too.

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS = "redis://127.0.0.1:6379/12"
NAMESPACE = "patone-bench-notifications"
SECRET = "bench-notifications-secret-not-for-production"
SID = "AC" + "b" * 32
TOKEN = "bench-notifications-auth-token"
FROM_NUMBER = "+15005550006"
FROM_ADDRESS = "dispatch@bench.example"
TENANT_URL = "http://{slug}.localhost:8000"
UNFINISHED = ("queued", "sending", "retrying")
DELIVERED = ("sent", "logged")
CHANNELS = ("sms", "email")
MAX_ATTEMPTS = 9  # patone.core.notifications.sending.MAX_RETRIES + 1 (checked at start)

# The goals, and what it says the Twilio SDK alone costs here.
GOAL_RATE = 150.0
GOAL_OUR_CPU_MS = 1.0
REF_TWILIO_SDK_MS = 1.6


def ms(value: float) -> str:
    if math.isnan(value):
        return "-"
    return f"{value:,.2f} ms" if value < 10 else f"{value:,.0f} ms"


def seconds(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:,.1f} s"


def per(a: float, b: float) -> float:
    return a / b if b else math.nan


# --- helper process: the providers' fakes -----------------------------------------------------


def _ledger_json(ledger: Any) -> dict[str, Any]:
    with ledger.lock:
        return {"taken": dict(ledger.taken), "calls": dict(ledger.calls)}


def fakes_main(args: argparse.Namespace) -> int:
    """Run a faulty, an always-ok and a faulty baseline Twilio and SMTP fake; answer commands on
    stdin.

    Prints one JSON line with the addresses, then for each line read: `ledger` prints the
    ledgers as one JSON line, `quit` stops.
    """
    sys.path.insert(0, str(ROOT))
    from tests.fakes import FaultPlan, SmtpFake, TwilioFake

    plan = {"refuse": args.refuse, "lose": args.lose, "timeout": args.timeout}

    def faulty(seed: int) -> FaultPlan:
        return FaultPlan(**plan, seed=seed, stall=args.stall)

    fakes = {
        "sms": TwilioFake(SID, TOKEN, faulty(args.seed)),
        "email": SmtpFake(faulty(args.seed + 1)),
        "sms_ok": TwilioFake(SID, TOKEN),
        "email_ok": SmtpFake(),
        # The SDK baseline under the same faults (seeds of their own: the pipeline's fakes
        # keep the ledgers that count duplicates and losses).
        "sms_faulty": TwilioFake(SID, TOKEN, faulty(args.seed + 2)),
        "email_faulty": SmtpFake(faulty(args.seed + 3)),
    }
    for fake in fakes.values():
        fake.start()
    try:
        print(
            json.dumps(
                {
                    name: fake.url if isinstance(fake, TwilioFake) else fake.port
                    for name, fake in fakes.items()
                }
            ),
            flush=True,
        )
        for line in sys.stdin:
            command = line.strip()
            if command == "ledger":
                ledgers = {name: _ledger_json(fake.ledger) for name, fake in fakes.items()}
                print(json.dumps(ledgers), flush=True)
            elif command == "quit":
                break
    finally:
        for fake in fakes.values():
            with contextlib.suppress(Exception):
                fake.stop()
    return 0


# --- helper process: the SDK baseline ---------------------------------------------------------


def sms_config(url: str) -> dict[str, Any]:
    return {
        "account_sid": SID,
        "auth_token": TOKEN,
        "from_number": FROM_NUMBER,
        "api_base_url": url,
        "timeout": 1.0,
    }


def email_config(port: int) -> dict[str, Any]:
    return {
        "host": "127.0.0.1",
        "port": port,
        "from_address": FROM_ADDRESS,
        "security": "none",
        "timeout": 1.0,
    }


def baseline_main(args: argparse.Namespace) -> int:
    """CPU of this process per direct call of the plugins' send functions: one after the other
    to an always-ok fake ("clean"), and 8 at a time to a fake failing like the pipeline's
    ("faulty": what the SDK costs for the calls the pipeline makes, reconnections after lost
    answers and the exceptions included).

    Prints one JSON line: {"clean": {"sms": {"cpu_ms", "wall_ms", "calls"}, "email": {...}},
    "faulty": {...}}.
    """
    from patone.core.notifications import templates
    from patone.core.work.jobs import new_event_loop
    from patone.plugins.builtin import email_smtp, sms_twilio
    from patone.plugins.loops import close_loop_clients
    from patone.plugins.types import DeliveryFailed, EmailMessage, SmsMessage, TenantView

    tenant = TenantView(slug="benchnotif-01", name="Bench", url="http://benchnotif-01.localhost")
    sms_text = templates.render(templates.default("request.created", "sms"), templates.SAMPLE)
    mail = templates.render(templates.default("request.created", "email"), templates.SAMPLE)
    concurrency = 8

    def measure(twilio_url: str, smtp_port: int, parallel: bool) -> dict[str, dict[str, float]]:
        sms_cfg, email_cfg = sms_config(twilio_url), email_config(smtp_port)

        async def send(channel: str, i: int) -> None:
            with contextlib.suppress(DeliveryFailed):
                if channel == "sms":
                    await sms_twilio.send_sms(
                        tenant=tenant,
                        config=sms_cfg,
                        message=SmsMessage(
                            to="+14155552671", body=sms_text.body, message_id=f"base-{i}"
                        ),
                    )
                    return
                await email_smtp.send_email(
                    config=email_cfg,
                    message=EmailMessage(
                        to="ann@example.com",
                        subject=mail.subject,
                        text=mail.body,
                        html=mail.html or None,
                        message_id=f"base-{i}",
                    ),
                )

        async def send_many(channel: str, start: int, count: int) -> None:
            slots = asyncio.Semaphore(concurrency if parallel else 1)

            async def one(i: int) -> None:
                async with slots:
                    await send(channel, i)

            await asyncio.gather(*(one(i) for i in range(start, start + count)))

        # Five batches per channel, the median batch kept: CPU time per call grows when other
        # processes share the cores (caches), and the median is the steadiest reading.
        batches = 5
        size = max(args.baseline_calls // batches, 1)
        warm = max(size // 2, 5)
        results: dict[str, dict[str, float]] = {}
        loop = new_event_loop()  # the workers' kind of loop: the SDKs cost what they cost there
        try:
            for channel in CHANNELS:
                loop.run_until_complete(send_many(channel, -warm, warm))
                readings = []
                for b in range(batches):
                    c0, t0 = time.process_time(), time.perf_counter()
                    loop.run_until_complete(send_many(channel, b * size, size))
                    readings.append((time.process_time() - c0, time.perf_counter() - t0))
                cpu, wall = sorted(readings)[batches // 2]
                results[channel] = {
                    "cpu_ms": cpu * 1000 / size,
                    "wall_ms": wall * 1000 / size,
                    "calls": size * batches,
                }
            loop.run_until_complete(close_loop_clients())
        finally:
            loop.close()
        return results

    clean = measure(args.twilio_url, args.smtp_port, parallel=False)
    faulty = measure(args.faulty_twilio_url, args.faulty_smtp_port, parallel=True)
    print(json.dumps({"clean": clean, "faulty": faulty}), flush=True)
    return 0


# --- helper process: the outbox relay ---------------------------------------------------------


async def _relay(dsn: str, redis_url: str, namespace: str) -> None:
    from patone.core.runtime.db import engine
    from patone.core.runtime.redis import close_redis, connect_redis, get_redis
    from patone.core.work.jobs import configure_broker
    from patone.core.work.relay import Relay
    from patone.tenants.registry import tenant_cache

    await engine.connect({"default": dsn}, min_size=1, max_size=4)
    await connect_redis(redis_url)
    broker = configure_broker(redis_url, namespace=namespace)
    relay = Relay(get_redis(), tenant_cache, broker=broker)
    try:
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)  # "go"
        await relay.start()
        print("started", flush=True)
        await asyncio.to_thread(sys.stdin.readline)  # "stop", or EOF
    finally:
        await relay.stop()
        broker.close()
        await close_redis()
        await engine.disconnect()


def relay_main(args: argparse.Namespace) -> int:
    """The relay in a process of its own (so its CPU is measured apart): it connects, prints
    `ready`, starts relaying when a line arrives on stdin and stops at the next one."""
    asyncio.run(_relay(os.environ["DATABASE_URL"], os.environ["REDIS_URL"], args.namespace))
    return 0


# --- child processes --------------------------------------------------------------------------


class Child:
    """A helper process: this script in another mode (or a worker), logged to a file."""

    def __init__(
        self,
        label: str,
        command: list[str],
        workdir: Path,
        env: dict[str, str] | None = None,
        talk: bool = False,
    ) -> None:
        self.label = label
        self.log_path = workdir / f"{re.sub(r'[^a-z0-9]+', '_', label.lower())}.log"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                command,
                cwd=workdir,
                env=env,
                stdin=subprocess.PIPE if talk else subprocess.DEVNULL,
                stdout=subprocess.PIPE if talk else log,
                stderr=log,
                text=talk,
            )
        self.ps = psutil.Process(self.process.pid)
        self._lines: queue.Queue[str] = queue.Queue()
        if talk:
            threading.Thread(target=self._read, name=f"{label} stdout", daemon=True).start()

    def _read(self) -> None:
        stdout = self.process.stdout
        assert stdout is not None
        for line in stdout:
            self._lines.put(line.strip())

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def read_line(self, timeout: float = 60.0) -> str:
        """The next line the child prints (a protocol line), or an error with its log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                return self._lines.get(timeout=0.1)
            except queue.Empty:
                if self.process.poll() is not None and self._lines.empty():
                    break
        raise RuntimeError(
            f"{self.label} did not answer (exit code {self.process.poll()}):\n{self.log_tail()}"
        )

    def send(self, line: str) -> None:
        stdin = self.process.stdin
        assert stdin is not None
        stdin.write(line + "\n")
        stdin.flush()

    def wait_for_log(self, needle: str, timeout: float = 60.0) -> float:
        started = time.perf_counter()
        while time.perf_counter() - started < timeout:
            if needle in self.log_tail(100_000):
                return time.perf_counter() - started
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"{self.label} not ready:\n{self.log_tail()}")

    def cpu(self) -> float:
        """CPU seconds (user + system, children included) so far."""
        return sum(self.cpu_split())

    def cpu_split(self) -> tuple[float, float]:
        """(user, system) CPU seconds so far, children included."""
        times = self.ps.cpu_times()
        return (
            float(times.user + times.children_user),
            float(times.system + times.children_system),
        )

    def stop(self, timeout: float = 30.0) -> None:
        process = self.process
        if process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@contextlib.contextmanager
def children_stopped(children: list[Child]) -> Iterator[None]:
    try:
        yield
    finally:
        for child in reversed(children):
            with contextlib.suppress(Exception):
                child.stop()


def this_script(*arguments: str) -> list[str]:
    return [sys.executable, os.path.abspath(__file__), *arguments]


# --- CPU of the rest of the machine -----------------------------------------------------------


def _cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def _machine_busy() -> float:
    t = psutil.cpu_times()
    return float(sum(t)) - float(t.idle + getattr(t, "iowait", 0.0))


# Frames of the provider calls, as py-spy names their files (from their import root): what the
# SDK baseline measures (the plugins' own send_email and send_sms, the SDKs under them, and the
# stdlib email package they build messages with), wherever the event loop runs them.
PROVIDER_FRAMES = (
    "(patone/plugins/builtin/email_smtp.py",
    "(patone/plugins/builtin/sms_twilio.py",
    "(twilio/",
    "(aiohttp/",
    "(aiosmtplib/",
    "(multidict/",
    "(yarl/",
    "(email/",
)
# Leaf frames of a thread that waits rather than computes, should one be sampled holding the GIL.
WAITING_LEAF = re.compile(r"^\S*(\.wait|\.select|sleep|Queue\.get|_read_from_socket) \(")


class Sampler:
    """py-spy sampling the worker processes' stacks while they work (the thread holding the GIL,
    that is the one running Python), for a second split of their CPU: the share of samples
    inside provider calls versus the rest, measured in the pipeline itself rather than in a
    separate process (which misses what the SDKs cost under the pipeline's own load: more
    connections, more tasks on one event loop)."""

    def __init__(self, pids: Sequence[int], workdir: Path, rate: int) -> None:
        self.outputs = [workdir / f"samples_{pid}.txt" for pid in pids]
        spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        self.error = "" if Path(spy).exists() else "py-spy is not installed"
        self.processes: list[subprocess.Popen[bytes]] = []
        if self.error:
            return
        for pid, output in zip(pids, self.outputs, strict=True):
            self.processes.append(
                subprocess.Popen(
                    [spy, "record", "--pid", str(pid), "--rate", str(rate), "--nonblocking",
                     "--gil", "--format", "raw", "--output", str(output)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                )
            )  # fmt: skip

    def stop(self) -> dict[str, int]:
        """Stop sampling; samples counted by where they were: provider, ours, waiting."""
        for process in self.processes:
            process.send_signal(signal.SIGINT)
        for process in self.processes:
            try:
                _, stderr = process.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                stderr = b"did not stop"
            if process.returncode not in (0, -2) and not self.error:
                self.error = stderr.decode(errors="replace").strip()[-300:]
        counts = Counter({"provider": 0, "ours": 0, "waiting": 0})
        for output in self.outputs:
            if output.exists():
                counts.update(classify_samples(output.read_text(errors="replace")))
        return dict(counts)


def classify_samples(raw: str) -> Counter[str]:
    """py-spy's raw (collapsed) stacks, counted as provider calls, our code or waiting."""
    counts: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, number = line.rpartition(" ")
        if not stack or not number.isdigit():
            continue
        frames = stack.split(";")
        if WAITING_LEAF.match(frames[-1]):
            counts["waiting"] += int(number)
        elif any(marker in frame for frame in frames for marker in PROVIDER_FRAMES):
            counts["provider"] += int(number)
        else:
            counts["ours"] += int(number)
    return counts


class ProcessCpu:
    """CPU used since `mark` by processes matching a test (Postgres backends of one database,
    redis-server), sampled now and then so a process that exits counts up to its last sample."""

    def __init__(self, name: str, needle: str = "") -> None:
        self.name = name
        self.needle = needle
        self._procs: dict[int, psutil.Process] = {}
        self._last: dict[int, float] = {}
        self._base: dict[int, float] = {}

    def scan(self) -> None:
        for process in psutil.process_iter(["name", "cmdline"]):
            info = process.info
            if info.get("name") != self.name:
                continue
            if self.needle and self.needle not in " ".join(info.get("cmdline") or ()) + " ":
                continue
            known = self._procs.setdefault(process.pid, process)
            with contextlib.suppress(psutil.Error):
                self._last[process.pid] = _cpu_seconds(known)

    def mark(self) -> None:
        self.scan()
        self._base = dict(self._last)

    def used(self) -> float:
        self.scan()
        return sum(cpu - self._base.get(pid, 0.0) for pid, cpu in self._last.items())


async def idle_cpu_rate(workers: Sequence[Child], span: float) -> float:
    """CPU seconds per second the booted, idle workers use together (polling Redis for
    messages, heartbeats, the redelivery sweep): not a cost of any notification."""
    before = sum(w.cpu() for w in workers)
    await asyncio.sleep(span)
    return (sum(w.cpu() for w in workers) - before) / span


# --- set-up -----------------------------------------------------------------------------------


def clear_redis(redis_url: str, namespace: str, prefix: str) -> int:
    """Delete the broker's keys and the bench companies' keys (dead letters, claims)."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        keys = [
            *client.scan_iter(match=f"{namespace}*", count=1000),
            *client.scan_iter(match=f"t:{prefix}-*", count=1000),
        ]
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
        return len(keys)
    finally:
        client.close()


def bench_settings(dsn: str, redis_url: str, workdir: Path) -> Any:
    from patone.settings import Settings

    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=dsn,
        redis_url=redis_url,
        secret_key=SECRET,
        allow_private_urls=True,
        public_url=TENANT_URL,
        demo_tenant=False,
        log_level="WARNING",
        data_dir=workdir / "data",
    )


def child_env(settings: Any, workdir: Path) -> dict[str, str]:
    """A worker's environment (`worker_env`), plus what the bench's companies need: the key
    their provider secrets are sealed with, and leave to reach the local fakes."""
    from patone.core.work.worker import worker_env

    env = {
        k: v for k, v in worker_env(settings).items() if k not in ("SHARDS", "DEBUG", "BROKER_URL")
    }
    env.update(
        SECRET_KEY=SECRET,
        ALLOW_PRIVATE_URLS="true",
        PUBLIC_URL=TENANT_URL,
        DEMO_TENANT="false",
        LOG_LEVEL="INFO",  # as `patone worker` logs by default; its log says when it is ready
        DATA_DIR=str(workdir / "data"),
    )
    return env


async def setup_tenants(
    count: int, prefix: str, fakes: dict[str, Any], customers_each: int
) -> list[TenantInfo]:
    """Companies with both providers on (pointing at the faulty fakes) and their customers,
    dispatching by hand.

    They have no drivers: with automatic dispatch on, every sweep their `request.created`
    events queue would try to offer each waiting request to nobody, work of the dispatch engine
    in the same workers (5 to 18 % of the workers' own samples in runs of 2026-12-02) that is
    no cost of a notification. The events and their notifications are the same either way."""
    from patone.core.common.permissions import SYSTEM
    from patone.core.dispatch.settings import update_dispatch_settings
    from patone.platform.provisioning import create_tenant
    from patone.plugins import config as plugins
    from patone.tenants.isolation import tenant_transaction

    tenants = []
    for i in range(1, count + 1):
        tenant = await create_tenant(f"{prefix}-{i:02d}", name=f"Bench Towing {i}")
        await plugins.configure_plugin(
            tenant, SYSTEM, "sms-twilio", enabled=True, config=sms_config(fakes["sms"])
        )
        await plugins.configure_plugin(
            tenant, SYSTEM, "email-smtp", enabled=True, config=email_config(fakes["email"])
        )
        await update_dispatch_settings(tenant, SYSTEM, {"auto_dispatch": False})
        async with tenant_transaction(tenant) as transaction:
            await transaction.connection.execute(
                """
                INSERT INTO customers (name, phone, email, notes, created_at, updated_at)
                SELECT 'Customer ' || n, '+1415' || lpad(n::text, 7, '0'),
                       'customer' || n || '@example.com', '', now(), now()
                FROM generate_series(1, $1) AS n
                """,
                customers_each,
            )
        tenants.append(tenant)
    return tenants


async def customer_ids(tenant: TenantInfo) -> list[int]:
    from patone.core.runtime.db import engine
    from patone.tenants.isolation import tenant_transaction

    async with tenant_transaction(tenant):
        rows = await engine.fetch("SELECT id FROM customers ORDER BY id")
    return [int(r["id"]) for r in rows]


async def create_requests(
    tenants: Sequence[TenantInfo],
    requests: int,
    rate: float,
    on_created: Any = None,
) -> tuple[float, float]:
    """`requests` service requests through `create_request`, round-robin over the companies;
    at `rate` requests per second if given, else as fast as it goes. Returns (first, last)
    wall-clock times of creation."""
    from patone.core.common.permissions import SYSTEM
    from patone.core.domain import service_requests

    customers = {t.slug: await customer_ids(t) for t in tenants}
    started = time.time()
    clock = time.perf_counter()
    lanes = min(len(tenants) * 2, 8)
    next_index = 0

    async def lane() -> None:
        nonlocal next_index
        while next_index < requests:
            i = next_index
            next_index += 1
            if rate:
                delay = clock + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            tenant = tenants[i % len(tenants)]
            ids = customers[tenant.slug]
            await service_requests.create_request(
                tenant,
                SYSTEM,
                {
                    "customer_id": ids[(i // len(tenants)) % len(ids)],
                    "service_type": "jump_start",
                    "pickup": {"lat": 37.79, "lng": -122.4, "address": f"{i} Market St"},
                },
            )
            if on_created is not None:
                on_created()

    await asyncio.gather(*(lane() for _ in range(lanes)))
    return started, time.time()


# --- waiting and reading the outcome ----------------------------------------------------------


async def status_counts(tenants: Sequence[TenantInfo]) -> Counter[str]:
    from patone.core.runtime.db import engine
    from patone.tenants.isolation import tenant_transaction

    counts: Counter[str] = Counter()
    for tenant in tenants:
        async with tenant_transaction(tenant):
            rows = await engine.fetch(
                "SELECT status, count(*) AS n FROM notifications GROUP BY status"
            )
        for row in rows:
            counts[row["status"]] += int(row["n"])
    return counts


def describe(counts: Counter[str]) -> str:
    return ", ".join(f"{status} {n:,}" for status, n in sorted(counts.items())) or "no rows yet"


async def wait_settled(
    tenants: Sequence[TenantInfo],
    expected: int,
    max_wait: float,
    console: Console,
    sample: Callable[[int], None],
    creating: asyncio.Task[tuple[float, float]] | None,
    created: list[int],
) -> tuple[Counter[str], bool]:
    """Poll the delivery logs until `expected` rows exist and none is unfinished."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    bar = Progress(
        TextColumn("[bold]notifications final"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[detail]}"),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )
    started = time.perf_counter()
    last_line = started
    counts: Counter[str] = Counter()
    with bar:
        task = bar.add_task("final", total=expected, detail="")
        while True:
            counts = await status_counts(tenants)
            rows = sum(counts.values())
            final = rows - sum(counts[s] for s in UNFINISHED)
            detail = describe(counts)
            if creating is not None and not creating.done():
                detail = f"requests created {created[0]:,}; {detail}"
            bar.update(task, completed=final, detail=detail)
            now = time.perf_counter()
            if not console.is_terminal and now - last_line >= 10:
                console.print(
                    f"  {now - started:5.0f} s: {final:,} of {expected:,} final ({detail})"
                )
                last_line = now
            if creating is not None and creating.done() and creating.exception() is not None:
                raise RuntimeError("creating requests failed") from creating.exception()
            creating_done = creating is None or creating.done()
            if creating_done and rows >= expected and final == rows:
                return counts, True
            if now - started > max_wait:
                return counts, False
            sample(final)
            await asyncio.sleep(0.5)


@dataclass
class Row:
    tenant: str
    id: int
    channel: str
    status: str
    attempts: int
    ambiguous: int
    event_at: float
    sent_at: float | None
    updated_at: float

    @property
    def our_id(self) -> str:
        return f"notification-{self.tenant}-{self.id}"


async def read_rows(tenants: Sequence[TenantInfo]) -> list[Row]:
    from patone.core.runtime.db import engine
    from patone.tenants.isolation import tenant_transaction

    rows: list[Row] = []
    for tenant in tenants:
        async with tenant_transaction(tenant):
            found = await engine.fetch(
                "SELECT n.id, n.channel, n.status, n.attempts, n.ambiguous_attempts, "
                "extract(epoch FROM o.created_at)::float8 AS event_at, "
                "extract(epoch FROM n.sent_at)::float8 AS sent_at, "
                "extract(epoch FROM n.updated_at)::float8 AS updated_at "
                "FROM notifications n LEFT JOIN outbox o ON o.id = n.event_id ORDER BY n.id"
            )
        rows += [
            Row(
                tenant=tenant.slug,
                id=int(r["id"]),
                channel=r["channel"],
                status=r["status"],
                attempts=int(r["attempts"]),
                ambiguous=int(r["ambiguous_attempts"]),
                event_at=float(r["event_at"] or math.nan),
                sent_at=r["sent_at"],
                updated_at=float(r["updated_at"]),
            )
            for r in found
        ]
    return rows


async def outbox_counts(tenants: Sequence[TenantInfo]) -> tuple[int, int]:
    """(events, events still unpublished) over the companies."""
    from patone.core.runtime.db import engine
    from patone.tenants.isolation import tenant_transaction

    events = unpublished = 0
    for tenant in tenants:
        async with tenant_transaction(tenant):
            rows = await engine.fetch(
                "SELECT count(*) AS n, count(*) FILTER (WHERE published_at IS NULL) AS u "
                "FROM outbox WHERE topic = 'request.created'"
            )
        events += int(rows[0]["n"])
        unpublished += int(rows[0]["u"])
    return events, unpublished


async def dead_letters(tenants: Sequence[TenantInfo]) -> dict[str, int]:
    """Dead letters in the companies' stores, by actor."""
    from patone.core.runtime.redis import get_redis
    from patone.core.work.jobs import list_dead_letters

    by_actor: Counter[str] = Counter()
    for tenant in tenants:
        for entry in await list_dead_letters(tenant.slug, client=get_redis()):
            by_actor[entry["actor"]] += 1
    return dict(by_actor)


# --- figures ----------------------------------------------------------------------------------


@dataclass
class ChannelFigures:
    rows: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)  # at the fake, by mode
    taken: int = 0  # distinct messages the fake took
    duplicates_ours: int = 0
    duplicates_ambiguous: int = 0
    ambiguous_attempts: int = 0  # counted in our log
    attempts: int = 0
    sent_not_taken: int = 0  # our log says sent, the fake never took it: lost
    dead_but_taken: int = 0  # dead-lettered after an ambiguous attempt the fake had taken
    sdk_cpu_ms_per_call: float = math.nan

    @property
    def provider_calls(self) -> int:
        return sum(self.calls.values())

    @property
    def attempts_without_call(self) -> int:
        """Attempts that never reached the provider: its circuit breaker was open (or our own
        code failed before the call)."""
        return max(self.attempts - self.provider_calls, 0)


def duplicates(taken: dict[str, list[str]]) -> tuple[int, int]:
    """(from our side, ambiguous), as `tests.fakes.Ledger.duplicates` counts them."""
    ours = ambiguous = 0
    for modes in taken.values():
        for earlier in modes[:-1]:
            if earlier == "ok":
                ours += 1
            else:
                ambiguous += 1
    return ours, ambiguous


def channel_figures(
    rows: Sequence[Row], ledgers: dict[str, Any], baseline: dict[str, Any]
) -> dict[str, ChannelFigures]:
    out: dict[str, ChannelFigures] = {}
    for channel in CHANNELS:
        mine = [r for r in rows if r.channel == channel]
        ledger = ledgers[channel]
        taken: dict[str, list[str]] = ledger["taken"]
        ours, ambiguous = duplicates(taken)
        out[channel] = ChannelFigures(
            rows=len(mine),
            statuses=dict(Counter(r.status for r in mine)),
            calls=dict(ledger["calls"]),
            taken=len(taken),
            duplicates_ours=ours,
            duplicates_ambiguous=ambiguous,
            ambiguous_attempts=sum(r.ambiguous for r in mine),
            attempts=sum(r.attempts for r in mine),
            sent_not_taken=sum(1 for r in mine if r.status == "sent" and r.our_id not in taken),
            dead_but_taken=sum(1 for r in mine if r.status == "dead" and r.our_id in taken),
            sdk_cpu_ms_per_call=float(baseline[channel]["cpu_ms"]),
        )
    return out


@dataclass
class Sample:
    """What had happened `at` seconds after the release: rows final, CPU seconds used."""

    at: float
    final: int
    workers: float
    postgres: float
    machine: float


def main_phase(samples: Sequence[Sample], rows: int, share: float = 0.9) -> dict[str, float]:
    """Cores busy until `share` of the rows were final (the tail after it is mostly waiting
    out back-off, which would dilute the figures of the run as a whole)."""
    reached = next((x for x in samples if x.final >= share * rows), None)
    if reached is None or reached.at <= 0:
        return {}
    return {
        "seconds": reached.at,
        "rate": reached.final / reached.at,
        "machine_cores": reached.machine / reached.at,
        "workers_cores": reached.workers / reached.at,
        "postgres_cores": reached.postgres / reached.at,
    }


@dataclass
class Cpu:
    """CPU seconds over the run (release to the last final row)."""

    workers: float
    workers_system: float  # of which in the kernel (sockets: Postgres, Redis, providers)
    workers_idle: float  # what idle workers would have used meanwhile (polling, heartbeats)
    relay: float
    fakes: float
    postgres: float
    redis: float
    bench: float
    machine_busy: float
    wall: float

    @property
    def others(self) -> float:
        ours = self.workers + self.relay + self.fakes + self.postgres + self.redis + self.bench
        return max(self.machine_busy - ours, 0.0)


def latency_from(rows: Sequence[Row], released_at: float) -> list[float]:
    """Seconds from each delivered notification's event (or its release to the relay, if the
    event waited for it) to its send."""
    return [
        r.sent_at - max(r.event_at, released_at)
        for r in rows
        if r.sent_at is not None and not math.isnan(r.event_at)
    ]


def finish_time(rows: Sequence[Row], share: float) -> float:
    """When `share` of the rows were final (by their last update), epoch seconds; NaN if fewer
    ever were."""
    done = sorted(r.updated_at for r in rows if r.status not in UNFINISHED)
    needed = max(math.ceil(share * len(rows)), 1)
    return done[needed - 1] if len(done) >= needed else math.nan


# --- the run ----------------------------------------------------------------------------------


async def run(args: argparse.Namespace, console: Console) -> int:
    from patone.app import actor_modules
    from patone.core.notifications import sending
    from patone.core.runtime.db import engine
    from patone.core.runtime.redis import close_redis, connect_redis
    from patone.core.work.worker import worker_command
    from patone.plugins import config as plugins
    from patone.plugins.manager import PluginManager
    from patone.plugins.secrets import SecretBox
    from patone.tenants.migrations import ensure_platform

    if sending.MAX_RETRIES + 1 != MAX_ATTEMPTS:
        console.print(f"[yellow]the send job now makes {sending.MAX_RETRIES + 1} attempts[/yellow]")
    n: int = args.notifications
    requests = math.ceil(n / 2)
    expected = requests * 2  # a new request texts and emails its customer
    admin_dsn: str = args.dsn_admin
    dsn = with_database(admin_dsn, args.database)
    cores = psutil.cpu_count() or 1
    workdir = Path(tempfile.mkdtemp(prefix="bench_notifications_"))
    figures: dict[str, Any] = {"args": vars(args), "cpus": cores}
    failures: list[str] = []
    children: list[Child] = []

    console.rule(f"notification benchmark: {expected:,} notifications (email and SMS)")
    load1, load5, _ = os.getloadavg()
    mode = f"events at {args.rate:g} notifications/s" if args.rate else "a burst of events"
    console.print(
        f"database {args.database!r}, {args.tenants} companies ({args.prefix}-01 ...), "
        f"{args.processes} worker processes x {args.threads} threads, {mode}; fakes refuse "
        f"{args.refuse:.0%}, lose the answer {args.lose:.0%}, time out {args.timeout:.0%} "
        f"(stall {args.stall:g} s, client time-out 1 s); {cores} CPUs, load average "
        f"{load1:.2f} / {load5:.2f} (1 / 5 min) before the run"
    )
    figures["load_average_before"] = [load1, load5]
    dropped = await reset_database(admin_dsn, args.database, args.prefix, create=True)
    cleared = clear_redis(args.redis, NAMESPACE, args.prefix)
    if dropped or cleared:
        console.print(f"dropped {dropped} leftover roles and {cleared} leftover Redis keys")
    settings = bench_settings(dsn, args.redis, workdir)
    manager = PluginManager()
    plugins.set_runtime(
        plugins.PluginRuntime(
            manager=manager,
            box=SecretBox(SECRET),
            allow_private_urls=True,
            tenant_url=TENANT_URL,
        )
    )
    try:
        with children_stopped(children):
            # 1-2: fakes, companies, customers
            phase(console, "starting the fakes and setting up the companies")
            fakes_child = Child(
                "fakes",
                this_script(
                    "--fakes-process",
                    "--refuse",
                    str(args.refuse),
                    "--lose",
                    str(args.lose),
                    "--timeout",
                    str(args.timeout),
                    "--stall",
                    str(args.stall),
                    "--seed",
                    str(args.seed),
                ),
                workdir,
                talk=True,
            )
            children.append(fakes_child)
            fakes = json.loads(fakes_child.read_line())
            await engine.connect({"default": dsn}, min_size=1, max_size=10)
            await connect_redis(args.redis)
            await ensure_platform()
            t0 = time.perf_counter()
            customers_each = max(math.ceil(requests / args.tenants / 2), 1)
            tenants = await setup_tenants(args.tenants, args.prefix, fakes, customers_each)
            console.print(
                f"{len(tenants)} companies with sms-twilio (-> {fakes['sms']}) and email-smtp "
                f"(-> 127.0.0.1:{fakes['email']}), {customers_each:,} customers each "
                f"({time.perf_counter() - t0:,.1f} s)"
            )

            # 3: the SDK baseline
            phase(console, f"SDK baseline: {args.baseline_calls} direct calls per channel")
            baseline_child = Child(
                "sdk baseline",
                this_script(
                    "--sdk-baseline",
                    "--twilio-url",
                    fakes["sms_ok"],
                    "--smtp-port",
                    str(fakes["email_ok"]),
                    "--faulty-twilio-url",
                    fakes["sms_faulty"],
                    "--faulty-smtp-port",
                    str(fakes["email_faulty"]),
                    "--baseline-calls",
                    str(args.baseline_calls),
                ),
                workdir,
                talk=True,
            )
            children.append(baseline_child)
            baselines = json.loads(
                await asyncio.to_thread(baseline_child.read_line, 300.0 + args.baseline_calls)
            )
            figures["sdk_baseline"] = baselines
            baseline = baselines["faulty"]  # the SDK's share of the pipeline's calls
            for kind, said in (
                ("clean", "one at a time, always-ok fake"),
                ("faulty", "8 at a time, a fake failing like the pipeline's"),
            ):
                console.print(
                    f"per direct call in a fresh process ({said}): "
                    + "; ".join(
                        f"{ch} {baselines[kind][ch]['cpu_ms']:.2f} ms CPU "
                        f"({baselines[kind][ch]['wall_ms']:.2f} ms wall)"
                        for ch in CHANNELS
                    )
                )
            console.print(f"(the issue: the Twilio SDK alone ~{REF_TWILIO_SDK_MS} ms)")

            # 4: workers and relay
            phase(console, f"starting {args.processes} worker processes and the relay")
            env = child_env(settings, workdir)
            command = worker_command(
                threads=args.threads, modules=actor_modules(), namespace=NAMESPACE
            )
            workers = [
                Child(f"worker {i + 1}", command, workdir, env=env) for i in range(args.processes)
            ]
            children.extend(workers)
            relay_child = Child(
                "relay",
                this_script("--relay-process", "--namespace", NAMESPACE),
                workdir,
                env=env,
                talk=True,
            )
            children.append(relay_child)
            for worker in workers:
                took = await asyncio.to_thread(worker.wait_for_log, "worker started")
                console.print(f"  {worker.label}: pid {worker.pid}, ready in {took:,.1f} s")
            if (line := await asyncio.to_thread(relay_child.read_line)) != "ready":
                raise RuntimeError(f"relay said {line!r}:\n{relay_child.log_tail()}")
            console.print(f"  relay: pid {relay_child.pid}, ready")

            created = [0]

            def count_created() -> None:
                created[0] += 1

            creating: asyncio.Task[tuple[float, float]] | None = None
            if not args.rate:
                phase(console, f"creating {requests:,} requests (the relay waits)")
                first_event, last_event = await create_requests(tenants, requests, 0.0)
                console.print(
                    f"{requests:,} requests created in {last_event - first_event:,.1f} s; "
                    "their events wait in the outbox"
                )

            # 5: release and wait
            postgres = ProcessCpu("postgres", f" {args.database} ")
            redis_server = ProcessCpu("redis-server")
            postgres.mark()
            redis_server.mark()
            me = psutil.Process()
            idle = await idle_cpu_rate(workers, args.idle_seconds)
            marks = {
                "workers": sum(w.cpu() for w in workers),
                "workers_system": sum(w.cpu_split()[1] for w in workers),
                "relay": relay_child.cpu(),
                "fakes": fakes_child.cpu(),
                "bench": _cpu_seconds(me),
                "machine": _machine_busy(),
            }
            samples: list[Sample] = []

            def sample(final: int) -> None:
                samples.append(
                    Sample(
                        at=time.time() - released_at,
                        final=final,
                        workers=sum(w.cpu() for w in workers) - marks["workers"],
                        postgres=postgres.used(),
                        machine=_machine_busy() - marks["machine"],
                    )
                )

            sampler = (
                Sampler([w.pid for w in workers], workdir, args.sample_rate)
                if args.sample_rate
                else None
            )
            released_at = time.time()
            relay_child.send("go")
            if args.rate:
                phase(console, f"creating {requests:,} requests at {args.rate / 2:g} per second")
                creating = asyncio.create_task(
                    create_requests(tenants, requests, args.rate / 2, count_created)
                )
            else:
                phase(console, f"relay let go: {expected:,} notifications to send")
            counts, settled = await wait_settled(
                tenants,
                expected,
                args.max_wait,
                console,
                sample,
                creating,
                created,
            )
            ended_at = time.time()
            sampled = sampler.stop() if sampler else {}
            sampling_error = sampler.error if sampler else "off (--sample-rate 0)"
            cpu = Cpu(
                workers=sum(w.cpu() for w in workers) - marks["workers"],
                workers_system=sum(w.cpu_split()[1] for w in workers) - marks["workers_system"],
                workers_idle=idle * (ended_at - released_at),
                relay=relay_child.cpu() - marks["relay"],
                fakes=fakes_child.cpu() - marks["fakes"],
                postgres=postgres.used(),
                redis=redis_server.used(),
                bench=_cpu_seconds(me) - marks["bench"],
                machine_busy=_machine_busy() - marks["machine"],
                wall=ended_at - released_at,
            )
            if creating is not None:
                first_event, _ = await creating
            load_after = os.getloadavg()
            console.print(
                f"{'settled' if settled else '[red]NOT settled[/red]'} after "
                f"{ended_at - released_at:,.1f} s: {describe(counts)}"
            )

            # 6: outcome
            rows = await read_rows(tenants)
            events, unpublished = await outbox_counts(tenants)
            letters = await dead_letters(tenants)
            fakes_child.send("ledger")
            ledgers = json.loads(await asyncio.to_thread(fakes_child.read_line, 120.0))
            relay_child.send("stop")
            for worker in workers:
                worker.stop()
            errors_logged = {w.label: w.log_tail(50_000_000).count("Traceback") for w in workers}
    finally:
        plugins.set_runtime(None)
        manager.close()
        await engine.disconnect()
        await close_redis()
        if args.keep:
            console.print(f"kept database {args.database!r}, its roles and Redis keys (--keep)")
        else:
            dropped = await reset_database(admin_dsn, args.database, args.prefix, create=False)
            cleared = clear_redis(args.redis, NAMESPACE, args.prefix)
            console.print(
                f"dropped database {args.database!r}, {dropped} roles and {cleared} Redis keys"
            )
        if failures or args.keep:
            console.print(f"process logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    by_channel = channel_figures(rows, ledgers, baseline)
    start = released_at if not args.rate else first_event
    statuses = Counter(r.status for r in rows)
    finished = [r for r in rows if r.status not in UNFINISHED]
    t_all = finish_time(rows, 1.0)
    t_99 = finish_time(rows, 0.99)
    latency = Stats.of(latency_from(rows, released_at))
    unfinished = len(rows) - len(finished)
    missing = max(expected - len(rows), 0)
    sent_not_taken = sum(c.sent_not_taken for c in by_channel.values())
    lost = missing + unfinished + sent_not_taken
    ours = sum(c.duplicates_ours for c in by_channel.values())
    ambiguous = sum(c.duplicates_ambiguous for c in by_channel.values())
    sdk_cpu = sum(c.provider_calls * c.sdk_cpu_ms_per_call for c in by_channel.values()) / 1000
    delivered = sum(statuses[s] for s in DELIVERED)
    dead = statuses["dead"]
    result = {
        "notifications": len(rows),
        "expected": expected,
        "events": events,
        "unpublished_events": unpublished,
        "settled": settled,
        "throughput": per(len(finished), t_all - start),
        "throughput_99": per(0.99 * len(rows), t_99 - start),
        "seconds_to_all": t_all - start,
        "seconds_to_99": t_99 - start,
        "delivered": delivered,
        "statuses": dict(statuses),
        "dead": dead,
        "dead_letters": letters,
        "duplicates_ours": ours,
        "duplicates_ambiguous": ambiguous,
        "ambiguous_attempts": sum(c.ambiguous_attempts for c in by_channel.values()),
        "lost": lost,
        "lost_detail": {
            "never_written": missing,
            "unfinished": unfinished,
            "sent_but_no_provider_has_it": sent_not_taken,
        },
        "dead_but_taken": sum(c.dead_but_taken for c in by_channel.values()),
        "latency_s": asdict(latency),
        "channels": {
            ch: asdict(c)
            | {"provider_calls": c.provider_calls, "attempts_without_call": c.attempts_without_call}
            for ch, c in by_channel.items()
        },
        "cpu_s": asdict(cpu) | {"others": cpu.others},
        "cpu_ms_per_notification": {
            "workers": per(cpu.workers * 1000, len(rows)),
            "workers_idle": per(cpu.workers_idle * 1000, len(rows)),
            "workers_system": per(cpu.workers_system * 1000, len(rows)),
            "sdk": per(sdk_cpu * 1000, len(rows)),
            "ours": per((cpu.workers - cpu.workers_idle - sdk_cpu) * 1000, len(rows)),
            **sampled_split(cpu, sampled, len(rows)),
            "relay": per(cpu.relay * 1000, len(rows)),
            "postgres": per(cpu.postgres * 1000, len(rows)),
            "fakes": per(cpu.fakes * 1000, len(rows)),
        },
        "samples": sampled,
        "sampling_error": sampling_error,
        "main_phase": main_phase(samples, expected),
        "tracebacks_logged": errors_logged,
        "load_average_after": list(load_after[:2]),
    }
    figures.update(result)
    channel_table(console, by_channel)
    summary(console, args, result, cpu, cores)
    if lost:
        failures.append(
            f"{lost} notifications lost ({missing} never written, {unfinished} never finished, "
            f"{sent_not_taken} marked sent that no provider took)"
        )
    if ours:
        failures.append(f"{ours} duplicates from our side")
    if not settled:
        failures.append(f"the notifications did not settle within {args.max_wait:g} s")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump({**figures, "failures": failures}, out, indent=2, default=str)
    for failure in failures:
        console.print(f"[red]FAILED: {failure}[/red]")
    return 1 if failures else 0


def sampled_split(cpu: Cpu, sampled: dict[str, int], n: int) -> dict[str, float]:
    """The workers' CPU split by where py-spy found them working: ours is their CPU in our
    code (the Dramatiq worker's included) less what they use when idle, the provider's is the
    rest."""
    working = sampled.get("ours", 0) + sampled.get("provider", 0)
    if not working:
        return {}
    share = sampled["ours"] / working
    return {
        "ours_sampled": per((cpu.workers * share - cpu.workers_idle) * 1000, n),
        "sdk_sampled": per(cpu.workers * (1 - share) * 1000, n),
        "ours_sampled_share": share,
    }


# --- output -----------------------------------------------------------------------------------


def channel_table(console: Console, by_channel: dict[str, ChannelFigures]) -> None:
    from rich.table import Table

    table = Table(title="by channel: our log and the fake's ledger", title_justify="left")
    columns = (
        "channel",
        "rows",
        "statuses",
        "attempts",
        "attempts with no call (circuit open)",
        "provider calls (ok / refused / lost answer / timed out)",
        "messages taken",
        "dups ours",
        "dups ambiguous",
        "ambiguous retries logged",
        "sent, not taken",
        "dead, taken",
        "SDK CPU per call",
    )
    for column in columns:
        table.add_column(column, justify="right", overflow="fold")
    for channel, c in by_channel.items():
        table.add_row(
            channel,
            f"{c.rows:,}",
            ", ".join(f"{s} {k:,}" for s, k in sorted(c.statuses.items())),
            f"{c.attempts:,}",
            f"{c.attempts_without_call:,}",
            f"{c.provider_calls:,} ("
            + " / ".join(f"{c.calls.get(m, 0):,}" for m in ("ok", "refuse", "lose", "timeout"))
            + ")",
            f"{c.taken:,}",
            f"{c.duplicates_ours:,}",
            f"{c.duplicates_ambiguous:,}",
            f"{c.ambiguous_attempts:,}",
            f"{c.sent_not_taken:,}",
            f"{c.dead_but_taken:,}",
            ms(c.sdk_cpu_ms_per_call),
        )
    console.print(table)


def summary(
    console: Console, args: argparse.Namespace, r: dict[str, Any], cpu: Cpu, cores: int
) -> None:
    from rich.table import Table

    n = r["notifications"]
    per_n = r["cpu_ms_per_notification"]
    calls = sum(c["provider_calls"] for c in r["channels"].values())
    table = Table(
        title=f"summary: {n:,} notifications (email and SMS), {args.tenants} companies, "
        f"{args.processes} worker processes x {args.threads} threads, fakes failing "
        f"{args.refuse:.0%} / {args.lose:.0%} / {args.timeout:.0%}",
        title_justify="left",
    )
    table.add_column("figure", overflow="fold")
    table.add_column("measured", justify="right", no_wrap=True)
    table.add_column("goal", overflow="fold")
    table.add_column("", no_wrap=True, min_width=6)
    table.add_column("note", overflow="fold")
    start = "first event" if args.rate else "release of the events"
    table.add_row(
        "throughput, to 99 % final",
        f"{r['throughput_99']:,.0f} /s",
        f">= {GOAL_RATE:.0f} /s",
        verdict(r["throughput_99"] >= GOAL_RATE),
        f"{0.99 * n:,.0f} final {seconds(r['seconds_to_99'])} after the {start}"
        + (f"; events offered at {args.rate:g}/s" if args.rate else ""),
    )
    table.add_row(
        "throughput, to the last final row",
        f"{r['throughput']:,.0f} /s",
        "",
        verdict(None),
        f"all final {seconds(r['seconds_to_all'])} after the {start}; the tail is retries "
        "waiting out their back-off (1-2 s, doubling)",
    )
    table.add_row(
        "delivered (sent or logged)",
        f"{r['delivered']:,}",
        "",
        verdict(None),
        f"{r['delivered'] / n:.2%} of {n:,}; statuses: "
        + ", ".join(f"{s} {k:,}" for s, k in sorted(r["statuses"].items())),
    )
    letters = r["dead_letters"]
    table.add_row(
        "dead-lettered",
        f"{r['dead']:,}",
        "",
        verdict(None),
        f"rows dead after {MAX_ATTEMPTS} attempts; dead letters in the companies' stores: "
        + (", ".join(f"{a} {k}" for a, k in sorted(letters.items())) or "none")
        + f"; {r['dead_but_taken']} of the dead were taken by the provider on an ambiguous "
        "attempt",
    )
    table.add_row(
        "duplicates from our side",
        f"{r['duplicates_ours']:,}",
        "0",
        verdict(r["duplicates_ours"] == 0),
        "a message the provider took again after answering ok",
    )
    table.add_row(
        "ambiguous duplicates",
        f"{r['duplicates_ambiguous']:,}",
        "counted",
        verdict(r["duplicates_ambiguous"] <= r["ambiguous_attempts"]),
        f"taken again after a lost answer or a time-out (the retry policy); our log counts "
        f"{r['ambiguous_attempts']:,} ambiguous retries",
    )
    detail = r["lost_detail"]
    table.add_row(
        "lost",
        f"{r['lost']:,}",
        "0",
        verdict(r["lost"] == 0),
        f"never written {detail['never_written']}, never final {detail['unfinished']}, "
        f"logged sent but no provider took it {detail['sent_but_no_provider_has_it']}",
    )
    lat = r["latency_s"]
    table.add_row(
        "event-to-send latency p50 / p99",
        f"{lat['p50']:,.2f} / {lat['p99']:,.2f} s",
        "",
        verdict(None),
        ("from the event's commit" if args.rate else "from the release of the burst (a "
         "queue of every event at once)") + f"; max {lat['max']:,.1f} s",
    )  # fmt: skip
    table.add_row(
        "CPU per notification, our share (workers minus SDK)",
        ms(per_n["ours"]),
        f"< {GOAL_OUR_CPU_MS:g} ms",
        verdict(per_n["ours"] < GOAL_OUR_CPU_MS),
        f"the {args.processes} worker processes used {ms(per_n['workers'])} per notification "
        f"({ms(per_n['workers_system'])} of it in the kernel), less {ms(per_n['workers_idle'])} "
        f"they use when idle ({cpu.workers_idle / cpu.wall * 1000:.0f} ms/s: polling, "
        f"heartbeats) and {ms(per_n['sdk'])} in the SDK ({calls:,} provider calls, "
        f"{calls / n:.2f} per notification, x the faulty baseline's CPU per call: SMS "
        f"{ms(r['channels']['sms']['sdk_cpu_ms_per_call'])}, email "
        f"{ms(r['channels']['email']['sdk_cpu_ms_per_call'])})",
    )
    if "ours_sampled" in per_n:
        samples = r["samples"]
        table.add_row(
            "CPU per notification, our share (sampled)",
            ms(per_n["ours_sampled"]),
            f"< {GOAL_OUR_CPU_MS:g} ms",
            verdict(per_n["ours_sampled"] < GOAL_OUR_CPU_MS),
            f"py-spy in the workers ({args.sample_rate}/s each): {samples['ours']:,} samples "
            f"in our code and Dramatiq, {samples['provider']:,} in provider calls, "
            f"{samples['waiting']:,} waiting; our {per_n['ours_sampled_share']:.0%} of the "
            f"workers' CPU less the idle {ms(per_n['workers_idle'])}; provider calls "
            f"{ms(per_n['sdk_sampled'])} "
            f"({ms(per_n['sdk_sampled'] * n / max(calls, 1))} per call, against "
            "the baseline's above)",
        )
    elif r.get("sampling_error"):
        table.add_row(
            "CPU per notification, our share (sampled)", "-", "", verdict(None),
            f"no samples: {r['sampling_error']}",
        )  # fmt: skip
    table.add_row(
        "CPU per notification, elsewhere",
        f"{ms(per_n['relay'])} relay",
        "",
        verdict(None),
        f"Postgres backends {ms(per_n['postgres'])}, fakes (not ours) {ms(per_n['fakes'])}, "
        f"redis-server (shared) {ms(cpu.redis * 1000 / n)}",
    )
    main = r["main_phase"]
    if main:
        table.add_row(
            "machine until 90 % final",
            f"{main['machine_cores']:,.2f} / {cores} cores",
            "",
            verdict(None),
            f"{main['seconds']:,.0f} s at {main['rate']:,.0f} notifications/s; workers "
            f"{main['workers_cores']:.2f}, Postgres {main['postgres_cores']:.2f} cores, the rest "
            "the fakes, Redis, the bench and other processes",
        )
    busy = cpu.machine_busy / cpu.wall if cpu.wall else math.nan
    table.add_row(
        "machine during the whole run",
        f"{busy:,.2f} / {cores} cores",
        "",
        verdict(None),
        f"workers {cpu.workers / cpu.wall:.2f}, Postgres {cpu.postgres / cpu.wall:.2f}, "
        f"fakes {cpu.fakes / cpu.wall:.2f}, relay {cpu.relay / cpu.wall:.2f}, bench "
        f"{cpu.bench / cpu.wall:.2f}, redis {cpu.redis / cpu.wall:.2f}, other processes "
        f"{cpu.others / cpu.wall:.2f} cores; load average after "
        f"{r['load_average_after'][0]:.2f} / {r['load_average_after'][1]:.2f}",
    )
    console.print(table)


# --- command line ----------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--notifications", type=int, default=None, help="how many (10000)")
    parser.add_argument("--smoke", action="store_true", help="200 notifications, 2 companies")
    parser.add_argument("--tenants", type=int, default=None, help="companies (4)")
    parser.add_argument("--processes", type=int, default=2, help="worker processes")
    parser.add_argument("--threads", type=int, default=16, help="threads per worker process")
    parser.add_argument(
        "--rate", type=float, default=0.0, help="notifications/s offered (0: a burst)"
    )
    parser.add_argument("--refuse", type=float, default=None, help="share of calls refused (0.1)")
    parser.add_argument("--lose", type=float, default=None, help="share whose answer is lost (0.1)")
    parser.add_argument("--timeout", type=float, default=None, help="share that time out (0.1)")
    parser.add_argument("--stall", type=float, default=1.5, help="a time-out's answer delay (s)")
    parser.add_argument(
        "--idle-seconds", type=float, default=10.0, help="idle workers' CPU measured this long"
    )
    parser.add_argument("--baseline-calls", type=int, default=None, help="per channel (500)")
    parser.add_argument("--max-wait", type=float, default=None, help="seconds to settle (900)")
    parser.add_argument("--dsn-admin", default=DEFAULT_ADMIN_DSN, help="admin connection")
    parser.add_argument("--database", default=None, help="(patone_bench_notifications)")
    parser.add_argument("--prefix", default=None, help="company slug prefix (benchnotif)")
    parser.add_argument("--redis", default=DEFAULT_REDIS)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--sample-rate", type=int, default=50, help="py-spy samples per second per worker (0: off)"
    )
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    parser.add_argument("--keep", action="store_true", help="keep the database, roles and logs")
    # internal: the helper processes are this file too
    parser.add_argument("--fakes-process", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--relay-process", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--sdk-baseline", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--twilio-url", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--smtp-port", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--faulty-twilio-url", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--faulty-smtp-port", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--namespace", default=NAMESPACE, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    smoke = args.smoke
    defaults: dict[str, Any] = {
        "notifications": 200 if smoke else 10_000,
        "tenants": 2 if smoke else 4,
        # Fewer faults in the smoke run: each fault mode still happens, but a notification
        # that fails five times in a row (and waits ~45 s of back-off) becomes rare.
        "refuse": 0.05 if smoke else 0.1,
        "lose": 0.05 if smoke else 0.1,
        "timeout": 0.05 if smoke else 0.1,
        "baseline_calls": 100 if smoke else 500,
        "max_wait": 240.0 if smoke else 900.0,
        "database": "patone_bench_notifications_smoke" if smoke else "patone_bench_notifications",
        "prefix": "benchnotifsmoke" if smoke else "benchnotif",
    }
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.fakes_process or args.relay_process or args.sdk_baseline:
        return args
    if args.notifications < 2 or args.tenants < 1 or args.processes < 1 or args.threads < 1:
        parser.error("--notifications (>= 2), --tenants, --processes, --threads must be positive")
    if not 0 <= args.refuse + args.lose + args.timeout <= 1:
        parser.error("--refuse + --lose + --timeout must be between 0 and 1")
    check_names(parser, args.prefix, args.database)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.fakes_process:
        return fakes_main(args)
    if args.sdk_baseline:
        return baseline_main(args)
    if args.relay_process:
        return relay_main(args)
    return asyncio.run(run(args, make_console(200)))


if __name__ == "__main__":
    sys.exit(main())

"""Durable payments per second through the HTTP API, end to end, against the same server's
trivial endpoints in the same run.

    .venv/bin/python bench/api.py            # full run (about a minute)
    .venv/bin/python bench/api.py --quick    # smaller counts, for a smoke test

A fresh database is made with `scopay init`, signing keys for DEMACNX0 and DEMBCNX0 with
`scopay keys issue`, and `scopay serve` runs as a subprocess on a free loopback port. A
bounded asyncio load generator (scopay.client.AsyncScopayClient) then measures, each phase
with a fixed count and a time cap, traffic to 127.0.0.1 only:

- payments: signed POST /v1/payments between DEMACNX0 and DEMBCNX0, amounts small enough to
  settle at once, 64 workers (32 with --quick) in a closed loop, each with its own
  one-connection client, half paying from each bank. A 201 comes only after the payment's commit
  (WAL, synchronous=FULL), so every answered payment is durable. p50 and p99 latency.
- half load: the same payments paced open-loop at 50% of the measured maximum rate; latency is
  counted from each payment's scheduled time, so a stall cannot hide queued requests.
- trivial: GET /health (unsigned) and a signed GET /v1/participants/DEMACNX0, same workers.
- bulk: POST /v1/payments/bulk with 1,000 payments a request, two workers (one with
  --quick), the requests signed ahead like the single payments (with --client httpx, built
  and signed by the client as it goes); every answer is read after the phase, and the run
  fails unless each of its payments settled.

The server's CPU a payment in the payments and bulk phases (`scopay serve` and its verifier,
read from /proc) is printed too: the same code takes more CPU while other tenants share the
machine's cores, so it tells a slowed machine from a slower server.
Afterwards `scopay reconcile` proves the ledger. The load generator shares the machine with
the server: on a 2-core sandbox the two compete for CPU, so the figures are a floor.
The last line is one JSON object.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import uvloop
from rich.console import Console
from rich.table import Table

from _options import parser, scratch
from scopay.client import AsyncScopayClient, KeyFile, read_key_file, sign_request

HOST = "127.0.0.1"  # the only address this benchmark talks to
BANKS = ("DEMACNX0", "DEMBCNX0")
STARTUP_S_MAX = 30
REQUEST_TIMEOUT_S = 60
KEEPALIVE_S = 2.0  # below uvicorn's keep-alive timeout of 5 s
BULK_SIZE = 1000
LOAD_QUIET_MAX = 0.5  # 1-minute load average above which other work skews the figures
console = Console(stderr=True)


@dataclass(frozen=True)
class Plan:
    workers: int
    payments: int
    trivial: int
    half_load_s: float
    bulk_requests: int
    bulk_workers: int
    phase_cap_s: float


FULL = Plan(workers=64, payments=6000, trivial=4000, half_load_s=12, bulk_requests=20,
            bulk_workers=2, phase_cap_s=45)
QUICK = Plan(workers=32, payments=800, trivial=600, half_load_s=3, bulk_requests=3,
             bulk_workers=1, phase_cap_s=15)


@dataclass
class Phase:
    name: str
    done: int
    failed: int
    elapsed_s: float
    latencies_ms: list[float]

    @property
    def per_s(self) -> float:
        return self.done / self.elapsed_s if self.elapsed_s else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


# -- the server --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def process_cpu_s(pid: int) -> float | None:
    """CPU seconds (user and system) used so far by a process and its live children (the
    server's verifier), from /proc; None where there is no /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    total, found = 0.0, False
    try:
        entries = [entry for entry in os.listdir("/proc") if entry.isdigit()]
    except OSError:
        return None
    for entry in entries:
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        if int(entry) == pid or int(fields[1]) == pid:  # fields[1]: the parent's pid
            total += (int(fields[11]) + int(fields[12])) / tick
            found = True
    return total if found else None


def scopay_command() -> list[str]:
    script = Path(sys.executable).with_name("scopay")
    return [str(script)] if script.exists() else [shutil.which("scopay") or "scopay"]


def prepare_database(folder: Path) -> tuple[Path, dict[str, Path]]:
    db = folder / "bench.db"
    run([*scopay_command(), "init", "--db", str(db), "--key-file", str(folder / "operator.key")])
    keys = {}
    for bic in BANKS:
        keys[bic] = folder / f"{bic}.key"
        run([*scopay_command(), "keys", "issue", bic, "--out", str(keys[bic]), "--db", str(db)])
    return db, keys


def run(command: list[str]) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def start_server(db: Path, port: int, log: Path) -> subprocess.Popen:
    with open(log, "w") as handle:
        server = subprocess.Popen(
            [*scopay_command(), "serve", "--db", str(db), "--host", HOST, "--port", str(port)],
            stdout=handle, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + STARTUP_S_MAX
    while True:
        try:
            if httpx.get(f"http://{HOST}:{port}/health", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            stop_server(server)
            raise SystemExit(f"scopay serve did not start; see {log}")
        time.sleep(0.05)


def stop_server(server: subprocess.Popen) -> None:
    if server.poll() is None:
        server.terminate()  # uvicorn shuts down cleanly on SIGTERM; the CLI writes a checkpoint
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)


# -- load ----------------------------------------------------------------------------------------


def payment_body(debtor: str, n: int) -> dict:
    creditor = BANKS[1] if debtor == BANKS[0] else BANKS[0]
    return {"uetr": str(uuid.uuid4()), "instruction_id": f"B{uuid.uuid4().hex[:20]}",
            "end_to_end_id": f"BENCH-{n}", "debtor_agent": debtor, "creditor_agent": creditor,
            "debtor": {"name": "Bench debtor"}, "creditor": {"name": "Bench creditor"},
            "amount": "0.01", "currency": "CNY"}


def raw_request(method: str, path: str, key: KeyFile | None, body: dict | None = None) -> bytes:
    """The exact bytes of one HTTP/1.1 request, signed ahead of time by scopay.client (so the
    load generator spends its time sending, not signing)."""
    content = None if body is None else json.dumps(body).encode()
    headers = {"content-type": "application/json"} if content is not None else {}
    request = httpx.Request(method, f"http://{HOST}{path}", content=content, headers=headers)
    if key is not None:
        sign_request(request, key)
    lines = [f"{method} {path} HTTP/1.1"]
    lines += [f"{name}: {value}" for name, value in request.headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (content or b"")


class RawConnection:
    """One keep-alive HTTP/1.1 connection that sends prepared bytes and reads the answer:
    a few microseconds of client work a request, where httpx takes about a millisecond."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.last_used = 0.0

    async def send(self, data: bytes) -> tuple[int, bytes]:
        # Like the httpx clients, drop a connection idle for KEEPALIVE_S: uvicorn closes
        # idle ones after 5 s, and a request must not go out on one being closed.
        if self.writer is not None and time.monotonic() - self.last_used > KEEPALIVE_S:
            await self.aclose()
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(HOST, self.port)
        try:
            answer = await self._exchange(data)
        except BaseException:
            await self.aclose()  # the next request starts on a new connection
            raise
        self.last_used = time.monotonic()
        return answer

    async def _exchange(self, data: bytes) -> tuple[int, bytes]:
        self.writer.write(data)
        await self.writer.drain()
        status_line = (await self.reader.readline()).split()
        if len(status_line) < 2:
            raise ConnectionResetError("the server closed the connection")
        status = int(status_line[1])
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)

    async def aclose(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.reader = self.writer = None


@dataclass
class Lane:
    """One worker's connections: a signed client for one bank and an unsigned client, one
    connection each. (One httpx pool shared by many workers slows down as it grows: its
    bookkeeping per request grows with the number of connections, and the client, not scopay,
    would be measured.)"""

    bank: str
    signed: AsyncScopayClient
    plain: httpx.AsyncClient
    raw: RawConnection

    async def aclose(self) -> None:
        await self.signed.aclose()
        await self.plain.aclose()
        await self.raw.aclose()


Call = Callable[[Lane, int], Awaitable[bool]]


async def attempt(call: Call, lane: Lane, n: int) -> bool:
    """One request; a dropped connection counts as a failure (reported), not a crash."""
    try:
        return await call(lane, n)
    except (httpx.TransportError, OSError, asyncio.IncompleteReadError) as error:
        console.print(f"[red]request {n} failed: {error!r}[/red]")
        return False


async def closed_loop(name: str, lanes: list[Lane], count: int, cap_s: float,
                      call: Call) -> Phase:
    """Each lane sends its next request as soon as the last one is answered, until `count`
    are sent or `cap_s` has passed."""
    latencies: list[float] = []
    failed = 0
    next_n = 0
    start = time.perf_counter()

    async def worker(lane: Lane) -> None:
        nonlocal next_n, failed
        while next_n < count and time.perf_counter() - start < cap_s:
            n, next_n = next_n, next_n + 1
            began = time.perf_counter()
            ok = await attempt(call, lane, n)
            latencies.append((time.perf_counter() - began) * 1000)
            failed += not ok

    await asyncio.gather(*(worker(lane) for lane in lanes))
    return Phase(name, len(latencies) - failed, failed, time.perf_counter() - start, latencies)


async def open_loop(name: str, rate_per_s: float, duration_s: float, lanes: list[Lane],
                    call: Call) -> Phase:
    """Send at a fixed rate on free lanes; latency counts from each request's scheduled time,
    so waiting for a free lane counts too."""
    loop = asyncio.get_running_loop()
    count = max(1, int(rate_per_s * duration_s))
    free: asyncio.Queue[Lane] = asyncio.Queue()
    for lane in lanes:
        free.put_nowait(lane)
    latencies: list[float] = []
    failures = 0

    async def one(n: int, due: float) -> None:
        nonlocal failures
        lane = await free.get()
        try:
            ok = await attempt(call, lane, n)
        finally:
            free.put_nowait(lane)
        latencies.append((loop.time() - due) * 1000)
        failures += not ok

    start = loop.time()
    tasks = []
    for n in range(count):
        due = start + n / rate_per_s
        if due > loop.time():
            await asyncio.sleep(due - loop.time())
        tasks.append(asyncio.create_task(one(n, due)))
    await asyncio.gather(*tasks)
    return Phase(name, count - failures, failures, loop.time() - start, latencies)


def open_lanes(base_url: str, keys: dict[str, Path], count: int, port: int) -> list[Lane]:
    """Half the lanes pay from DEMACNX0, half from DEMBCNX0, so balances stay level."""
    # Idle connections are dropped before uvicorn's 5 s keep-alive timeout closes them, so a
    # request never goes out on a connection the server is closing at that moment.
    one = httpx.Limits(max_connections=1, max_keepalive_connections=1,
                       keepalive_expiry=KEEPALIVE_S)
    tls = ssl.create_default_context()  # plain HTTP here; shared so clients start fast
    files = {bic: read_key_file(path) for bic, path in keys.items()}
    lanes = []
    for n in range(count):
        bank = BANKS[n % len(BANKS)]
        lanes.append(Lane(bank, AsyncScopayClient(base_url, files[bank], limits=one,
                                                  verify=tls, timeout=REQUEST_TIMEOUT_S),
                          httpx.AsyncClient(base_url=base_url, limits=one, verify=tls,
                                            timeout=REQUEST_TIMEOUT_S), RawConnection(port)))
    return lanes


async def drive(base_url: str, keys: dict[str, Path], plan: Plan, raw: bool,
                server_pid: int) -> tuple[dict[str, Phase], dict[str, float | None]]:
    """The phases, and the server's CPU seconds (verifier included) in the payments and the
    bulk phases."""
    port = int(base_url.rsplit(":", 1)[1])
    lanes = open_lanes(base_url, keys, plan.workers, port)
    files = {bic: read_key_file(path) for bic, path in keys.items()}
    offset = {"n": 0}
    prepared: dict[str, list[bytes]] = {}

    def prepare(count: int) -> None:
        """Sign the phase's requests before it starts: payments alternate between banks."""
        prepared["pay"] = [raw_request("POST", "/v1/payments", files[BANKS[n % 2]],
                                       payment_body(BANKS[n % 2], offset["n"] + n))
                           for n in range(count)]
        prepared["participant"] = [raw_request("GET", f"/v1/participants/{BANKS[0]}",
                                               files[BANKS[0]]) for _ in range(count)]

    async def pay(lane: Lane, n: int) -> bool:
        if raw:
            status, body = await lane.raw.send(prepared["pay"][n])
            return status == 201 and b'"settled"' in body
        answer = await lane.signed.post("/v1/payments",
                                        json=payment_body(lane.bank, offset["n"] + n))
        return answer.status_code == 201 and answer.json()["status"] == "settled"

    health_request = raw_request("GET", "/health", None)

    async def health(lane: Lane, _n: int) -> bool:
        if raw:
            return (await lane.raw.send(health_request))[0] == 200
        return (await lane.plain.get("/health")).status_code == 200

    async def participant(lane: Lane, n: int) -> bool:
        if raw:
            return (await lane.raw.send(prepared["participant"][n]))[0] == 200
        answer = await lane.signed.get(f"/v1/participants/{BANKS[0]}")
        return answer.status_code == 200

    def bulk_body(bank: str, n: int) -> dict:
        return {"payments": [payment_body(bank, offset["n"] + n * BULK_SIZE + i)
                             for i in range(BULK_SIZE)]}

    bulk_answers: list[bytes] = []

    async def bulk(lane: Lane, n: int) -> bool:
        if raw:  # signed ahead, like the single payments; the answers are read after the phase
            status, body = await lane.raw.send(prepared["bulk"][n])
            bulk_answers.append(body)
            return status == 200
        answer = await lane.signed.post("/v1/payments/bulk", json=bulk_body(lane.bank, n))
        return answer.status_code == 200 and all(
            p["status"] == "settled" for p in answer.json())

    phases: dict[str, Phase] = {}
    payments_cpu_s = bulk_cpu_s = None
    try:
        prepare(plan.workers * 4)
        await closed_loop("warm-up", lanes, plan.workers * 4, plan.phase_cap_s, pay)
        offset["n"] = 10**6
        prepare(plan.payments)
        cpu_before = process_cpu_s(server_pid)
        phases["payments"] = await closed_loop("payments, full concurrency", lanes,
                                               plan.payments, plan.phase_cap_s, pay)
        cpu_after = process_cpu_s(server_pid)
        payments_cpu_s = (None if cpu_before is None or cpu_after is None
                          else cpu_after - cpu_before)
        half_rate = phases["payments"].per_s / 2
        offset["n"] = 2 * 10**6
        prepare(max(plan.trivial, int(half_rate * plan.half_load_s) + 1))
        phases["half"] = await open_loop("payments, 50% of max rate (open loop)", half_rate,
                                         plan.half_load_s, lanes, pay)
        phases["health"] = await closed_loop("GET /health (unsigned)", lanes, plan.trivial,
                                             plan.phase_cap_s, health)
        phases["participant"] = await closed_loop(
            "GET /v1/participants/DEMACNX0 (signed)", lanes, plan.trivial,
            plan.phase_cap_s, participant)
        offset["n"] = 3 * 10**6
        if raw:
            prepared["bulk"] = [raw_request("POST", "/v1/payments/bulk", files[BANKS[n % 2]],
                                            bulk_body(BANKS[n % 2], n))
                                for n in range(plan.bulk_requests)]
        cpu_before = process_cpu_s(server_pid)
        phases["bulk"] = await closed_loop(
            f"POST /v1/payments/bulk ({BULK_SIZE} a request)", lanes[:plan.bulk_workers],
            plan.bulk_requests, plan.phase_cap_s * 2, bulk)
        cpu_after = process_cpu_s(server_pid)
        bulk_cpu_s = (None if cpu_before is None or cpu_after is None
                      else cpu_after - cpu_before)
        unsettled = sum(1 for body in bulk_answers
                        for p in json.loads(body) if p["status"] != "settled")
        if unsettled:
            raise SystemExit(f"{unsettled} bulk payments did not settle")
    finally:
        for lane in lanes:
            await lane.aclose()
    return phases, {"payments": payments_cpu_s, "bulk": bulk_cpu_s}


# -- report --------------------------------------------------------------------------------------


def report(phases: dict[str, Phase], reconciled: bool, plan: Plan, load_before: float,
           cpu_s: dict[str, float | None]) -> dict:
    payments, half, health = phases["payments"], phases["half"], phases["health"]
    participant, bulk = phases["participant"], phases["bulk"]
    bulk_payments_per_s = bulk.per_s * BULK_SIZE
    table = Table(title=f"scopay HTTP API on SQLite (WAL, synchronous=FULL), "
                        f"{plan.workers} workers, loopback")
    for column in ("phase", "done", "failed", "per s", "p50 ms", "p99 ms"):
        table.add_column(column, justify="left" if column == "phase" else "right")
    for phase in phases.values():
        unit = BULK_SIZE if phase is bulk else 1
        table.add_row(phase.name, f"{phase.done * unit:,}", str(phase.failed),
                      f"{phase.per_s * unit:,.0f}", f"{phase.percentile(50):.1f}",
                      f"{phase.percentile(99):.1f}")
    console.print(table)
    cores = os.cpu_count() or 0
    console.print(f"[yellow]{cores} CPU cores: the load generator and the server share them, so "
                  "these figures are a floor, not the server's capacity.[/yellow]")
    if load_before > LOAD_QUIET_MAX:
        console.print(f"[red]The machine was busy before the run (1-minute load average "
                      f"{load_before:.2f}): other processes took CPU from both sides.[/red]")
    cpu_us = (None if cpu_s["payments"] is None or not payments.done
              else 1e6 * cpu_s["payments"] / payments.done)
    bulk_cpu_us = (None if cpu_s["bulk"] is None or not bulk.done
                   else 1e6 * cpu_s["bulk"] / (bulk.done * BULK_SIZE))
    if cpu_us is not None and bulk_cpu_us is not None:
        console.print(f"server CPU a payment (scopay serve and its verifier): {cpu_us:.0f} µs "
                      f"single, {bulk_cpu_us:.0f} µs in bulk; the same code costs more of it "
                      "while other tenants share the cores")
    console.print(f"payments/s vs signed trivial GET: {payments.per_s / participant.per_s:.2f}; "
                  f"vs GET /health: {payments.per_s / health.per_s:.2f}; "
                  f"bulk vs single: {bulk_payments_per_s / payments.per_s:.1f}x; "
                  f"ledger reconciled: {reconciled}")
    return {
        "payments_per_s": round(payments.per_s, 1),
        "p50_ms": round(payments.percentile(50), 1),
        "p99_ms": round(payments.percentile(99), 1),
        "half_load_payments_per_s": round(half.per_s, 1),
        "p99_ms_at_half_load": round(half.percentile(99), 1),
        "p50_ms_at_half_load": round(half.percentile(50), 1),
        "health_rps": round(health.per_s, 1),
        "signed_get_rps": round(participant.per_s, 1),
        "ratio_vs_trivial": round(payments.per_s / participant.per_s, 3),
        "ratio_vs_health": round(payments.per_s / health.per_s, 3),
        "bulk_payments_per_s": round(bulk_payments_per_s, 1),
        "failed": sum(p.failed for p in phases.values()),
        "reconciled": reconciled,
        "workers": plan.workers,
        "cpu_cores": cores,
        "load_average_before": round(load_before, 2),
        "server_cpu_us_per_payment": None if cpu_us is None else round(cpu_us),
        "bulk_server_cpu_us_per_payment": None if bulk_cpu_us is None else round(bulk_cpu_us),
    }


def main() -> None:
    options = parser(__doc__, "small counts, for a smoke test", writes="the database")
    options.add_argument("--workers", type=int, default=None,
                        help="concurrent workers (default: 64, or 32 with --quick)")
    options.add_argument("--client", choices=("raw", "httpx"), default="raw",
                        help="raw: pre-signed requests on plain keep-alive sockets (default; the "
                             "generator stays light); httpx: scopay.client.AsyncScopayClient")
    args = options.parse_args()
    plan = QUICK if args.quick else FULL
    if args.workers is not None:
        plan = replace(plan, workers=max(1, args.workers))
    load_before = os.getloadavg()[0]
    with scratch(args, "scopay-bench-api-") as folder:
        db, keys = prepare_database(Path(folder))
        port = free_port()
        log = Path(folder) / "serve.log"
        server = start_server(db, port, log)
        try:
            # uvloop (installed with uvicorn[standard]) keeps the load generator's own CPU
            # use low: it shares the machine with the server
            phases, cpu_s = uvloop.run(drive(
                f"http://{HOST}:{port}", keys, plan, raw=args.client == "raw",
                server_pid=server.pid))
        except Exception:
            console.print(f"[red]the run failed; the server's log ends:[/red]\n"
                          f"{log.read_text()[-4000:]}")
            raise
        finally:
            stop_server(server)
        reconciled = "reconciled" in run([*scopay_command(), "reconcile", "--db", str(db)])
    summary = report(phases, reconciled, plan, load_before, cpu_s)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

"""The scopay command line: set up, serve, move money, look at balances, prove the ledger.

Every command works on the SQLite database named by --db (default var/scopay.db). Commands
that write take the database's writer lock, so they refuse to run while `scopay serve` holds
it: stop the server, or use the HTTP API.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich import box
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from scopay.api import signing
from scopay.api.auth import TRANSFER_ID_SEPARATOR
from scopay.client import (
    KeyFile,
    ScopayClient,
    ScopayProblem,
    new_private_key,
    raise_for_problem,
    read_key_file,
    write_key_file,
)
from scopay.domain.ledger import Transfer
from scopay.domain.money import (
    AmountError,
    CurrencyError,
    format_amount,
    parse_message_amount,
)
from scopay.domain.rejection import REJECTION_TEXT
from scopay.domain.rtgs import PAYMENT_TRANSFER_PREFIX
from scopay.engine.engine import CommandRefused, Engine
from scopay.engine.payments import RETURN_TRANSFER_PREFIX, RecoveryProgress
from scopay.reference.network import OPERATOR_BIC, plan_reference_network, state_facts
from scopay.store.sqlite import (
    SchemaTooNewError,
    SchemaTooOldError,
    SQLiteStore,
    StoreLinkedError,
    StoreLockedError,
)

app = typer.Typer(
    help="scopay: payment and settlement between the SCO states in their own currencies.",
    no_args_is_help=True, add_completion=False,
)
keys_app = typer.Typer(help="Issue, register and revoke participants' signing keys.",
                       no_args_is_help=True)
app.add_typer(keys_app, name="keys")
audit_app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
iso_app = typer.Typer(help="ISO 20022 messages: write an example, validate, send, read the "
                            "mailbox.",
                      no_args_is_help=True)
app.add_typer(iso_app, name="iso")
KeyOption = Annotated[Path, typer.Option("--key", help="Key file to sign with.")]
UrlOption = Annotated[str, typer.Option("--url", help="scopay server.")]
console = Console()
err = Console(stderr=True)

DbOption = Annotated[Path, typer.Option("--db", help="SQLite database file.",
                                        envvar="SCOPAY_DB")]
DEFAULT_DB = Path("var/scopay.db")
HEARTBEAT_S = 1.0  # how often the server lets time pass in the engine
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
# Ledger ids the CLI's transfers may not take: those of payments and returns, and those of
# participants' own transfers (BIC:own-id), so an operator's transfer never passes for one.
RESERVED_ID_PREFIXES = (PAYMENT_TRANSFER_PREFIX, RETURN_TRANSFER_PREFIX)


def now_us() -> int:
    return time.time_ns() // 1000


def reading(db: Path) -> SQLiteStore:
    """The store of an existing database, for commands that only read (a mistyped path is
    an error, not a new empty database)."""
    existing(db)
    return open_store(db, lock=False, migrate=False)


def existing(db: Path) -> None:
    """Exit 2 with one line unless a database is there: every command but `init` works on
    one that exists, and a mistyped path must not become a new, empty one."""
    if not db.is_file():
        err.print(f"[red]no scopay database at {db}[/red]: `scopay init --db {db}` makes one.")
        raise typer.Exit(2)


def open_store(db: Path, *, lock: bool, migrate: bool = True) -> SQLiteStore:
    """The store, or exit 2 with one line when it cannot be opened: this scopay is too old
    to read it, the file is no SQLite database, or the path cannot be used."""
    try:
        return SQLiteStore(db, lock=lock, migrate=migrate)
    except (SchemaTooNewError, SchemaTooOldError, StoreLinkedError) as error:
        err.print(f"[red]{error}[/red]")
    except sqlite3.DatabaseError as error:
        err.print(f"[red]{db} is not a scopay database[/red] ({error})")
    except OSError as error:
        err.print(f"[red]cannot open {db}[/red]: {error.strerror or error}")
    raise typer.Exit(2)


def reading_engine(db: Path) -> Engine:
    """An engine recovered from an existing database, beside a running server, to read."""
    store = reading(db)
    with recovery_progress() as progress:
        return Engine(store, progress=progress)


@contextmanager
def recovery_progress() -> Iterator[RecoveryProgress | None]:
    """A progress bar while the engine reads its store (minutes for millions of payments),
    on a terminal only: piped output and logs get none."""
    if not err.is_terminal:
        yield None
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err, transient=True) as bar:
        tasks: dict[str, TaskID] = {}

        def report(what: str, done: int, total: int) -> None:
            if what not in tasks:
                tasks[what] = bar.add_task(f"recovering {what}", total=total)
            bar.update(tasks[what], completed=done, total=total)

        yield report


def open_engine(db: Path, *, create: bool = False, **settings: bool) -> Engine:
    """The engine over the database (`create`: making it if it is not there, for `init`),
    the only writer while it is open."""
    if not create:
        existing(db)
    try:
        with recovery_progress() as progress:
            return Engine(open_store(db, lock=True), progress=progress, states=state_facts(),
                          **settings)
    except StoreLockedError as error:
        err.print(f"[red]{error}[/red]: stop `scopay serve` first, or use the HTTP API "
                  "(`scopay call`; `scopay keys issue ... --url` for a key).")
        raise typer.Exit(2) from None


@contextmanager
def writing(db: Path):
    """The engine for one writing command: a refused command exits 1 with its reason, and
    the database is released whatever happens."""
    engine = open_engine(db)
    try:
        yield engine
    except CommandRefused as error:
        err.print(f"[red]refused:[/red] {error}")
        raise typer.Exit(1) from None
    finally:
        engine.close()


def seed_reference_network(engine: Engine, at_us: int) -> tuple[int, int, int]:
    """Admit the SCO reference network, open its accounts, fund the demo banks."""
    plan = plan_reference_network()
    engine.admit_participants(plan.participants, at_us)
    engine.open_accounts(plan.accounts, at_us)
    outcomes = engine.submit(plan.funding, at_us)
    refused = [o for o in outcomes if o.rejection is not None]
    assert not refused, f"reference funding refused: {refused}"
    return len(plan.participants), len(plan.accounts), len(plan.funding)


def issue_key_file(engine: Engine, bic: str, path: Path, at_us: int) -> str:
    """Make an Ed25519 key pair, register its public half, write the key file (mode 600).
    The file is written beside `path` first and moved there once the key is registered: a
    registered key never lacks its private half, and a refused one leaves `path` as it was."""
    key = KeyFile(signing.new_key_id(), bic, new_private_key())
    written = path.with_name(f".{path.name}.{key.key_id}")
    write_key_file(written, key)
    try:
        engine.register_key(key.key_id, bic, key.public_key, at_us)
    except BaseException:
        written.unlink()
        raise
    place_key_file(written, path, key.key_id)
    return key.key_id


def place_key_file(written: Path, path: Path, key_id: str) -> None:
    """Put a registered key's file, written beside `path`, at `path`; never over a file
    there (it may hold a key still in use): CommandRefused if one appeared meanwhile, and
    the key stays in `written`."""
    try:
        os.link(written, path)
    except FileExistsError:
        raise CommandRefused(f"{path} appeared meanwhile; key {key_id} is registered but its "
                             f"private half is in {written}: revoke it, or rename that "
                             "file") from None
    written.unlink()


def refuse_existing_key_file(path: Path) -> None:
    """A key file is never overwritten: scopay keeps only a key's public half, so a private
    key lost that way (the operator's, say, by an `init` beside the live database) is gone,
    and whoever used it is locked out."""
    if path.exists() or path.is_symlink():
        err.print(f"[red]refused:[/red] {path} exists; it may hold a key in use, which "
                  "cannot be made again: choose another file, or move it away first")
        raise typer.Exit(2)


@app.command()
def init(db: DbOption = DEFAULT_DB,
         key_file: Annotated[Path | None, typer.Option(
             help="Where to write the operator's signing key (default: beside the database).",
         )] = None) -> None:
    """Create the database and seed the SCO reference network (central banks, demo banks)."""
    try:
        db.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        err.print(f"[red]cannot make the folder of {db}[/red]: {error.strerror or error}")
        raise typer.Exit(2) from None
    key_path = key_file or db.with_name("operator.key")
    if not db.exists():
        refuse_existing_key_file(key_path)  # another network's operator key, say
    engine = open_engine(db, create=True)
    try:
        if engine.participants:
            err.print(f"[yellow]{db} holds a network already; nothing changed.[/yellow]")
            raise typer.Exit(1)
        refuse_existing_key_file(key_path)
        at = now_us()
        participants, accounts, fundings = seed_reference_network(engine, at)
        key_id = issue_key_file(engine, OPERATOR_BIC, key_path, at)
    finally:
        engine.close()
    console.print(f"Seeded {participants} participants, {accounts} accounts, "
                  f"{fundings} funds-in transfers into {db}.")
    console.print(f"Operator key {key_id}: private key written to {key_path} (mode 600).")


@app.command()
def serve(db: DbOption = DEFAULT_DB,
          host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
          port: Annotated[int, typer.Option(help="TCP port.", min=1, max=65535)] = 8000,
          bypass_fifo: Annotated[bool, typer.Option(
              help="Let a covered normal payment settle past a waiting one.")] = True,
          priority_in_resolution: Annotated[bool, typer.Option(
              help="Gridlock resolution keeps each debtor's priority order.")] = True,
          rate_limit: Annotated[int | None, typer.Option(
              min=1, max=10**9, help="Requests a second each participant may make, "
              "sustained; over it the answer is 429 with Retry-After (default 10,000).")] = None,
          rate_burst: Annotated[int | None, typer.Option(
              min=1, max=10**9, help="Requests a participant may make at once (default twice "
              "the rate limit).")] = None,
          ) -> None:
    """Serve the HTTP API (and /docs) on the database; the only writer while it runs."""
    import uvicorn

    from scopay.api.app import create_app
    from scopay.api.http_protocol import SERVER_OPTIONS
    from scopay.api.security import RateLimiter
    from scopay.engine.runner import LoopRunner
    from scopay.iso20022.message import VALIDATED_TYPES
    from scopay.iso20022.schemas import SchemaUnavailable, check_schemas

    try:  # else every ISO 20022 message of a type whose schema is missing would fail
        check_schemas(VALIDATED_TYPES)
    except SchemaUnavailable as error:
        err.print(f"[red]cannot serve:[/red] {error}")
        raise typer.Exit(2) from None
    refusal = why_not_listen(host, port)  # said before recovery, which may take a while
    if refusal is not None:
        err.print(f"[red]cannot serve:[/red] {refusal}")
        raise typer.Exit(2)
    engine = open_engine(db, bypass_fifo_normal=bypass_fifo,
                         respect_priority_in_resolution=priority_in_resolution)
    runner = LoopRunner(engine, now_us).start(heartbeat_s=HEARTBEAT_S)
    stopped = False

    def stop() -> None:
        """Stop the engine with a checkpoint, once: at the server's shutdown (Ctrl-C or
        SIGTERM), or after it returns if it never started."""
        nonlocal stopped
        if not stopped:
            stopped = True
            runner.stop()
            engine.checkpoint(now_us())
            engine.close()

    console.print(f"scopay on http://{host}:{port} (API docs /docs), database {db}")
    try:
        limiter = RateLimiter(rate_limit, rate_burst)
        uvicorn.run(create_app(runner, on_shutdown=stop, rate_limiter=limiter), host=host,
                    port=port, log_level="warning", **SERVER_OPTIONS)
    finally:
        stop()


def why_not_listen(host: str, port: int) -> str | None:
    """Why the server could not listen there, or None if it can: every address the host
    names is bound as the server's own listening does it (asyncio's create_server: each
    address getaddrinfo gives, SO_REUSEADDR, IPv6 sockets IPv6-only). Asked before saying
    it serves; another process may still take the port in between (the server then says
    so itself)."""
    import errno
    import socket

    try:
        addresses = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                       flags=socket.AI_PASSIVE)
    except OSError as error:
        return f"cannot listen on {host}:{port} ({error.strerror or error})"
    probes = []
    try:
        for family, kind, protocol, _, address in dict.fromkeys(addresses):
            probe = socket.socket(family, kind, protocol)
            probes.append(probe)  # held until all are bound, as the server holds them
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            probe.bind(address)
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            return (f"port {port} on {host} is in use: choose another with --port (`make run "
                    "PORT=8001`), and give other commands --url")
        return f"cannot listen on {host}:{port} ({error.strerror or error})"
    finally:
        for probe in probes:
            probe.close()
    return None


@app.command(context_settings={"ignore_unknown_options": True})
def transfer(
    debit_account: Annotated[int, typer.Argument(help="Account id to debit.")],
    credit_account: Annotated[int, typer.Argument(help="Account id to credit.")],
    amount: Annotated[str, typer.Argument(help='Decimal amount, e.g. "1250.00".')],
    currency: Annotated[str, typer.Argument(help="ISO 4217 code, e.g. CNY.")],
    transfer_id: Annotated[str | None, typer.Option("--id", help="Transfer id (default: new).")]
    = None,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Move money between two accounts of one currency, durably (local operator tool)."""
    try:
        amount_minor = parse_message_amount(amount, currency)
    except (AmountError, CurrencyError) as error:
        err.print(f"[red]refused:[/red] {error}")
        raise typer.Exit(2) from None
    if transfer_id is not None and (TRANSFER_ID_SEPARATOR in transfer_id
                                    or transfer_id.startswith(RESERVED_ID_PREFIXES)):
        err.print(f"[red]refused:[/red] transfer id {transfer_id!r}: ids with "
                  f"'{TRANSFER_ID_SEPARATOR}' are participants' own, and "
                  f"{' and '.join(RESERVED_ID_PREFIXES)} ones payments' and returns'")
        raise typer.Exit(2)
    with writing(db) as engine:
        chosen = transfer_id or f"cli-{now_us()}"
        (outcome,) = engine.submit([Transfer(chosen, debit_account, credit_account, amount_minor,
                                             currency)], now_us())
    if outcome.rejection is not None:
        err.print(f"[red]rejected[/red] {outcome.rejection.value}: "
                  f"{REJECTION_TEXT[outcome.rejection]}")
        raise typer.Exit(1)
    console.print(f"accepted {chosen}: {amount} {currency} from {debit_account} to "
                  f"{credit_account}")


@app.command()
def balances(db: DbOption = DEFAULT_DB,
             currency: Annotated[str | None, typer.Option(help="Only this currency.")] = None,
             as_json: Annotated[bool, typer.Option("--json", help="JSON instead of a table.")]
             = False) -> None:
    """Show every account's balance (reads the database; works while the server runs)."""
    engine = reading_engine(db)
    try:
        code = None if currency is None else currency.upper()  # cny as CNY
        views = [v for v in engine.balances() if code in (None, v.currency)]
    finally:
        engine.close()
    if as_json:
        print(json.dumps([{"account_id": v.account_id, "owner_bic": v.owner_bic,
                           "currency": v.currency, "kind": v.kind,
                           "balance": format_amount(v.posted_minor, v.currency),
                           "available": format_amount(v.available_minor, v.currency)}
                          for v in views], indent=1))
        return
    rows = [(str(v.account_id), v.owner_bic, v.currency, v.kind,
             format_amount(v.posted_minor, v.currency),
             format_amount(v.available_minor, v.currency),
             "none" if v.floor_minor is None else format_amount(v.floor_minor, v.currency))
            for v in views]
    # Nothing is ever folded (a balance cut across two lines reads as two numbers): each
    # column as wide as its widest value, the table as wide as they need.
    table = Table(title=f"scopay balances ({db})", box=box.SIMPLE_HEAD)
    needed = 0
    for index, column in enumerate(("account", "owner", "currency", "kind", "balance",
                                    "available", "floor")):
        width = max([len(column), *(len(row[index]) for row in rows)])
        table.add_column(column, justify="right" if index >= 4 else "left", no_wrap=True,
                         min_width=width)
        needed += width + 2  # and its padding
    for row in rows:
        table.add_row(*row)
    console.print(table, width=max(console.width, needed + 2), crop=False)


@app.command()
def reconcile(db: DbOption = DEFAULT_DB) -> None:
    """Prove the ledger: balances equal the journal, each currency sums to zero, no floor
    broken, no transfer booked twice. Exit 0 when all hold, 1 otherwise."""
    engine = reading_engine(db)
    try:
        report = engine.reconcile()
    finally:
        engine.close()
    console.print(f"{report.journal_entries} journal entries over {report.accounts} accounts; "
                  f"checkpoint at seq {report.checkpoint_seq}")
    for line in report.mismatches + report.invariant_violations:
        err.print(f"[red]{line}[/red]")
    if not report.ok:
        raise typer.Exit(1)
    console.print("[green]reconciled: balances equal the journal, every currency sums to "
                  "zero, no account below its floor, no transfer booked twice[/green]")


@keys_app.command("issue")
def keys_issue(
    bic: Annotated[str, typer.Argument(help="Participant BIC.")],
    out: Annotated[Path, typer.Option(help="Key file to write (mode 600).")],
    db: DbOption = DEFAULT_DB,
    url: Annotated[str | None, typer.Option(
        "--url", help="Register through this running server instead of the database "
                      "(signed with --key, the operator's), so it need not stop.")] = None,
    key: Annotated[Path, typer.Option(
        "--key", help="With --url: the operator's key file.")] = Path("var/operator.key"),
) -> None:
    """Make a signing key pair for a participant, register its public half, write the
    private key to --out: in the database (scopay stopped), or with --url through the
    running server. (A bank that makes its own key uses `keys register`.)"""
    refuse_existing_key_file(out)
    if url is None:
        with writing(db) as engine:
            key_id = issue_key_file(engine, bic, out, now_us())
    else:
        key_id = _issue_key_through(url, key, bic, out)
    console.print(f"key {key_id} for {bic}: private key in {out}")


def _issue_key_through(url: str, operator_key: Path, bic: str, out: Path) -> str:
    """keys issue --url: the private half is on disk (in `.<out>.pending`) before the public
    half is registered, so a key the server knows never lacks it. The pending file goes once
    `out` holds the key, or when scopay itself refused the key (a problem document below
    500): any other failure (a timeout, a gateway's 5xx) may have registered it, so the file
    stays, and running the same command again takes it up (registering a public key twice
    gives its first id)."""
    pending = out.with_name(f".{out.name}.pending")
    with talking(url, operator_key) as client:  # the operator's key read before anything
        if pending.exists():
            made = load_key(pending)
            if made.participant_bic != bic:
                err.print(f"[red]refused:[/red] {pending} holds a key for "
                          f"{made.participant_bic}, not {bic}: move it away first")
                raise typer.Exit(2)
            err.print(f"taking up the key left in {pending}")
        else:
            made = KeyFile("unregistered", bic, new_private_key())
            write_key_file(pending, made)
        try:
            answer = client.post(f"/v1/participants/{bic}/keys",
                                 json={"public_key": made.public_key})
        except httpx.ConnectError:
            pending.unlink()  # never reached scopay: nothing registered
            raise
        except BaseException:
            err.print(f"[yellow]the key may be registered: its private half is in {pending}; "
                      "run the same command again to finish[/yellow]")
            raise
        refused = 400 <= answer.status_code < 500 and answer.headers.get(
            "content-type", "").startswith("application/problem+json")
        if refused:
            pending.unlink()
        elif answer.status_code >= 400:
            err.print(f"[yellow]the key may be registered: its private half is in {pending}; "
                      "run the same command again to finish[/yellow]")
        raise_for_problem(answer)
    key_id = answer.json()["key_id"]
    written = out.with_name(f".{out.name}.{key_id}")
    write_key_file(written, KeyFile(key_id, bic, made.private_key))
    pending.unlink()  # the key is in `written` now, with its id
    try:
        place_key_file(written, out, key_id)
    except CommandRefused as refused:
        err.print(f"[red]refused:[/red] {refused}")
        raise typer.Exit(2) from None
    return key_id


@keys_app.command("register")
def keys_register(
    bic: Annotated[str, typer.Argument(help="Participant BIC.")],
    public_key: Annotated[str, typer.Argument(help="Ed25519 public key, base64url.")],
    db: DbOption = DEFAULT_DB,
) -> None:
    """Register a public key a participant made itself; prints the key id."""
    if not signing.is_public_key(public_key):
        err.print("[red]refused:[/red] not an Ed25519 public key (32 bytes, base64url)")
        raise typer.Exit(2)
    with writing(db) as engine:
        key_id = engine.register_key(signing.new_key_id(), bic, public_key, now_us())
    console.print(key_id)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="Key id to revoke.")],
                db: DbOption = DEFAULT_DB) -> None:
    """Revoke a signing key at once."""
    with writing(db) as engine:
        engine.revoke_key(key_id, now_us())
    console.print(f"revoked {key_id}")


@audit_app.command("verify")
def audit_verify(
    db: DbOption = DEFAULT_DB,
    anchor: Annotated[list[str] | None, typer.Option(
        help="SEQ:SHA256, a head of the log published earlier (`scopay audit head`, "
             "GET /v1/audit/head); it must still be in the chain. Repeatable.",
        callback=lambda values: [_anchor(v) for v in values or []])] = None,
) -> None:
    """Recompute the audit hash chain and every row it covers; name the first broken link.
    With anchors, also show the log was not cut back or rewritten up to each of them.
    Exit 0 when intact, 1 otherwise."""
    store = reading(db)
    try:
        report = store.verify_audit(anchor or [])
    finally:
        store.close()
    if not report.ok:
        err.print(f"[red]audit chain broken at entry {report.first_broken_seq}:[/red] "
                  f"{report.reason}")
        raise typer.Exit(1)
    console.print(f"[green]audit chain intact: {report.entries} entries[/green]")
    if report.unchecked is not None:
        console.print(f"[yellow]not checked:[/yellow] {report.unchecked}")


@audit_app.command("head")
def audit_head(db: DbOption = DEFAULT_DB) -> None:
    """Print the log's last entry as SEQ:SHA256, to keep outside scopay.

    Later, `scopay audit verify --anchor SEQ:SHA256` shows the log still holds that entry
    unchanged: it was not cut back or rewritten up to there."""
    store = reading(db)
    try:
        head = store.audit_head()
    finally:
        store.close()
    if head is None:
        err.print("the audit log is empty")
        raise typer.Exit(1)
    print(f"{head.seq}:{head.sha256}")


def _anchor(text: str) -> tuple[int, str]:
    seq, _, sha = text.partition(":")
    if not (re.fullmatch(r"[0-9]{1,18}", seq) and re.fullmatch(r"[0-9a-fA-F]{64}", sha)):
        raise typer.BadParameter(f"{text!r} is not SEQ:SHA256 (an entry number, 64 hex digits)")
    return int(seq), sha.lower()


@app.command()
def call(
    method: Annotated[str, typer.Argument(help="GET, POST, PUT or DELETE.")],
    path: Annotated[str, typer.Argument(help="e.g. /v1/accounts")],
    data: Annotated[str | None, typer.Option(help="JSON body.")] = None,
    key: Annotated[Path, typer.Option(help="Key file to sign with.")] = Path(
        "var/operator.key"),
    url: Annotated[str, typer.Option(help="scopay server.")] = "http://127.0.0.1:8000",
) -> None:
    """Call the running server's API, signed with a key file; prints the JSON answer."""
    if method.upper() not in HTTP_METHODS:
        err.print(f"[red]refused:[/red] method {method!r}; one of {', '.join(HTTP_METHODS)}")
        raise typer.Exit(2)
    with talking(url, key) as client:
        answer = client.request(method.upper(), path,
                                content=None if data is None else data.encode(),
                                headers={"content-type": "application/json"})
    if not answer.content:  # 204: done, nothing to show but that
        console.print(f"{answer.status_code} {answer.reason_phrase}")
    else:
        try:
            print(json.dumps(answer.json(), indent=1, ensure_ascii=False))
        except ValueError:  # not JSON (an HTTP-level refusal, say): as it came
            print(answer.text)
    if answer.status_code >= 400:
        raise typer.Exit(1)


def load_key(path: Path) -> KeyFile:
    """A key file, or one line on what is wrong with it and exit 2: missing, readable by
    others than its owner (as ssh refuses such keys), or not a scopay key file."""
    try:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            err.print(f"[red]refused:[/red] key file {path} is readable by others (mode "
                      f"{stat.S_IMODE(mode):o}); make it 600: chmod 600 {path}")
            raise typer.Exit(2)
        return read_key_file(path)
    except OSError as error:
        err.print(f"[red]cannot read key file {path}[/red]: {error.strerror or error}")
    except (ValueError, KeyError, TypeError):
        err.print(f"[red]{path} is not a scopay key file[/red] (JSON with key_id, "
                  "participant_bic and private_key)")
    raise typer.Exit(2)


@contextmanager
def talking(url: str, key: Path) -> Iterator[ScopayClient]:
    """A client of the server at `url` signing with the key file; a server that cannot be
    reached is one line and exit 2."""
    try:
        with ScopayClient(url, load_key(key)) as client:
            yield client
    except httpx.TransportError as error:
        err.print(f"[red]cannot reach scopay at {url}[/red]: {error} (is `scopay serve` "
                  "running?)")
        raise typer.Exit(2) from None
    except httpx.InvalidURL as error:
        err.print(f"[red]not a URL:[/red] {url} ({error})")
        raise typer.Exit(2) from None
    except ScopayProblem as problem:  # raised by raise_for_problem: scopay's refusal, told
        err.print(f"[red]refused, {problem.status} {problem.title}:[/red] {problem.detail}")
        raise typer.Exit(1) from None


def read_message_file(file: Path) -> bytes:
    try:
        return file.read_bytes()
    except OSError as error:
        err.print(f"[red]cannot read {file}[/red]: {error.strerror or error}")
        raise typer.Exit(2) from None


@iso_app.command("validate")
def iso_validate(file: Annotated[Path, typer.Argument(help="ISO 20022 XML file.")]) -> None:
    """Check a message as scopay would on receipt: hardened parsing, namespace and version,
    the official XSD when SCOPAY_ISO20022_SCHEMAS names their folder, scopay's own rules,
    and what the server's door takes (its size, at most 8,190 transactions). Exit 0 when
    valid; 1 with the ISO reason code and the reason otherwise."""
    from scopay.api.security import REQUEST_BYTES_MAX
    from scopay.domain.ledger import BATCH_TRANSFERS_MAX
    from scopay.iso20022.message import parse_message
    from scopay.iso20022.model import (
        BusinessMessage,
        CancellationRequest,
        CreditTransferMessage,
        ReturnInstruction,
    )
    from scopay.iso20022.parsing import MessageRefused
    from scopay.iso20022.schemas import SCHEMAS_DIR_ENV, SchemaUnavailable

    data = read_message_file(file)
    try:
        message_type, message = parse_message(data)
    except MessageRefused as refusal:
        err.print(f"[red]invalid ({refusal.reason_code}):[/red] {refusal.text}")
        raise typer.Exit(1) from None
    except SchemaUnavailable as error:  # the operator's set-up, not the message
        err.print(f"[red]cannot check:[/red] {error}")
        raise typer.Exit(2) from None
    envelope = None
    if isinstance(message, BusinessMessage):
        envelope, message = message.header, message.document
    # what the server takes in one message, as it counts them
    items = (len(message.payments) if isinstance(message, CreditTransferMessage) else
             len(message.returns) if isinstance(message, ReturnInstruction) else
             len(message.transactions) if isinstance(message, CancellationRequest) else 0)
    if len(data) > REQUEST_BYTES_MAX:
        err.print(f"[red]too large for the server (413):[/red] {len(data):,} bytes; it takes "
                  f"at most {REQUEST_BYTES_MAX:,} a request")
        raise typer.Exit(1)
    if items > BATCH_TRANSFERS_MAX:
        err.print(f"[red]too many for the server (AM18):[/red] {items:,} transactions; it "
                  f"takes at most {BATCH_TRANSFERS_MAX:,} in one message: split it")
        raise typer.Exit(1)
    checked = "and the official XSD" if os.environ.get(SCHEMAS_DIR_ENV) else (
        f"(set {SCHEMAS_DIR_ENV} to check the official XSD too)")
    console.print(f"valid {message_type}: scopay's rules {checked}")
    if not isinstance(message, CreditTransferMessage | ReturnInstruction | CancellationRequest):
        console.print("(the server reads it, but takes only pacs.008, pacs.009, pacs.004 and "
                      "camt.056 at POST /v1/iso20022)")
    if envelope is not None:
        console.print(f"(the server takes it only if its AppHdr To, {envelope.to_bic}, is "
                      "scopay's operator or a currency's settlement agent)")


@iso_app.command("send")
def iso_send(file: Annotated[Path, typer.Argument(
                 help="pacs.008, pacs.009, pacs.004 or camt.056.")],
             key: KeyOption = Path("var/operator.key"),
             url: UrlOption = "http://127.0.0.1:8000") -> None:
    """Post a message to the running server; prints the answer (pacs.002 or camt.029)."""
    message = read_message_file(file)
    with talking(url, key) as client:
        answer = client.post("/v1/iso20022", content=message,
                             headers={"content-type": "application/xml"})
    print(answer.text)
    if answer.status_code >= 400:
        raise typer.Exit(1)


EXAMPLE_KINDS = ("pacs.008", "camt.056", "pacs.004")


@iso_app.command("example")
def iso_example(
        kind: Annotated[str, typer.Argument(
            help=f"Message to write: {', '.join(EXAMPLE_KINDS)}.")] = "pacs.008",
        debtor_agent: Annotated[str, typer.Option(
            "--from", help="Debtor agent (BIC): who pays, or asks to cancel.")] = "DEMACNX0",
        creditor_agent: Annotated[str, typer.Option(
            "--to", help="Creditor agent (BIC): who is paid, or returns.")] = "DEMBCNX0",
        amount: Annotated[str, typer.Option(help="Amount, e.g. 1250.00.")] = "1250.00",
        currency: Annotated[str, typer.Option(help="ISO 4217 currency.")] = "CNY",
        uetr: Annotated[str | None, typer.Option(
            help="The payment to cancel or return (camt.056, pacs.004); a pacs.008 gets a "
                 "fresh one.")] = None,
        out: Annotated[Path | None, typer.Option(help="Write here, not to standard output.")
                       ] = None,
) -> None:
    """Write a ready-to-send example message with fresh ids, built as scopay builds its own:
    a pacs.008 (customer credit transfer, version 001.08), a camt.056 cancelling a queued
    payment by its UETR, or a pacs.004 returning a settled one whole. For example:
    `scopay iso example pacs.008 --out pay.xml`, then `scopay iso send pay.xml --key
    var/dema.key`. Edit it freely: `scopay iso validate` checks it as the server will."""
    import uuid

    from scopay.domain.money import AmountError, parse_amount
    from scopay.domain.payment import Party, Payment, PostalAddress
    from scopay.iso20022.camt056 import build_camt056
    from scopay.iso20022.model import (
        CancellationRequest,
        CreditTransferMessage,
        PaymentReturn,
        ReturnInstruction,
        TransactionCancellation,
    )
    from scopay.iso20022.pacs004 import build_pacs004
    from scopay.iso20022.pacs008 import PACS008_V08, build_pacs008

    if kind not in EXAMPLE_KINDS:
        err.print(f"[red]no example of {kind}:[/red] one of {', '.join(EXAMPLE_KINDS)}")
        raise typer.Exit(2)
    if kind != "pacs.008" and uetr is None:
        err.print(f"[red]a {kind} names its payment:[/red] give --uetr")
        raise typer.Exit(2)
    try:
        amount_minor = parse_amount(amount, currency.upper())
    except AmountError as error:
        err.print(f"[red]amount:[/red] {error}")
        raise typer.Exit(2) from None
    fresh = uuid.uuid4().hex[:16].upper()
    now_us = time.time_ns() // 1000
    try:
        if kind == "pacs.008":
            payment = Payment(
                str(uuid.uuid4()), f"INSTR{fresh}", f"E2E{fresh}", debtor_agent, creditor_agent,
                Party("Ли Вэй", address=PostalAddress("RU", "Москва")),
                Party("张伟", address=PostalAddress("CN", "上海")), amount_minor,
                currency.upper(), remittance="Invoice 2026-001")
            data = build_pacs008(CreditTransferMessage(f"MSG{fresh}", now_us, (payment,)),
                                 PACS008_V08)
        elif kind == "camt.056":
            data = build_camt056(CancellationRequest(
                f"CXL{fresh}", debtor_agent, creditor_agent, now_us,
                (TransactionCancellation(f"MSG{fresh}", PACS008_V08, "DUPL",
                                         original_uetr=uetr),)))
        else:
            data = build_pacs004(ReturnInstruction(f"RTRMSG{fresh}", now_us, (PaymentReturn(
                f"RTR{fresh}", f"MSG{fresh}", PACS008_V08, amount_minor, currency.upper(),
                "AC04", original_uetr=uetr, reason_text="account closed"),)))
    except ValueError as error:  # a BIC or UETR the message cannot hold
        err.print(f"[red]cannot write it:[/red] {error}")
        raise typer.Exit(2) from None
    from lxml import etree  # indented for people to read and edit; read the same

    data = etree.tostring(etree.fromstring(data), pretty_print=True, xml_declaration=True,
                          encoding="UTF-8")
    if out is None:
        print(data.decode())
    else:
        out.write_bytes(data)
        console.print(f"wrote {kind} to {out}")


@iso_app.command("inbox")
def iso_inbox(key: KeyOption = Path("var/operator.key"),
              url: UrlOption = "http://127.0.0.1:8000",
              fetch: Annotated[bool, typer.Option(help="Print each message's XML.")] = False,
              ack: Annotated[bool, typer.Option(help="Acknowledge what was listed.")] = False,
              ) -> None:
    """List the participant's unacknowledged mailbox (oldest first). With --ack, what was
    listed is acknowledged, but with --fetch only the messages fetched: one whose fetch
    failed stays in the mailbox (and the exit status is 1)."""
    with talking(url, key) as client:
        notices = raise_for_problem(client.get("/v1/mailbox", params={"limit": 500})).json()
        table = Table(title=f"mailbox of {client.key.participant_bic}")
        for column in ("seq", "kind", "uetr or reference", "status", "reason", "created"):
            table.add_column(column, overflow="fold")
        done = []
        for n in notices:
            about = n["uetr"] or n.get("reference") or ""
            if n.get("last_reference"):  # a notification of several entries: first ... last
                about += f" ... {n['last_reference']}"
            table.add_row(str(n["seq"]), n["kind"], about, n["status"] or "", n["reason"] or "",
                          n["created"])
            if fetch:
                try:
                    print(raise_for_problem(
                        client.get(f"/v1/mailbox/{n['seq']}/message")).text)
                except ScopayProblem as problem:
                    err.print(f"[red]message {n['seq']} not fetched, so not acknowledged: "
                              f"{problem.status} {problem.title}:[/red] {problem.detail}")
                    continue
            done.append(n["seq"])
        console.print(table)
        if ack and done:
            raise_for_problem(client.post("/v1/mailbox/ack", json={"seqs": done}))
            console.print(f"acknowledged {len(done)}")
        if len(done) < len(notices):
            raise typer.Exit(1)


if __name__ == "__main__":
    app()

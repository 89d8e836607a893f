"""The ``notiflow`` command."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, TypeVar
from urllib.parse import urlsplit

import typer

from notiflow import __version__
from notiflow.config import Settings
from notiflow.core.runtime import tune_garbage_collector
from notiflow.logging import configure_logging

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

app = typer.Typer(
    name="notiflow",
    help=(
        "Notiflow: a self-hosted campaign service for SMS-style notifications.\n\n"
        "Configuration comes from NOTIFLOW_* environment variables and an optional .env file "
        "(see the README). With no configuration it uses an SQLite file in the working directory."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
token_app = typer.Typer(help="Manage API tokens stored in the database.", no_args_is_help=True)
app.add_typer(token_app, name="token")
report_app = typer.Typer(help="The daily statistics e-mail.", no_args_is_help=True)
app.add_typer(report_app, name="report")

log = logging.getLogger("notiflow")
T = TypeVar("T")


class TokenRole(StrEnum):
    """The roles of ``token create --role`` (those of notiflow.auth.roles, which the CLI imports
    only when a command runs)."""

    read = "read"
    send = "send"
    admin = "admin"


HostOption = Annotated[str, typer.Option(help="Address to listen on.")]
PortOption = Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)]


def _settings() -> Settings:
    """The settings, or a clear message naming each bad variable and exit code 2."""
    from pydantic import ValidationError

    try:
        settings = Settings()
    except ValidationError as exc:
        lines = ["Invalid configuration:"]
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"])
            name = f"NOTIFLOW_{field.upper()}" if field else "settings"
            lines.append(f"  {name}: {error['msg'].removeprefix('Value error, ')}")
        typer.echo("\n".join(lines), err=True)
        raise typer.Exit(code=2) from None
    configure_logging(settings.log_level, settings.log_format)
    return settings


def _database_settings() -> Settings:
    """The settings of a command that uses the database, once it is known to answer.

    A database that cannot be used (no server at that port, an unknown database, a wrong
    password, an SQLite file in a directory that does not exist) stops the command with one
    sentence naming NOTIFLOW_DATABASE_URL and exit code 2, instead of a traceback.
    """
    from notiflow.db.connection import DatabaseUnreachable, ensure_reachable

    settings = _settings()
    try:
        asyncio.run(ensure_reachable(settings))
    except DatabaseUnreachable as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(code=2) from None
    return settings


def _token_settings() -> Settings:
    """The settings of a `token` command, which says on stderr which database it uses (password
    hidden): stdout stays the token alone, for scripts."""
    settings = _database_settings()
    typer.echo(f"database: {_redacted(settings.database_url)}", err=True)
    return settings


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _in_session(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run ``work`` in one committed transaction on the configured database."""
    from notiflow.db.engine import create_engine, create_sessionmaker
    from notiflow.db.session import transaction

    async def run() -> T:
        engine = create_engine(settings)
        try:
            async with transaction(create_sessionmaker(engine)) as session:
                return await work(session)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _ensure_token(settings: Settings) -> str | None:
    """Make a token on first start when none is configured; return it to print, else None."""
    from notiflow.auth import service

    if settings.api_tokens:
        return None

    async def work(session: AsyncSession) -> str | None:
        if await service.count(session):
            return None
        _, plain = await service.create(session, name="generated on first start")
        return plain

    return _in_session(settings, work)


def _banner(settings: Settings, host: str, port: int, token: str | None, *, engine: bool) -> None:
    base = f"http://{host}:{port}"
    sign_in = "an API token"
    if settings.oidc_issuer is not None:
        sign_in = f"{urlsplit(settings.oidc_issuer).hostname} or an API token"
    lines = [
        "",
        f"  Notiflow {__version__} is starting",
        f"  UI:       {base}/ui/ (sign in with {sign_in})",
        f"  API:      {base}/api/v1",
        f"  Docs:     {base}/docs",
        f"  Health:   {base}/health",
        f"  Metrics:  {base}/metrics",
    ]
    if engine:
        provider = settings.provider_url or "the built-in sandbox (NOTIFLOW_PROVIDER_URL is unset)"
        lines.append(f"  Provider: {provider}")
    if token is not None:
        lines += [
            "",
            "  No API token was configured, so one was generated and stored (shown only now):",
            f"    {token}",
            f"  Try: curl -H 'Authorization: Bearer {token}' {base}/api/v1/stats",
            "  Set your own with NOTIFLOW_API_TOKENS=token1,token2 or make more with",
            "  `notiflow token create`.",
        ]
    elif not settings.api_tokens:
        lines += ["", "  API tokens: stored in the database (`notiflow token list`)."]
    typer.echo("\n".join([*lines, ""]))


def _run_api(host: str, port: int, *, engine: bool) -> None:
    import uvicorn

    from notiflow.app import create_app
    from notiflow.db.migrate import upgrade

    settings = _database_settings()
    log.info("database", extra={"database_url": _redacted(settings.database_url)})
    upgrade(settings.database_url)
    _banner(settings, host, port, _ensure_token(settings), engine=engine)
    application = create_app(settings, run_engine=engine)
    tune_garbage_collector()
    uvicorn.run(
        application,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        log_level=settings.log_level.lower(),
        log_config=None,  # uvicorn's lines go through Notiflow's handler (notiflow.logging)
        access_log=settings.log_level == "DEBUG",
        timeout_graceful_shutdown=int(settings.provider_timeout) + 5,
    )


@app.command()
def serve(host: HostOption = "127.0.0.1", port: PortOption = 8000) -> None:
    """Run everything in one process: the API (with /docs) and the delivery engine.

    Brings the database schema up to date first. Without NOTIFLOW_PROVIDER_URL, messages go to
    the built-in sandbox provider.
    """
    _run_api(host, port, engine=True)


@app.command()
def api(host: HostOption = "127.0.0.1", port: PortOption = 8000) -> None:
    """Run the API alone (no sending); pair it with `notiflow worker` processes."""
    _run_api(host, port, engine=False)


@app.command()
def worker() -> None:
    """Run the delivery engine alone: start mailings, send messages, retry, expire.

    Any number of workers may share one PostgreSQL database; they never share a message. A
    message is sent twice only if the answer to its request was lost (a timeout, a broken
    connection, a worker killed before it stored the answer): see the README's guarantees.
    SIGTERM or Ctrl-C stops it gracefully: requests in flight finish or are given back.
    It serves /metrics, /health, /health/live and /health/ready on NOTIFLOW_WORKER_HOST and
    NOTIFLOW_WORKER_PORT (0.0.0.0:9100; port 0: none).
    """
    import signal

    import uvloop

    from notiflow.db.engine import create_engine, create_sessionmaker
    from notiflow.db.migrate import upgrade
    from notiflow.delivery.engine import Engine
    from notiflow.metrics import Metrics, bind
    from notiflow.sandbox.server import FaultConfig, Sandbox
    from notiflow.worker_http import WorkerEndpoint, WorkerPortError

    settings = _database_settings()
    upgrade(settings.database_url)

    async def run() -> None:
        db = create_engine(settings)
        sessionmaker = create_sessionmaker(db)
        metrics = Metrics()  # this process's; served on NOTIFLOW_WORKER_PORT
        bind(sessionmaker, metrics)
        endpoint = None
        if settings.worker_port:
            endpoint = WorkerEndpoint(settings=settings, metrics=metrics, db_engine=db)
            try:
                await endpoint.start()
            except WorkerPortError as exc:
                await db.dispose()
                typer.echo(str(exc), err=True)
                raise typer.Exit(code=2) from None
        sandbox = None
        url, token = settings.provider_url, settings.provider_token
        if url is None:
            token = "sandbox"
            sandbox = Sandbox(FaultConfig(token=token))
            url = await sandbox.start("127.0.0.1", 0)
            log.warning(
                "NOTIFLOW_PROVIDER_URL is not set: sending to a built-in sandbox",
                extra={"provider_url": url},
            )
        delivery = Engine(
            settings=settings,
            sessionmaker=sessionmaker,
            provider_url=url,
            provider_token=token,
            metrics=metrics,
        )
        if endpoint is not None:
            endpoint.engine = delivery
        loop = asyncio.get_running_loop()
        stopping = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopping.set)
        await delivery.start()
        waiter = asyncio.ensure_future(stopping.wait())
        finished = asyncio.ensure_future(delivery.wait())
        await asyncio.wait({waiter, finished}, return_when=asyncio.FIRST_COMPLETED)
        log.info("stopping: finishing the requests in flight")
        await delivery.stop()
        waiter.cancel()
        if sandbox is not None:
            await sandbox.stop()
        if endpoint is not None:
            await endpoint.stop()
        await db.dispose()

    tune_garbage_collector()
    uvloop.run(run())


@app.command()
def sandbox(
    host: HostOption = "127.0.0.1",
    port: Annotated[
        int, typer.Option(help="Port to listen on; 0 picks a free one.", min=0, max=65535)
    ] = 8080,
    token: Annotated[str, typer.Option(help="Bearer token to require; empty: none.")] = "",
    latency_ms: Annotated[float, typer.Option(help="Delay of each answer.", min=0)] = 0,
    jitter_ms: Annotated[float, typer.Option(help="Random ± added to the delay.", min=0)] = 0,
    error_rate: Annotated[float, typer.Option(help="Share of 5xx answers.", min=0, max=1)] = 0,
    garbage_rate: Annotated[
        float, typer.Option(help="Share of 200s with a wrong body.", min=0, max=1)
    ] = 0,
    hang_rate: Annotated[
        float, typer.Option(help="Share of requests never answered in time.", min=0, max=1)
    ] = 0,
    drop_rate: Annotated[
        float, typer.Option(help="Share of connections closed without answer.", min=0, max=1)
    ] = 0,
    reject_rate: Annotated[float, typer.Option(help="Share of 400 answers.", min=0, max=1)] = 0,
    throttle_rate: Annotated[
        float, typer.Option(help="Share of 429 answers with Retry-After.", min=0, max=1)
    ] = 0,
    seed: Annotated[int | None, typer.Option(help="Seed for reproducible faults.")] = None,
) -> None:
    """Run the sandbox provider: an emulator of the send API with faults on demand.

    It answers POST /v1/send/{id}; its faults can be changed at run time with
    PUT /_sandbox/config, its log read at GET /_sandbox/log, an outage started with
    POST /_sandbox/outage {"seconds": n}.
    """
    import uvloop

    from notiflow.sandbox.server import FaultConfig, Sandbox

    _settings()  # checks the configuration and sets up logging
    config = FaultConfig(token=token, latency_ms=latency_ms, jitter_ms=jitter_ms)
    try:
        config.update(
            {
                "error_rate": error_rate,
                "garbage_rate": garbage_rate,
                "hang_rate": hang_rate,
                "drop_rate": drop_rate,
                "reject_rate": reject_rate,
                "throttle_rate": throttle_rate,
            }
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc

    async def run() -> None:
        import signal

        emulator = Sandbox(config, seed=seed)
        url = await emulator.start(host, port)
        typer.echo(
            f"sandbox provider at {url}  (control: http://{host}:{emulator.port}/_sandbox/config)"
        )
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopping.set)
        await stopping.wait()
        await emulator.stop()

    uvloop.run(run())


@app.command()
def migrate(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Bring the database schema up to date (serve does this by itself)."""
    from notiflow.db.migrate import upgrade

    settings = _database_settings()
    upgrade(settings.database_url, revision)
    typer.echo(f"database {_redacted(settings.database_url)} is at revision {revision}")


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Option(help="A label to recognise the token by.")] = "cli",
    role: Annotated[
        TokenRole,
        typer.Option(
            help="read: GET only; send: also create, edit, import and control clients and "
            "mailings; admin: also DELETE, tokens, webhooks and the audit log.",
            case_sensitive=False,
        ),
    ] = TokenRole.admin,
) -> None:
    """Make a new API token and print it (it is stored hashed and shown only once)."""
    from notiflow.auth import service
    from notiflow.auth.roles import Role
    from notiflow.db.migrate import upgrade

    settings = _token_settings()
    upgrade(settings.database_url)

    async def work(session: AsyncSession) -> str:
        _, plain = await service.create(session, name=name, role=Role(role.value))
        return plain

    typer.echo(_in_session(settings, work))


@token_app.command("list")
def token_list() -> None:
    """List stored tokens (ids, names and roles; the tokens themselves are not stored)."""
    from notiflow.auth import service

    async def work(session: AsyncSession) -> list[str]:
        return [
            f"{t.id}\t{t.name}\t{t.role}\t{t.created_at:%Y-%m-%dT%H:%M:%SZ}"
            for t in await service.list_all(session)
        ]

    rows = _in_session(_token_settings(), work)
    typer.echo("\n".join(["id\tname\trole\tcreated_at", *rows]))


@token_app.command("revoke")
def token_revoke(token_id: Annotated[int, typer.Argument(help="Id from `token list`.")]) -> None:
    """Delete a stored token; requests with it are refused from then on."""
    from notiflow.auth import service

    async def work(session: AsyncSession) -> bool:
        return await service.revoke(session, token_id)

    if not _in_session(_token_settings(), work):
        typer.echo(f"no token with id {token_id}", err=True)
        raise typer.Exit(code=1)
    typer.echo(f"token {token_id} revoked")


@report_app.command("send")
def report_send(
    day: Annotated[
        str | None,
        typer.Option(
            "--date",
            metavar="YYYY-MM-DD",
            help="The day, in NOTIFLOW_REPORT_TIMEZONE; default: yesterday.",
            show_default=False,
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the report (its text part); send nothing.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Send it even if it was sent already.")
    ] = False,
) -> None:
    """Send the daily report of one day now, to NOTIFLOW_REPORT_TO, or print it.

    The engines of `serve` and `worker` send it by themselves every day at NOTIFLOW_REPORT_TIME;
    this sends it by hand (a day that was skipped, or again with --force). A report sent here
    counts as that day's: the engines do not send it again.
    """
    from datetime import date

    from notiflow.db.migrate import upgrade
    from notiflow.reports import by_hand

    try:
        wanted = date.fromisoformat(day) if day is not None else None
    except ValueError:
        raise typer.BadParameter(
            f"{day!r} is not a date (YYYY-MM-DD)", param_hint="--date"
        ) from None
    settings = _database_settings()
    if not dry_run and not settings.report_to:
        typer.echo(
            "NOTIFLOW_REPORT_TO is not set: nobody to send the report to (--dry-run prints it)",
            err=True,
        )
        raise typer.Exit(code=2)
    upgrade(settings.database_url)
    answer = asyncio.run(by_hand.send(settings, day=wanted, dry_run=dry_run, force=force))
    typer.echo(answer.out, nl=False)
    typer.echo(answer.err, nl=False, err=True)
    raise typer.Exit(code=answer.code)


@app.command()
def logs(
    file: Annotated[
        str,
        typer.Argument(metavar="FILE", help="A JSON log written by Notiflow; '-' or none: stdin."),
    ] = "-",
    mailing: Annotated[
        int | None,
        typer.Option("--mailing", min=1, help="Every line about this mailing (its messages' too)."),
    ] = None,
    message: Annotated[
        int | None,
        typer.Option(
            "--message",
            min=1,
            help="This message's lines, and those of its mailing that name no message.",
        ),
    ] = None,
    client: Annotated[
        int | None,
        typer.Option(
            "--client",
            min=1,
            help="This client's lines (its messages' too), and those of their mailings that "
            "name no message.",
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the matching lines as they are (JSON).")
    ] = False,
) -> None:
    """Tell the story of one mailing, message or client from a JSON log, in time order.

    Reads the log Notiflow writes on stderr (JSON unless it is a terminal, or with
    NOTIFLOW_LOG_FORMAT=json) from FILE or stdin, e.g. notiflow logs --message 42 notiflow.log

    Lines that are not JSON are skipped and counted on stderr. Exit code 1 when no line matches.
    """
    import io
    import sys

    from notiflow.log_search import Subject, read_story, readable

    chosen = [
        (subject, ident)
        for subject, ident in (
            (Subject.mailing, mailing),
            (Subject.message, message),
            (Subject.client, client),
        )
        if ident is not None
    ]
    if len(chosen) != 1:
        typer.echo("give exactly one of --mailing, --message, --client", err=True)
        raise typer.Exit(code=2)
    subject, ident = chosen[0]
    if file == "-":
        binary = getattr(sys.stdin, "buffer", None)
        stdin = sys.stdin
        if binary is not None:  # undecodable bytes make a line that is not JSON, not an error
            stdin = io.TextIOWrapper(binary, encoding="utf-8", errors="replace")
        story = read_story(stdin, subject, ident)
    else:
        try:
            with open(file, encoding="utf-8", errors="replace") as stream:
                story = read_story(stream, subject, ident)
        except OSError as exc:
            typer.echo(f"cannot read {file}: {exc.strerror}", err=True)
            raise typer.Exit(code=2) from None
    for line in story.lines:
        typer.echo(line.text if as_json else readable(line))
    if story.skipped:
        what = "line that is" if story.skipped == 1 else "lines that are"
        typer.echo(f"skipped {story.skipped} {what} not JSON", err=True)
    if not story.lines:
        typer.echo(f"no line about {subject.value} {ident}", err=True)
        raise typer.Exit(code=1)


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


def main() -> None:
    app()

"""The ``notiflow`` command."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from notiflow import __version__
from notiflow.config import Settings
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

log = logging.getLogger("notiflow")
T = TypeVar("T")

HostOption = Annotated[str, typer.Option(help="Address to listen on.")]
PortOption = Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)]


def _settings() -> Settings:
    settings = Settings()
    configure_logging(settings.log_level)
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


@app.command()
def serve(host: HostOption = "127.0.0.1", port: PortOption = 8000) -> None:
    """Run the API (with /docs) after bringing the database schema up to date."""
    import uvicorn

    from notiflow.app import create_app
    from notiflow.db.migrate import upgrade

    settings = _settings()
    log.info("database: %s", _redacted(settings.database_url))
    upgrade(settings.database_url)
    token = _ensure_token(settings)
    base = f"http://{host}:{port}"
    lines = [
        "",
        f"  Notiflow {__version__} is starting",
        f"  API:      {base}/api/v1",
        f"  Docs:     {base}/docs",
        f"  Health:   {base}/health",
    ]
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
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        log_level=settings.log_level.lower(),
        access_log=settings.log_level == "DEBUG",
    )


@app.command()
def migrate(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Bring the database schema up to date (serve does this by itself)."""
    from notiflow.db.migrate import upgrade

    settings = _settings()
    upgrade(settings.database_url, revision)
    typer.echo(f"database {_redacted(settings.database_url)} is at revision {revision}")


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Option(help="A label to recognise the token by.")] = "cli",
) -> None:
    """Make a new API token and print it (it is stored hashed and shown only once)."""
    from notiflow.auth import service
    from notiflow.db.migrate import upgrade

    settings = _settings()
    upgrade(settings.database_url)

    async def work(session: AsyncSession) -> str:
        _, plain = await service.create(session, name=name)
        return plain

    typer.echo(_in_session(settings, work))


@token_app.command("list")
def token_list() -> None:
    """List stored tokens (ids and names; the tokens themselves are not stored)."""
    from notiflow.auth import service

    async def work(session: AsyncSession) -> list[str]:
        return [
            f"{t.id}\t{t.name}\t{t.created_at:%Y-%m-%dT%H:%M:%SZ}"
            for t in await service.list_all(session)
        ]

    rows = _in_session(_settings(), work)
    typer.echo("\n".join(["id\tname\tcreated_at", *rows]))


@token_app.command("revoke")
def token_revoke(token_id: Annotated[int, typer.Argument(help="Id from `token list`.")]) -> None:
    """Delete a stored token; requests with it are refused from then on."""
    from notiflow.auth import service

    async def work(session: AsyncSession) -> bool:
        return await service.revoke(session, token_id)

    if not _in_session(_settings(), work):
        typer.echo(f"no token with id {token_id}", err=True)
        raise typer.Exit(code=1)
    typer.echo(f"token {token_id} revoked")


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


def main() -> None:
    app()

"""FastAPI dependencies as ``Annotated`` aliases. Everything comes from ``app.state``, set up by
``create_app``, so tests can build an app with their own settings, database and clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from notiflow.config import Settings
from notiflow.core.clock import Clock
from notiflow.db.session import transaction
from notiflow.delivery.notify import Halt
from notiflow.workers.watch import WorkerWatch


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_clock(request: Request) -> Clock:
    clock: Clock = request.app.state.clock
    return clock


def get_halt(request: Request) -> Halt:
    """Tells the engines of this process, once a transaction commits, what to stop sending."""
    halt: Halt = request.app.state.engine_signal.halt
    return halt


def get_worker_watch(request: Request) -> WorkerWatch:
    """Whether a worker is alive, for the warnings of the mailings shown."""
    watch: WorkerWatch = request.app.state.worker_watch
    return watch


def get_sessionmaker(request: Request) -> async_sessionmaker[AsyncSession]:
    """For work that outlives the request's transaction, e.g. a streamed answer."""
    factory: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    return factory


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with transaction(request.app.state.sessionmaker) as session:
        yield session


SettingsDep = Annotated[Settings, Depends(get_settings)]
ClockDep = Annotated[Clock, Depends(get_clock)]
HaltDep = Annotated[Halt, Depends(get_halt)]
WorkerWatchDep = Annotated[WorkerWatch, Depends(get_worker_watch)]
SessionmakerDep = Annotated[async_sessionmaker[AsyncSession], Depends(get_sessionmaker)]
# scope="function": the transaction commits when the endpoint returns, before the answer is sent,
# so a client never sees a 2xx for work that then failed to commit.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]

"""The warning of a mailing that needs a worker now while none is alive: in the answers that
show it (``warnings``), and in the API's log, once per mailing every few minutes."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from notiflow.core.clock import Clock
from notiflow.models import Mailing, MailingStatus
from notiflow.workers import repository
from notiflow.workers.service import ALIVE_SECONDS, alive_since

log = logging.getLogger("notiflow.workers")

# How long the API waits before it logs again that a given mailing has no live worker.
LOG_EVERY_SECONDS = 300.0
_LOGGED_MAX = 10_000  # mailings remembered as logged: the memory stays bounded

NO_WORKER_RUNNING = (
    f"no live worker: no worker has beaten in the last {ALIVE_SECONDS} s, so nothing of this "
    "mailing is sent until one runs (notiflow worker, or notiflow serve); see GET "
    "/api/v1/workers?all=true"
)
NO_WORKER_SCHEDULED = (
    f"no live worker: no worker has beaten in the last {ALIVE_SECONDS} s, so this mailing "
    "cannot start until one runs (notiflow worker, or notiflow serve); see GET "
    "/api/v1/workers?all=true"
)


def _needs_a_worker(mailing: Mailing, now: datetime) -> str | None:
    """The warning ``mailing`` carries when no worker is alive, if it needs one now."""
    if mailing.status == MailingStatus.running:
        return NO_WORKER_RUNNING
    if mailing.status == MailingStatus.scheduled and mailing.start_time <= now:
        return NO_WORKER_SCHEDULED
    return None


class WorkerWatch:
    """The API's view of whether a worker is alive, for the mailings it shows.

    A mailing that needs a worker now — running, or scheduled with its start time passed — while
    none is alive carries a warning, and the process logs it at WARNING, once per mailing every
    :data:`LOG_EVERY_SECONDS`. The engine of this process (``notiflow serve``) counts as alive
    while it runs, without a look at the table; otherwise one indexed query answers, and only
    when a mailing shown needs a worker.
    """

    def __init__(
        self,
        *,
        clock: Clock,
        local_engine_running: Callable[[], bool],
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._local = local_engine_running
        self._monotonic = monotonic
        self._logged: dict[int, float] = {}  # mailing id → when it was last logged (monotonic)

    async def warnings(
        self, session: AsyncSession, mailings: Sequence[Mailing]
    ) -> dict[int, list[str]]:
        """The warnings of each of ``mailings`` that has any, by id."""
        now = self._clock()
        needy = {m.id: w for m in mailings if (w := _needs_a_worker(m, now)) is not None}
        if not needy or self._local():
            return {}
        if await repository.any_alive(session, since=alive_since(now)):
            return {}
        for mailing in mailings:
            if mailing.id in needy:
                self._log(mailing)
        return {mailing_id: [warning] for mailing_id, warning in needy.items()}

    def _log(self, mailing: Mailing) -> None:
        now = self._monotonic()
        last = self._logged.get(mailing.id)
        if last is not None and now - last < LOG_EVERY_SECONDS:
            return
        if len(self._logged) >= _LOGGED_MAX:
            self._logged = {k: v for k, v in self._logged.items() if now - v < LOG_EVERY_SECONDS}
        self._logged[mailing.id] = now
        log.warning(
            "no live worker: nothing of this mailing is sent until one runs "
            "(notiflow worker, or notiflow serve)",
            extra={
                "mailing_id": mailing.id,
                "status": str(mailing.status),
                "alive_seconds": ALIVE_SECONDS,
            },
        )

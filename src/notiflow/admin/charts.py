"""The UI's charts: JSON routes under /ui (session auth) over the same service as
GET /api/v1/stats/timeline and GET /api/v1/mailings/{id}/timeline, and what a page needs to
draw one with ``static/charts.js`` (uPlot, vendored from npm).

The routes end in ``.json``: their errors are the API's JSON errors, not HTML pages, and a
session that ended answers 401 instead of redirecting to the sign-in page (see ``errors.py``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from notiflow.admin import access
from notiflow.admin.session import UI_PREFIX
from notiflow.deps import ClockDep, SessionDep
from notiflow.stats import service as stats
from notiflow.stats.endpoints import Hours, MailingId
from notiflow.stats.schemas import Timeline
from notiflow.web.static import vendored

# Refresh of a running mailing's chart: calmer than the counts' 2 s poll.
REFRESH_SECONDS = 15
UPLOT_JS = vendored("uplot", "uPlot.iife.min.js")  # listed in static/vendor/vendor.toml
UPLOT_CSS = vendored("uplot", "uPlot.min.css")

router = APIRouter(
    prefix=UI_PREFIX,
    include_in_schema=False,
    dependencies=[Depends(access.require_principal), Depends(access.check_csrf)],
)


@router.get("/charts/timeline.json")
async def recent_timeline(
    session: SessionDep, clock: ClockDep, hours: Hours = stats.DEFAULT_HOURS
) -> Timeline:
    """GET /api/v1/stats/timeline, for the session."""
    return await stats.recent_timeline(session, now=clock(), hours=hours)


@router.get("/mailings/{mailing_id}/timeline.json")
async def mailing_timeline(mailing_id: MailingId, session: SessionDep, clock: ClockDep) -> Timeline:
    """GET /api/v1/mailings/{id}/timeline, for the session."""
    return await stats.mailing_timeline(session, mailing_id, now=clock())


def chart(request: Request, *, source: str, empty: str, refresh: bool = False) -> dict[str, Any]:
    """The context of ``_chart.html``: the data's URL (below /ui), the empty state's words, and
    whether the chart refreshes itself (while a mailing runs)."""
    root = request.scope.get("root_path", "").rstrip("/")
    return {
        "source": f"{root}{UI_PREFIX}{source}",
        "empty": empty,
        "refresh_seconds": REFRESH_SECONDS if refresh else 0,
        "uplot_js": root + UPLOT_JS,
        "uplot_css": root + UPLOT_CSS,
        "charts_js": f"{root}{UI_PREFIX}/static/charts.js",
        "charts_css": f"{root}{UI_PREFIX}/static/charts.css",
    }

"""Messages per minute (the charts' data) over real HTTP, on SQLite and PostgreSQL, with
1,000,000 messages in the table: GET /stats/timeline (the dashboard's last 6 and 48 hours) and
GET /mailings/{id}/timeline.

Two shapes of history, both 1,000 mailings of 1,000 messages over the last 30 days, a mailing
starting every 43 minutes: "typical", each mailing sending over 2 hours (120,000 per-minute
counter rows), and "trickle", each over 1,000 minutes, one message a minute (1,000,000 rows: as
many counter rows as messages, the most there can be).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bench.common import Row, database, server, timed

MAILINGS = 1_000
PER_MAILING = 1_000  # messages: 1,000,000 in all
DAYS = 30
TARGET_MS = 100.0
REPEAT = 30
SHAPES = {"typical": 120, "trickle": 1_000}  # minutes each mailing sends over

_SERIES = {
    "postgres": "SELECT g AS n FROM generate_series(1, :count) AS g",
    "sqlite": "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < :count) "
    "SELECT n FROM g",
}


def _minute_sql(kind: str, base: str, minutes: str) -> str:
    """SQL for ``base`` plus ``minutes`` minutes, as the column type stores it."""
    if kind == "postgres":
        return f"(CAST({base} AS timestamptz) + ({minutes}) * interval '1 minute')"
    return f"strftime('%Y-%m-%d %H:%M:00.000000', {base}, '+' || ({minutes}) || ' minutes')"


async def _fill(kind: str, url: str, minutes_each: int, now: datetime) -> None:
    """1,000 mailings (the last one running), their 1,000,000 sent messages and the per-minute
    counters the engine would have written for them."""
    first = (now - timedelta(days=DAYS)).replace(second=0, microsecond=0)
    step = DAYS * 24 * 60 // MAILINGS  # minutes between two mailings' starts
    base = first.isoformat() if kind == "postgres" else first.strftime("%Y-%m-%d %H:%M:%S")
    start_of = _minute_sql(kind, ":base", f"(n - 1) * {step}")
    end_of = _minute_sql(kind, ":base", f"(n - 1) * {step} + 2000")
    finish_of = _minute_sql(kind, ":base", f"(n - 1) * {step} + {minutes_each}")
    series = _SERIES[kind]
    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            params = {"count": MAILINGS, "base": first if kind == "postgres" else base}
            await connection.execute(
                text(
                    "INSERT INTO mailings (id, text, start_time, end_time, operator_codes, tags, "
                    "status, started_at, finished_at, created_at, updated_at) "
                    f"SELECT n, 'bench', {start_of}, {end_of}, "
                    "'[]', '[]', CASE WHEN n = :count THEN 'running' ELSE 'completed' END, "
                    f"{start_of}, CASE WHEN n = :count THEN NULL ELSE {finish_of} END, "
                    f"{start_of}, {start_of} FROM ({series}) AS s"
                ),
                params,
            )
            # Message n is mailing 1 + (n - 1) / 1000's, sent in one of its minutes.
            mailing = "(1 + (n - 1) / 1000)"
            sent_at = _minute_sql(kind, ":base", f"({mailing} - 1) * {step} + n % {minutes_each}")
            await connection.execute(
                text(
                    "INSERT INTO messages (mailing_id, client_id, status, attempts, sent_at, "
                    "created_at, updated_at) "
                    f"SELECT {mailing}, n, 'sent', 1, {sent_at}, {sent_at}, {sent_at} "
                    f"FROM ({series}) AS s"
                ),
                {"count": MAILINGS * PER_MAILING, "base": params["base"]},
            )
            await connection.execute(
                text(
                    "INSERT INTO mailing_timeline (mailing_id, at, sent, failed) "
                    "SELECT mailing_id, sent_at, count(*), 0 FROM messages "
                    "GROUP BY mailing_id, sent_at"
                )
            )
        async with engine.connect() as connection:
            if kind == "postgres":  # autovacuum would; Notiflow never runs ANALYZE on SQLite
                await connection.execute(text("ANALYZE"))
            rows = (await connection.execute(text("SELECT count(*) FROM mailing_timeline"))).one()
            print(f"  {kind}: {rows[0]} per-minute counter rows", flush=True)
    finally:
        await engine.dispose()


def run(kind: str, workdir: Path, shapes: dict[str, int] = SHAPES) -> list[Row]:
    rows: list[Row] = []
    for shape, minutes_each in shapes.items():
        with database(kind, workdir) as url:
            now = datetime.now(UTC)
            asyncio.run(_fill(kind, url, minutes_each, now))
            with server(url, workdir, command="api") as (http, _pid):
                for label, path in (
                    ("GET /stats/timeline (6 h)", "/api/v1/stats/timeline"),
                    ("GET /stats/timeline?hours=48", "/api/v1/stats/timeline?hours=48"),
                    ("GET /mailings/{id}/timeline", f"/api/v1/mailings/{MAILINGS - 1}/timeline"),
                ):
                    body = http.get(path).json()
                    assert body["sent"] > 0, (path, body["sent"])
                    median, p95 = timed(lambda path=path: http.get(path), REPEAT)
                    rows.append(
                        Row(
                            f"{label}, 1M messages, {shape}",
                            kind,
                            f"median {median:.1f} ms, p95 {p95:.1f} ms",
                            f"< {TARGET_MS:.0f} ms",
                            p95 < TARGET_MS,
                        )
                    )
    return rows


if __name__ == "__main__":
    import sys
    import tempfile

    from bench.common import print_table

    kinds = sys.argv[1:] or ["sqlite", "postgres"]
    with tempfile.TemporaryDirectory(prefix="notiflow-bench-") as tmp:
        print_table([row for kind in kinds for row in run(kind, Path(tmp))])

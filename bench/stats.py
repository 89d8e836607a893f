"""Statistics latency for a mailing with 1,000,000 messages, and audience previews over
1,000,000 clients, over real HTTP, on PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bench.common import Row, database, insert_clients, server, timed

MESSAGES = 1_000_000
TARGET_MS = 100.0
PREVIEW_TARGET_MS = 200.0
REPEAT = 50


async def _fill(url: str, mailing_id: int) -> float:
    """Write 1M clients and 1M messages of mixed statuses; return the raw GROUP BY time (ms)."""
    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            await insert_clients(connection, MESSAGES)
            await connection.execute(
                text(
                    "INSERT INTO messages (mailing_id, client_id, status, attempts, sent_at, "
                    "last_error, created_at, updated_at) "
                    "SELECT :m, id, (ARRAY['pending','sending','sent','sent','sent','sent',"
                    "'failed','expired','cancelled'])[1 + id % 9], 1 + (id % 3), "
                    "CASE WHEN id % 9 BETWEEN 2 AND 5 "
                    "THEN now() - (id % 600) * interval '1 second' END, "
                    "CASE WHEN id % 3 = 0 THEN 'HTTP 503' END, now(), now() FROM clients"
                ),
                {"m": mailing_id},
            )
            # The counters the engine keeps, computed once here.
            await connection.execute(
                text(
                    "UPDATE mailing_stats SET "
                    "total = c.total, pending = c.pending, sending = c.sending, sent = c.sent, "
                    "failed = c.failed, expired = c.expired, cancelled = c.cancelled, "
                    "attempts = c.attempts, first_sent_at = c.first, last_sent_at = c.last "
                    "FROM (SELECT count(*) AS total, "
                    "count(*) FILTER (WHERE status='pending') AS pending, "
                    "count(*) FILTER (WHERE status='sending') AS sending, "
                    "count(*) FILTER (WHERE status='sent') AS sent, "
                    "count(*) FILTER (WHERE status='failed') AS failed, "
                    "count(*) FILTER (WHERE status='expired') AS expired, "
                    "count(*) FILTER (WHERE status='cancelled') AS cancelled, "
                    "sum(attempts) AS attempts, min(sent_at) AS first, max(sent_at) AS last "
                    "FROM messages WHERE mailing_id = :m) AS c WHERE mailing_id = :m"
                ),
                {"m": mailing_id},
            )
            await connection.execute(
                text(
                    "INSERT INTO mailing_timeline (mailing_id, at, sent, failed) "
                    "SELECT :m, date_trunc('minute', sent_at), count(*), 0 FROM messages "
                    "WHERE mailing_id = :m AND sent_at IS NOT NULL GROUP BY 2"
                ),
                {"m": mailing_id},
            )
        async with engine.connect() as connection:
            await connection.execute(text("ANALYZE"))
            started = time.perf_counter()
            await connection.execute(
                text("SELECT status, count(*) FROM messages WHERE mailing_id = :m GROUP BY status"),
                {"m": mailing_id},
            )
            return (time.perf_counter() - started) * 1000
    finally:
        await engine.dispose()


def run(workdir: Path) -> list[Row]:
    rows: list[Row] = []
    with database("postgres", workdir) as url, server(url, workdir) as (http, _pid):
        now = datetime.now(UTC)
        mailing = http.post(
            "/api/v1/mailings",
            json={
                "text": "bench",
                "start_time": (now + timedelta(days=1)).isoformat(),
                "end_time": (now + timedelta(days=2)).isoformat(),
            },
        ).json()
        raw_ms = asyncio.run(_fill(url, mailing["id"]))
        detail = http.get(f"/api/v1/mailings/{mailing['id']}/stats").json()
        assert detail["stats"]["total"] == MESSAGES, detail["stats"]
        for label, path in (
            ("GET /mailings/{id}/stats, 1M messages", f"/api/v1/mailings/{mailing['id']}/stats"),
            ("GET /stats, 1M messages", "/api/v1/stats"),
        ):
            median, p95 = timed(lambda path=path: http.get(path), REPEAT)
            rows.append(
                Row(
                    label,
                    "postgres",
                    f"median {median:.1f} ms, p95 {p95:.1f} ms",
                    f"< {TARGET_MS:.0f} ms",
                    p95 < TARGET_MS,
                )
            )
        rows.append(
            Row("(for scale) raw GROUP BY status over 1M rows", "postgres", f"{raw_ms:.0f} ms", "-")
        )
        preview = {
            "text": "bench",
            "start_time": (now + timedelta(days=1)).isoformat(),
            "end_time": (now + timedelta(days=2)).isoformat(),
            "send_window": {"start": "09:00", "end": "21:00"},
        }
        for label, body in (
            ("POST /mailings/preview, 1M clients, no filter, a window", preview),
            (
                "POST /mailings/preview, 1M clients, 2 operator codes and 2 tags",
                {**preview, "filter": {"operator_codes": ["900", "916"], "tags": ["tag1", "tag2"]}},
            ),
        ):
            median, p95 = timed(
                lambda body=body: http.post("/api/v1/mailings/preview", json=body), REPEAT // 2
            )
            rows.append(
                Row(
                    label,
                    "postgres",
                    f"median {median:.1f} ms, p95 {p95:.1f} ms",
                    f"< {PREVIEW_TARGET_MS:.0f} ms",
                    p95 < PREVIEW_TARGET_MS,
                )
            )
    return rows

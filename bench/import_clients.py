"""Bulk import of 100,000 clients through POST /api/v1/clients/import (CSV), over real HTTP."""

from __future__ import annotations

import time
from pathlib import Path

from bench.common import Row, database, server

ROWS = 100_000
TARGET = 20_000  # rows per second


def csv_body(rows: int, tag: str) -> bytes:
    lines = ["phone,operator_code,tag,timezone"]
    zones = ("Europe/Moscow", "Asia/Yekaterinburg", "+03:00", "UTC")
    for i in range(rows):
        lines.append(f"79{i:09d},9{i % 100:02d},{tag}{i % 50},{zones[i % 4]}")
    return ("\n".join(lines) + "\n").encode()


def run(kind: str, workdir: Path) -> list[Row]:
    rows: list[Row] = []
    with database(kind, workdir) as url, server(url, workdir) as (http, _pid):
        for label, tag in (("new clients", "a"), ("same phones, new tags: updates", "b")):
            body = csv_body(ROWS, tag)
            started = time.perf_counter()
            response = http.post(
                "/api/v1/clients/import", content=body, headers={"Content-Type": "text/csv"}
            )
            elapsed = time.perf_counter() - started
            response.raise_for_status()
            result = response.json()
            assert result["created"] + result["updated"] == ROWS, result
            rate = ROWS / elapsed
            rows.append(
                Row(
                    f"import 100k clients, CSV ({label})",
                    kind,
                    f"{rate:,.0f} rows/s ({elapsed:.2f} s)",
                    f">= {TARGET:,} rows/s",
                    rate >= TARGET,
                )
            )
    return rows

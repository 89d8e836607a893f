from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class WorkerRead(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "web-1-4242-1a2b3c",
                    "host": "web-1",
                    "pid": 4242,
                    "version": "0.1.0",
                    "started_at": "2026-12-06T10:00:00Z",
                    "last_beat_at": "2026-12-06T10:42:05Z",
                    "stopped_at": None,
                    "alive": True,
                    "in_flight": 12,
                    "sent": 104000,
                    "provider": "ok",
                    "provider_error": None,
                    "error": None,
                    "problems": [],
                }
            ]
        }
    )

    name: str = Field(
        description="The engine's name in leases and logs: NOTIFLOW_WORKER_NAME (or host and "
        "pid) and a suffix unique to this start."
    )
    host: str = Field(description="The machine (or container) it runs on.")
    pid: int = Field(description="Its process id there.")
    version: str = Field(description="The Notiflow version it runs.")
    started_at: datetime = Field(description="When the engine started.")
    last_beat_at: datetime = Field(
        description="Its last heartbeat (every NOTIFLOW_WORKER_HEARTBEAT_SECONDS while it runs)."
    )
    stopped_at: datetime | None = Field(
        description="When it stopped gracefully; null while it runs, or if it died without "
        "stopping (it just stops beating)."
    )
    alive: bool = Field(
        description="Not stopped, and its last beat is less than a minute old. Always true in "
        "the default list; `all=true` shows the others too."
    )
    in_flight: int = Field(description="Requests to the provider in flight at its last beat.")
    sent: int = Field(description="Messages it has sent since it started, at its last beat.")
    provider: str = Field(
        description="The provider as it sees it: `ok`, `unauthorized` (401/403: sending "
        "paused), `circuit_open` or `circuit_half_open`."
    )
    provider_error: str | None = Field(description="The provider's last problem, if not ok.")
    error: str | None = Field(description="Why a loop of its engine fails, while it keeps failing.")
    problems: list[str] = Field(
        description="Loops of its engine that have completed no round for "
        "NOTIFLOW_ENGINE_STALL_SECONDS (what its /health would answer 503 for)."
    )

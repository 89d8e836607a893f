"""What the health endpoints answer (see ``notiflow.health.service`` for the rules)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from notiflow import __version__


class EngineHealth(BaseModel):
    running: bool = Field(description="Whether the delivery engine runs in this process.")
    worker: str | None = Field(default=None, description="This engine's name in leases and logs.")
    provider: str = Field(
        description="`ok`, `unauthorized` (401/403: sending paused), `circuit_open`, "
        "`circuit_half_open`, or `not_here` when this process runs no engine."
    )
    provider_error: str | None = Field(default=None, description="The provider's last problem.")
    error: str | None = Field(
        default=None, description="Why a loop of the engine failed, while it keeps failing."
    )
    problems: list[str] = Field(
        default_factory=list,
        description="Why the engine is not doing its work: stopped, or a loop that has completed "
        "no round for `NOTIFLOW_ENGINE_STALL_SECONDS` (blocked, or failing at every try).",
    )
    in_flight: int = Field(default=0, description="Requests to the provider in flight.")
    sent: int = Field(default=0, description="Messages this engine has sent since it started.")


class Health(BaseModel):
    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "status": "ok",
                    "reason": None,
                    "version": __version__,
                    "database": "ok",
                    "engine": {
                        "running": True,
                        "worker": "host-4242-1a2b3c",
                        "provider": "ok",
                        "provider_error": None,
                        "error": None,
                        "problems": [],
                        "in_flight": 12,
                        "sent": 1000,
                    },
                }
            ]
        }
    }

    status: str = Field(
        description="`ok`; `degraded` when the provider is failing or refusing the token (the "
        "answer is still 200); `failing` when the database is unreachable or the engine of this "
        "process is dead or stalled (the answer is 503).",
        examples=["ok"],
    )
    reason: str | None = Field(default=None, description="Why the status is not `ok`.")
    version: str = Field(examples=[__version__])
    database: str = Field(description="`ok` or the error.", examples=["ok"])
    engine: EngineHealth


class Liveness(BaseModel):
    model_config = {"json_schema_extra": {"examples": [{"status": "ok", "version": __version__}]}}

    status: str = Field(description="Always `ok`: the process is up and answers.")
    version: str = Field(examples=[__version__])


class Readiness(BaseModel):
    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "status": "ok",
                    "reason": None,
                    "database": "ok",
                    "revision": "0007",
                    "head": "0007",
                }
            ]
        }
    }

    status: str = Field(
        description="`ok` (200) when the database answers and its schema is at the head of the "
        "migrations; `failing` (503) otherwise.",
        examples=["ok"],
    )
    reason: str | None = Field(default=None, description="Why the status is not `ok`.")
    database: str = Field(description="`ok` or the error.", examples=["ok"])
    revision: str | None = Field(
        default=None, description="The schema revision the database is at (None: not migrated)."
    )
    head: str = Field(description="The revision this version of Notiflow needs.")

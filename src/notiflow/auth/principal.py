"""Who a request acts for: a token's name, role and (for stored tokens) id."""

from __future__ import annotations

from dataclasses import dataclass

from notiflow.auth.roles import Role
from notiflow.config import Settings


@dataclass(frozen=True, slots=True)
class Principal:
    name: str  # the stored token's name, or config#1, config-send#1, … for configured tokens
    role: Role
    token_id: int | None = None  # stored tokens only
    # How an admin UI session signed in when not with a token: "oidc" (the name is an email).
    method: str | None = None


@dataclass(frozen=True, slots=True)
class ConfiguredToken:
    """A token from the environment: NOTIFLOW_API_TOKENS (admin), NOTIFLOW_API_SEND_TOKENS,
    NOTIFLOW_API_READ_TOKENS. Its name is stable as long as its place in its list is."""

    token: str
    principal: Principal


def configured_tokens(settings: Settings) -> list[ConfiguredToken]:
    lists = (
        ("config", Role.admin, settings.api_tokens),
        ("config-send", Role.send, settings.api_send_tokens),
        ("config-read", Role.read, settings.api_read_tokens),
    )
    return [
        ConfiguredToken(token, Principal(f"{prefix}#{number}", role))
        for prefix, role, tokens in lists
        for number, token in enumerate(tokens, start=1)
    ]

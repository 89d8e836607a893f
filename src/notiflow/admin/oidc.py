"""Sign-in to the admin UI through an OpenID Connect provider (the ``NOTIFLOW_OIDC_*`` settings).

The flow is Authlib's Starlette client on the provider's discovery document, fetched on first
use: the authorization code flow with PKCE (S256), a nonce and a state, both kept in the UI's
signed session cookie until the provider sends the browser back. The ID token's signature (the
provider's JWKS), issuer, audience, expiry and nonce are checked, and ``email_verified`` must be
true when the provider sends it.

Who may enter is the email of the ID token: one of ``NOTIFLOW_OIDC_ALLOWED_EMAILS``, or of a
domain of ``NOTIFLOW_OIDC_ALLOWED_DOMAINS``. The session then holds the email, the name and the
role (``NOTIFLOW_OIDC_ROLE``), and the principal is ``Principal(name=email, role=…)``; the rules
are read again at each request, so a person taken off the lists is signed out at their next one.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
from joserfc.errors import JoseError
from starlette.requests import Request
from starlette.responses import Response

from notiflow.auth.principal import Principal
from notiflow.auth.roles import Role
from notiflow.config import Settings

with warnings.catch_warnings():
    # Authlib warns on import that it would rather use the httpx2 fork than httpx (which it uses
    # when httpx2 is not installed, as here); the context also undoes the "always show my
    # deprecations" filter it installs for the whole process.
    import authlib.deprecate  # noqa: F401  (it installs that filter: ours must come after)

    warnings.simplefilter("ignore", DeprecationWarning)
    from authlib.integrations.base_client import MismatchingStateError
    from authlib.integrations.starlette_client import OAuth, OAuthError, StarletteOAuth2App

log = logging.getLogger("notiflow.ui")

METHOD = "oidc"  # the value of SIGNED_IN_WITH, and the audit detail's "method"
# Session keys.
SIGNED_IN_WITH = "signed_in_with"
EMAIL = "oidc_email"
NAME = "oidc_name"
ROLE = "oidc_role"
ID_TOKEN = "oidc_id_token"  # the id_token_hint of the provider's logout, when it offers one
NEXT = "oidc_next"  # where to go once signed in
LOGOUT_URL = "oidc_logout_url"  # offered on the sign-in page once, after signing out
_KEYS = (SIGNED_IN_WITH, EMAIL, NAME, ROLE, ID_TOKEN)

DISCOVERY_PATH = "/.well-known/openid-configuration"
TIMEOUT_SECONDS = 10.0  # each request to the provider (discovery, token, JWKS)


class ProviderUnavailable(Exception):
    """The provider could not be asked (unreachable, an error, a discovery document that does
    not fit): the UI answers 503 with this sentence."""


class SignInRefused(Exception):
    """The provider's answer does not sign this person in: a 400 (the flow was broken) or a 403
    (the person may not enter), with the sentence to show."""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Identity:
    email: str
    name: str
    id_token: str


def enabled(settings: Settings) -> bool:
    return settings.oidc_issuer is not None


def issuer_host(settings: Settings) -> str:
    """The provider's host (and port), as the sign-in button names it."""
    return urlsplit(settings.oidc_issuer or "").netloc


def allows(settings: Settings, email: str) -> bool:
    """Whether ``email`` may sign in: listed, or of a listed domain (exactly: a subdomain of a
    listed domain is another domain)."""
    email = email.strip().lower()
    domain = email.rpartition("@")[2]
    return email in settings.oidc_allowed_emails or domain in settings.oidc_allowed_domains


def refusal(email: str) -> str:
    return (
        f"{email} may not use this Notiflow; ask an administrator to add you to "
        "NOTIFLOW_OIDC_ALLOWED_EMAILS/DOMAINS."
    )


def start_session(session: MutableMapping[str, Any], identity: Identity, role: Role) -> None:
    """A new session (nothing of the one before is kept: the caller makes its CSRF token) for
    the person; the ID token only when the provider offers a logout it is the hint of."""
    session.clear()
    session[SIGNED_IN_WITH] = METHOD
    session[EMAIL] = identity.email
    session[NAME] = identity.name
    session[ROLE] = role.value
    if identity.id_token:
        session[ID_TOKEN] = identity.id_token


def signed_in(session: MutableMapping[str, Any]) -> bool:
    return session.get(SIGNED_IN_WITH) == METHOD


def principal_of(session: MutableMapping[str, Any], settings: Settings) -> Principal | None:
    """The person of an OIDC session, under the rules in force now: when OIDC is off or the
    email is no longer allowed, the session ends here (None)."""
    email = session.get(EMAIL)
    if not enabled(settings) or not isinstance(email, str) or not allows(settings, email):
        for key in _KEYS:
            session.pop(key, None)
        return None
    role = Role(settings.oidc_role)
    session[ROLE] = role.value  # a changed NOTIFLOW_OIDC_ROLE applies from the next request
    return Principal(name=email, role=role, method=METHOD)


def _claims_options(metadata: dict[str, Any], client_id: str) -> dict[str, Any]:
    """What the ID token must say (Authlib checks the nonce and at_hash itself)."""
    return {
        "iss": {"essential": True, "value": metadata["issuer"]},
        "aud": {"essential": True, "value": client_id},
        "exp": {"essential": True},
        "iat": {"essential": True},
        "sub": {"essential": True},
    }


def _verified(value: object) -> bool:
    # Some providers send the claim as a string.
    return value is True or value == "true"


class Provider:
    """The provider's client, one per app (``app.state.oidc``); its discovery document is
    fetched on first use and kept once it passed the checks."""

    def __init__(self, settings: Settings) -> None:
        assert settings.oidc_issuer is not None
        assert settings.oidc_client_secret is not None
        self.settings = settings
        self.issuer = settings.oidc_issuer
        self.host = issuer_host(settings)
        registry = OAuth()
        client = registry.register(
            name=METHOD,
            client_id=settings.oidc_client_id,
            client_secret=settings.oidc_client_secret.get_secret_value(),
            server_metadata_url=self.issuer + DISCOVERY_PATH,
            client_kwargs={
                "scope": settings.oidc_scopes,
                "code_challenge_method": "S256",  # PKCE
                "timeout": TIMEOUT_SECONDS,
            },
        )
        assert isinstance(client, StarletteOAuth2App)
        self.client = client

    async def metadata(self) -> dict[str, Any]:
        """The discovery document; ProviderUnavailable when it cannot be had or does not fit."""
        try:
            metadata: dict[str, Any] = await self.client.load_server_metadata()
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("the OIDC provider's discovery document could not be read: %r", exc)
            raise ProviderUnavailable(
                f"The sign-in provider at {self.host} cannot be reached right now "
                f"({type(exc).__name__}); try again shortly, or sign in with an API token."
            ) from exc
        issuer = metadata.get("issuer")
        if not isinstance(issuer, str) or issuer.rstrip("/") != self.issuer:
            self.client.server_metadata.clear()  # fetched again next time
            raise ProviderUnavailable(
                f"The provider's discovery document names the issuer {issuer!r}, not "
                f"NOTIFLOW_OIDC_ISSUER ({self.issuer}): check the setting."
            )
        for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not isinstance(metadata.get(key), str):
                self.client.server_metadata.clear()
                raise ProviderUnavailable(
                    f"The provider's discovery document has no {key}: it cannot sign anyone in."
                )
        return metadata

    async def login_redirect(self, request: Request, redirect_uri: str) -> Response:
        """The redirect to the provider's authorization endpoint (state, nonce and the PKCE
        verifier are kept in the session)."""
        await self.metadata()
        response: Response = await self.client.authorize_redirect(request, redirect_uri)
        return response

    async def identity(self, request: Request) -> Identity:
        """The person the provider sent back, once every check passed."""
        metadata = await self.metadata()
        try:
            token = await self.client.authorize_access_token(
                request, claims_options=_claims_options(metadata, self.settings.oidc_client_id)
            )
        except MismatchingStateError as exc:
            raise SignInRefused(
                400,
                "This sign-in was not started in this browser, was already used, or expired "
                "(its state does not match): start again.",
            ) from exc
        except OAuthError as exc:
            description = f": {exc.description}" if exc.description else ""
            raise SignInRefused(
                400, f"The provider at {self.host} refused the sign-in ({exc.error}{description})."
            ) from exc
        except JoseError as exc:
            log.warning("an OIDC ID token was refused: %r", exc)
            raise SignInRefused(
                400,
                f"The ID token from {self.host} failed its checks ({exc.error}: "
                f"{exc.description}): start again.",
            ) from exc
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("the OIDC provider could not be asked for a token: %r", exc)
            raise ProviderUnavailable(
                f"The sign-in provider at {self.host} cannot be reached right now "
                f"({type(exc).__name__}); try again shortly."
            ) from exc
        claims = token.get("userinfo")
        if not claims:
            raise SignInRefused(400, f"The provider at {self.host} sent no ID token.")
        email = claims.get("email")
        if not isinstance(email, str) or "@" not in email:
            raise SignInRefused(
                403,
                f"The provider at {self.host} did not say who you are (no email in the ID "
                "token): Notiflow needs the email scope.",
            )
        email = email.strip().lower()
        if "email_verified" in claims and not _verified(claims["email_verified"]):
            raise SignInRefused(
                403, f"{email} is not verified at {self.host}: verify it there, then retry."
            )
        if not allows(self.settings, email):
            log.info("an OIDC sign-in was refused", extra={"actor": email})
            raise SignInRefused(403, refusal(email))
        name = claims.get("name")
        keep_id_token = isinstance(metadata.get("end_session_endpoint"), str)
        return Identity(
            email=email,
            name=name if isinstance(name, str) else "",
            id_token=str(token.get("id_token", "")) if keep_id_token else "",
        )

    async def logout_url(self, id_token: str, post_logout_redirect_uri: str) -> str | None:
        """The provider's RP-initiated logout for this ID token, when its discovery document
        lists an end_session_endpoint (None otherwise, or when it cannot be read now)."""
        try:
            metadata = await self.metadata()
        except ProviderUnavailable:
            return None
        endpoint = metadata.get("end_session_endpoint")
        if not isinstance(endpoint, str):
            return None
        query = urlencode(
            {
                "id_token_hint": id_token,
                "post_logout_redirect_uri": post_logout_redirect_uri,
                "client_id": self.settings.oidc_client_id,
            }
        )
        return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}"

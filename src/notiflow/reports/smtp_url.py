"""``NOTIFLOW_SMTP_URL`` and the report's addresses, read without importing the SMTP client.

Accepted forms (nothing else is):

- ``smtp://host[:port]`` — plain SMTP, for a relay on the same host or network (port 25);
- ``smtp://user:password@host[:port]`` — STARTTLS, then login (port 587); STARTTLS is
  required: a server that does not offer it is an error, a password never travels unencrypted;
- ``smtps://[user:password@]host[:port]`` — TLS from the first byte (port 465), then login if
  credentials are given;
- ``?starttls=yes`` on ``smtp://`` requires STARTTLS without credentials too (and makes the
  default port 587); ``?starttls=no`` turns it off, which is refused with credentials.

The user name and password are percent-decoded (``%40`` for ``@``). Certificates are verified
against the system's certificate authorities (``SSL_CERT_FILE`` points OpenSSL at others).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from email.utils import parseaddr
from urllib.parse import parse_qsl, quote, unquote, urlsplit

FORMS = (
    "use smtp://host:25 (plain, a local relay), smtp://user:password@host:587 (STARTTLS) or "
    "smtps://user:password@host:465 (TLS)"
)


@dataclass(frozen=True, slots=True)
class SmtpTarget:
    """Where and how to hand over the report; ``password`` never shows in a repr or a log."""

    host: str
    port: int
    implicit_tls: bool
    starttls: bool
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    def redacted(self) -> str:
        """The URL to show in logs and messages: the password as ``***``."""
        scheme = "smtps" if self.implicit_tls else "smtp"
        user = f"{quote(self.username, safe='')}:***@" if self.username is not None else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        query = "?starttls=yes" if self.starttls and self.username is None else ""
        return f"{scheme}://{user}{host}:{self.port}{query}"


def parse_smtp_url(url: str) -> SmtpTarget:
    """Read an SMTP URL, or raise ``ValueError`` with a message that never contains the
    password."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise ValueError(f"not a valid SMTP URL: {FORMS}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("smtp", "smtps"):
        raise ValueError(f"must start with smtp:// or smtps://: {FORMS}")
    if not parts.hostname:
        raise ValueError(f"the SMTP URL names no host: {FORMS}")
    if parts.path not in ("", "/") or parts.fragment:
        raise ValueError(f"an SMTP URL has no path: {FORMS}")
    options = dict(parse_qsl(parts.query, keep_blank_values=True))
    unknown = set(options) - {"starttls"}
    if unknown:
        raise ValueError(f"unknown SMTP URL parameter {sorted(unknown)[0]!r}: only starttls")
    username = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    if username == "" or (password is not None and username is None):
        raise ValueError("the SMTP URL has a password but no user name")
    if username is not None and password is None:
        raise ValueError("the SMTP URL has a user name but no password (user:password@host)")
    implicit_tls = scheme == "smtps"
    starttls = username is not None and not implicit_tls
    if "starttls" in options:
        choice = options["starttls"].lower()
        if choice not in ("yes", "no"):
            raise ValueError("starttls must be yes or no")
        if implicit_tls:
            raise ValueError("smtps:// is TLS from the start: starttls does not apply")
        if choice == "no" and username is not None:
            raise ValueError(
                "starttls=no with a user name would send the password unencrypted: "
                "use STARTTLS (the default with credentials) or smtps://"
            )
        starttls = choice == "yes"
    if port is None:
        port = 465 if implicit_tls else 587 if starttls else 25
    if not 0 < port < 65536:
        raise ValueError("the SMTP port must be between 1 and 65535")
    return SmtpTarget(
        host=parts.hostname,
        port=port,
        implicit_tls=implicit_tls,
        starttls=starttls,
        username=username,
        password=password,
    )


def check_address(value: str) -> str:
    """An e-mail address (``ops@example.com`` or ``Ops <ops@example.com>``), or ``ValueError``."""
    text = value.strip()
    if any(c in text for c in "\r\n\t") or len(text) > 300:
        raise ValueError(f"not an e-mail address: {text[:60]!r}")
    _, address = parseaddr(text)
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain or " " in address:
        raise ValueError(f"not an e-mail address: {text!r}")
    return text


def envelope_address(value: str) -> str:
    """The bare address of a checked one (``Ops <ops@example.com>`` → ``ops@example.com``)."""
    return parseaddr(value)[1]

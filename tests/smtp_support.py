"""A real SMTP server for the report tests: aiosmtpd on 127.0.0.1, on a free port, in the test's
own event loop, keeping every message it accepted (and refusing on demand)."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import ssl
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage

    def part(self, subtype: str) -> str:
        body = self.message.get_body(preferencelist=(subtype,))
        assert body is not None
        assert body.get_content_subtype() == subtype
        # As received: lines end with CRLF on the wire.
        return str(body.get_content()).replace("\r\n", "\n")


@dataclass
class Inbox:
    """The handler: every message accepted; the next ``refuse`` DATA commands are refused."""

    messages: list[Received] = field(default_factory=list)
    refuse: int = 0
    refusal: str = "451 4.3.0 Mailbox busy, try again later"
    refused: int = 0
    delay: float = 0.0  # seconds before each answer to DATA: a slow server

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.refuse:
            self.refuse -= 1
            self.refused += 1
            return self.refusal
        content = envelope.original_content or envelope.content
        assert isinstance(content, bytes)
        message = message_from_bytes(content, policy=default)
        assert isinstance(message, EmailMessage)
        self.messages.append(Received(str(envelope.mail_from), list(envelope.rcpt_tos), message))
        return "250 2.0.0 OK"


class Credentials:
    """An aiosmtpd authenticator accepting one user name and password."""

    def __init__(self, username: str, password: str) -> None:
        self.username, self.password = username, password
        self.tried: list[str] = []

    def __call__(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        self.tried.append(data.login.decode())
        ok = data.login.decode() == self.username and data.password.decode() == self.password
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535


@dataclass
class SmtpServer:
    inbox: Inbox
    port: int
    server: asyncio.base_events.Server

    async def stop(self) -> None:
        self.server.close()
        await self.server.wait_closed()


async def start_smtp(
    inbox: Inbox,
    *,
    port: int = 0,
    starttls: ssl.SSLContext | None = None,
    implicit_tls: ssl.SSLContext | None = None,
    credentials: Credentials | None = None,
) -> SmtpServer:
    loop = asyncio.get_running_loop()

    def protocol() -> SMTP:
        with warnings.catch_warnings():
            # aiosmtpd knows TLS only from STARTTLS: on an implicit-TLS port it would not offer
            # AUTH unless told TLS is not required (and warns then, rightly elsewhere).
            warnings.simplefilter("ignore")
            return SMTP(
                inbox,
                hostname="localhost",
                tls_context=starttls,
                require_starttls=starttls is not None,
                authenticator=credentials,
                auth_required=credentials is not None,
                auth_require_tls=implicit_tls is None,
                loop=loop,
            )

    server = await loop.create_server(protocol, "127.0.0.1", port, ssl=implicit_tls)
    return SmtpServer(inbox, int(server.sockets[0].getsockname()[1]), server)


@asynccontextmanager
async def smtp_server(inbox: Inbox | None = None, **options: Any) -> AsyncIterator[SmtpServer]:
    running = await start_smtp(inbox or Inbox(), **options)
    try:
        yield running
    finally:
        await running.stop()


def self_signed(directory: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A certificate for 127.0.0.1 made now: the server's TLS context, and a client context
    that trusts it (and nothing else)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "notiflow test SMTP")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "smtp.crt", directory / "smtp.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cafile=str(cert_file))
    return server, client

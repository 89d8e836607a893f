"""Hand an e-mail to the SMTP server of NOTIFLOW_SMTP_URL, with aiosmtplib."""

from __future__ import annotations

import asyncio
import ssl
from email.message import EmailMessage

import aiosmtplib

from notiflow.reports.smtp_url import SmtpTarget, envelope_address


class MailError(Exception):
    """The SMTP server did not take the message (or could not be reached); says why in one
    line, never with the password."""


def _describe(exc: BaseException) -> str:
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        return "every recipient was refused: " + "; ".join(_describe(e) for e in exc.recipients)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return f"SMTP {exc.code}: {' '.join(exc.message.split())}"
    if isinstance(exc, TimeoutError):
        return f"timeout: {exc}" if str(exc) else "timeout"
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Mailer:
    def __init__(
        self,
        target: SmtpTarget,
        *,
        timeout: float,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self.target = target
        self._timeout = timeout
        self._tls_context = tls_context

    async def send(
        self, message: EmailMessage, *, sender: str, recipients: list[str]
    ) -> dict[str, str]:
        """Send ``message``; return the recipients the server refused (with why) when it took
        it for the others. Raises ``MailError`` when it took it for nobody."""
        target = self.target
        try:
            # Each SMTP operation has its own timeout; the whole exchange is bounded too.
            async with asyncio.timeout(2 * self._timeout):
                refused, _ = await aiosmtplib.send(
                    message,
                    sender=envelope_address(sender),
                    recipients=[envelope_address(r) for r in recipients],
                    hostname=target.host,
                    port=target.port,
                    username=target.username,
                    password=target.password,
                    use_tls=target.implicit_tls,
                    start_tls=target.starttls,  # never "if offered": what the URL says
                    tls_context=self._tls_context,
                    timeout=self._timeout,
                )
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise MailError(_describe(exc)[:500]) from None
        return {
            address: f"SMTP {answer.code}: {' '.join(answer.message.split())}"
            for address, answer in refused.items()
        }

"""Signatures of webhook deliveries, and webhook secrets.

Each attempt is signed with HMAC-SHA256, keyed with the webhook's secret (its UTF-8 bytes, the
whole string), over ``<t>.<body>``: the attempt's Unix time in seconds as decimal digits, a dot,
and the exact bytes of the body. The header ``Notiflow-Signature: t=<t>,v1=<hex digest>`` carries
both, so a receiver can check the signature and refuse old (replayed) requests. The README shows
a receiver's check.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from notiflow import __version__

SECRET_PREFIX = "whsec_"
SIGNATURE_HEADER = "Notiflow-Signature"
EVENT_HEADER = "Notiflow-Event"
DELIVERY_HEADER = "Notiflow-Delivery"
USER_AGENT = f"Notiflow-Webhooks/{__version__}"


def generate_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``<timestamp>.<body>`` keyed with ``secret``."""
    signed = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def headers(
    *, secret: str, timestamp: int, body: bytes, event: str, delivery_id: int
) -> dict[str, str]:
    """The headers of one attempt."""
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        EVENT_HEADER: event,
        DELIVERY_HEADER: str(delivery_id),
        SIGNATURE_HEADER: f"t={timestamp},v1={signature(secret, timestamp, body)}",
    }

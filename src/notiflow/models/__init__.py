"""ORM models, one file per table. Importing the package registers every table."""

from notiflow.models.api_token import ApiToken
from notiflow.models.app_secret import AppSecret
from notiflow.models.audit_entry import AuditEntry
from notiflow.models.client import Client
from notiflow.models.daily_report import DailyReport, ReportStatus
from notiflow.models.mailing import Mailing, MailingStatus
from notiflow.models.mailing_stats import MailingError, MailingStats, MailingTimeline
from notiflow.models.message import FINAL_STATUSES, Message, MessageStatus
from notiflow.models.test_send import TestSend
from notiflow.models.webhook import Webhook
from notiflow.models.webhook_delivery import DeliveryStatus, WebhookDelivery
from notiflow.models.worker import Worker

__all__ = [
    "FINAL_STATUSES",
    "ApiToken",
    "AppSecret",
    "AuditEntry",
    "Client",
    "DailyReport",
    "DeliveryStatus",
    "Mailing",
    "MailingError",
    "MailingStats",
    "MailingStatus",
    "MailingTimeline",
    "Message",
    "MessageStatus",
    "ReportStatus",
    "TestSend",
    "Webhook",
    "WebhookDelivery",
    "Worker",
]

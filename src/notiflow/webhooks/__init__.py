"""Outgoing webhooks: URLs told of mailing and message events, with signed, retried deliveries."""

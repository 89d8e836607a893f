"""Notiflow: a self-hosted campaign service for SMS-style notifications."""

__version__ = "0.1.0"

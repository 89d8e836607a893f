"""Mailings (campaigns): what to send, to whom, between which instants and at which local hours."""

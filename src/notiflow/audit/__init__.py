"""The audit log: every write made through the API, recorded in the write's own transaction."""

"""Statistics: per-mailing counters kept with every message change, and their reports."""

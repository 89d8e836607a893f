"""Database access: engines per dialect, sessions, the declarative base, portable types."""

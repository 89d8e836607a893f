"""Database access: engines per dialect, sessions, the declarative base and portable column types."""

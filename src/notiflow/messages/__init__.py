"""Messages: one per (mailing, client); the table is the delivery queue and the source of truth."""

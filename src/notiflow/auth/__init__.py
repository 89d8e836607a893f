"""Bearer-token authentication for /api/v1: tokens from settings and tokens stored in the database."""

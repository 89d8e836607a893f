"""Bearer-token authentication for /api/v1: tokens from settings and stored tokens."""

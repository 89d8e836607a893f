"""The delivery engine: scheduler, claim queue and sender."""

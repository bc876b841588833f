"""The REST API (FastAPI): routes authenticate, check the role, and call the engine's services only."""

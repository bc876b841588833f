"""API routes, one module per resource; each route authenticates, checks the role and calls a service."""

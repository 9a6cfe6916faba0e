"""HTTP API: ``create_app(settings)`` with a lifespan that owns the database pool."""

"""The durable store: one module per concept, each owning its tables in the shared SQLite database."""

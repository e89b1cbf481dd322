"""Durable state: SQLite (WAL, versioned migrations) and content-addressed blobs."""

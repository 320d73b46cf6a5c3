"""alignloop's library: plain functions from ingest to registry. `alignloop.ingest_frame` lands Python data."""


def __getattr__(name: str):
    # Lazy, so importing a small module (alignloop.config) does not load the store and DuckDB.
    if name == "ingest_frame":
        from alignloop.ingest.frame import ingest_frame

        return ingest_frame
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")

"""The Python door into the store: land data you extracted in Python exactly as a connector's rows.

    from alignloop.ingest.frame import ingest_frame
    ingest_frame(settings, "app_logs", {"generations": gens_df, "feedback": feedback_df})

The data go through the same path as a configured source (the `dataframe` connector serves them as a
connector): same column mapping, keys, cursors, quarantine and one atomic batch, so landing the same
rows twice adds nothing and rows older than the source's cursor are not read again.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from alignloop.connectors.base import ConnectorError, load_connector
from alignloop.config import IngestSettings, Settings, SourceSettings
from alignloop.errors import ConfigError, TerminalError, TransientError
from alignloop.shapes import SHAPES, resolve_mapping
from alignloop.ingest.store import FeedbackStore, IngestResult


def ingest_frame(
    target: Settings | FeedbackStore | str | Path,
    source: str | SourceSettings,
    data: Any,
    *,
    shape: str = "events",
    mapping: Mapping[str, Mapping[str, str]] | None = None,
    lookback: timedelta | None = None,
) -> IngestResult:
    """Land `data` as the rows of `source` in the feedback store, atomically; return what was added.

    target:  Settings (its store; `source` names one of its sources), an open FeedbackStore, or a
             store file path.
    source:  a source name (looked up in the Settings, else a new source with `shape` and `mapping`),
             or a SourceSettings.
    data:    a Polars or pandas DataFrame, a pyarrow Table, or a callable returning an iterable of
             pyarrow RecordBatches (called once per read, so it can stream more data than fits in
             memory). For a shape with several inputs, a mapping {input name: data}, e.g.
             {"generations": ..., "feedback": ...}.
    mapping: canonical -> your column names per input, as in a source's `mapping` in the config.
    lookback: how far below the cursor to read again (default: the config's ingest.lookback, else a day).
    """
    if isinstance(target, Settings):
        resolved = _source_in_settings(target, source)
        with FeedbackStore(target.store_path) as store:
            return _ingest(store, resolved, data, lookback, target.ingest)
    resolved = source if isinstance(source, SourceSettings) else _new_source(source, shape, mapping)
    if isinstance(target, FeedbackStore):
        return _ingest(target, resolved, data, lookback)
    with FeedbackStore(target) as store:
        return _ingest(store, resolved, data, lookback)


def _source_in_settings(settings: Settings, source: str | SourceSettings) -> SourceSettings:
    if isinstance(source, SourceSettings):
        return source
    for s in settings.sources:
        if s.name == source:
            return s
    known = ", ".join(s.name for s in settings.sources)
    raise ConfigError(f"ingest_frame: no source named {source!r} in the config (sources: {known}); add it under sources")


def _new_source(name: str, shape: str, mapping: Mapping[str, Mapping[str, str]] | None) -> SourceSettings:
    from pydantic import ValidationError

    from alignloop.config import describe_validation_error

    try:
        return SourceSettings(name=name, connector="dataframe", shape=shape,
                              mapping={k: dict(v) for k, v in (mapping or {}).items()})
    except ValidationError as e:
        raise ConfigError(describe_validation_error(e, prefix="ingest_frame source.")) from None


def _tables_by_name(source: SourceSettings, data: Any) -> dict[str, Any]:
    """The data keyed by the table each shape input reads (what the connector's windows name)."""
    inputs = resolve_mapping(source.shape, source.mapping, f"sources[{source.name}]",
                             getattr(source, "shape_options", None))
    if not isinstance(data, Mapping):
        if len(inputs) != 1:
            names = ", ".join(i.spec.name for i in inputs)
            raise ConfigError(
                f"ingest_frame: the {source.shape!r} shape has inputs {names}; pass data as a mapping "
                f"{{input name: frame}} with one entry per input"
            )
        return {inputs[0].table: data}
    by_input = {i.spec.name: i.table for i in inputs}
    unknown = [k for k in data if k not in by_input]
    if unknown:
        raise ConfigError(
            f"ingest_frame: {unknown[0]!r} is not an input of the {source.shape!r} shape "
            f"(inputs: {', '.join(by_input)}); key the data by input name"
        )
    missing = [k for k in by_input if k not in data]
    if missing:
        raise ConfigError(
            f"ingest_frame: no data for input {missing[0]!r}; pass one frame per input ({', '.join(by_input)})"
        )
    return {by_input[k]: v for k, v in data.items()}


def _ingest(store: FeedbackStore, source: SourceSettings, data: Any, lookback: timedelta | None,
            settings: IngestSettings | None = None) -> IngestResult:
    if source.shape not in SHAPES:
        raise ConfigError(f"ingest_frame: unknown shape {source.shape!r} (known: {', '.join(SHAPES)})")
    # Through the entry-point registry, as any configured source: the core knows no concrete connector.
    cls = load_connector("dataframe")
    connector = cls(cls.Settings(tables=_tables_by_name(source, data)))
    try:
        connector.check()
    except ConnectorError as e:
        raise (TransientError if e.transient else TerminalError)(f"source {source.name!r}: {e}") from None
    return store.ingest(source, connector, lookback=lookback, settings=settings)

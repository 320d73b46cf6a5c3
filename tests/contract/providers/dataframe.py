"""Contract provider for `dataframe`: the rows as a callable yielding Arrow batches, given in Python."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa

from alignloop.connectors.testing import ContractRow, ContractSource


@contextmanager
def seeded_source(tmp_path: Path, rows: list[ContractRow]) -> Iterator[ContractSource]:
    ordered = list(reversed(rows))
    table = pa.table({"id": [r.id for r in ordered], "ts": pa.array([r.ts for r in ordered], pa.timestamp("us")),
                      "body": [r.body for r in ordered]})
    # A callable, so every read streams the batches anew (what ingest_frame passes for large extracts).
    yield ContractSource(options={"tables": {"contract_rows": lambda: iter(table.to_batches(max_chunksize=4))}},
                         table="contract_rows",
                         # Data that is not a frame, a table or a callable of batches.
                         bad_options={"tables": {"contract_rows": [("a", "plain")]}})

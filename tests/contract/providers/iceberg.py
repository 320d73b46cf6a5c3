"""Contract provider for `iceberg`: the rows in an Iceberg table in a pyiceberg SQL catalog on SQLite."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa

from alignloop.connectors.testing import ContractRow, ContractSource


@contextmanager
def seeded_source(tmp_path: Path, rows: list[ContractRow]) -> Iterator[ContractSource]:
    from pyiceberg.catalog.sql import SqlCatalog

    ordered = list(reversed(rows))
    table = pa.table({"id": [r.id for r in ordered], "ts": pa.array([r.ts for r in ordered], pa.timestamp("us")),
                      "body": [r.body for r in ordered]})
    (tmp_path / "warehouse").mkdir()
    options = {"catalog_uri": f"sqlite:///{tmp_path / 'catalog.db'}", "warehouse": f"file://{tmp_path / 'warehouse'}"}
    catalog = SqlCatalog("default", uri=options["catalog_uri"], warehouse=options["warehouse"])
    catalog.create_namespace("fb")
    iceberg_table = catalog.create_table("fb.contract_rows", schema=table.schema)
    iceberg_table.append(table.slice(0, 3))
    iceberg_table.append(table.slice(3))
    # The catalog's database cannot be opened (its folder does not exist).
    yield ContractSource(options=options, table="fb.contract_rows",
                         bad_options={**options, "catalog_uri": f"sqlite:///{tmp_path / 'no-such-dir' / 'catalog.db'}"})

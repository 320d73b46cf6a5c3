"""Contract provider for `delta`: the rows in a Delta table written locally with the deltalake package."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa

from alignloop.connectors.testing import ContractRow, ContractSource


@contextmanager
def seeded_source(tmp_path: Path, rows: list[ContractRow]) -> Iterator[ContractSource]:
    from deltalake import write_deltalake

    ordered = list(reversed(rows))
    table = pa.table({"id": [r.id for r in ordered], "ts": pa.array([r.ts for r in ordered], pa.timestamp("us")),
                      "body": [r.body for r in ordered]})
    # Two commits, so the read spans more than one data file.
    write_deltalake(str(tmp_path / "lake" / "contract_rows"), table.slice(0, 3))
    write_deltalake(str(tmp_path / "lake" / "contract_rows"), table.slice(3), mode="append")
    # No credentials on a local table: the bad variant is a folder that holds no Delta table.
    (tmp_path / "not_a_table").mkdir()
    yield ContractSource(options={"path": str(tmp_path / "lake" / "{table}")}, table="contract_rows",
                         bad_options={"path": str(tmp_path / "not_a_table")})

"""Contract provider for `duckdb`: the rows in a table of a fresh DuckDB file."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from alignloop.connectors.testing import ContractRow, ContractSource


@contextmanager
def seeded_source(tmp_path: Path, rows: list[ContractRow]) -> Iterator[ContractSource]:
    path = tmp_path / "contract.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE contract_rows (id VARCHAR, ts TIMESTAMP, body VARCHAR)")
    con.executemany("INSERT INTO contract_rows VALUES (?, ?, ?)", [(r.id, r.ts, r.body) for r in reversed(rows)])
    con.close()
    # A local file has no credentials: the bad variant is a file that is not there.
    yield ContractSource(options={"path": str(path)}, table="contract_rows",
                         bad_options={"path": str(tmp_path / "missing.duckdb")})

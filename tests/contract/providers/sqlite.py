"""Contract provider for `sqlite`: the rows in a fresh SQLite file (no credentials: a missing file)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alignloop.connectors.testing import ContractRow, ContractSource


@contextmanager
def seeded_source(tmp_path: Path, rows: list[ContractRow]) -> Iterator[ContractSource]:
    path = tmp_path / "contract.sqlite"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE contract_rows (id TEXT, ts TIMESTAMP, body TEXT)")
    con.executemany("INSERT INTO contract_rows VALUES (?, ?, ?)",
                    [(r.id, r.ts.isoformat(sep=" "), r.body) for r in reversed(rows)])
    con.commit()
    con.close()
    yield ContractSource(options={"path": str(path)}, table="contract_rows",
                         bad_options={"path": str(tmp_path / "missing.sqlite")})

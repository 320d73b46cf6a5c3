"""Contract provider for `postgres`: the rows in a fresh database on the local PostgreSQL server.

The server uses trust authentication (any password is accepted), so the bad-credentials variant is a
role that does not exist, with a password that must not show up in the error.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alignloop.connectors.testing import ContractRow, ContractSource
from tests.contract.servers import PG_HOST, PG_PORT, postgres_database, writable


@contextmanager
def seeded_source(tmp_path: Path, rows: list[ContractRow]) -> Iterator[ContractSource]:
    with postgres_database() as db:
        url = f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{db}"
        with writable("postgres", url) as con:
            con.execute("CREATE TABLE db.contract_rows (id VARCHAR, ts TIMESTAMP, body VARCHAR)")
            con.executemany("INSERT INTO db.contract_rows VALUES (?, ?, ?)",
                            [(r.id, r.ts, r.body) for r in reversed(rows)])
        secret = f"pw-{uuid.uuid4().hex}"
        yield ContractSource(
            options={"dsn": f"postgresql://postgres:{secret}@{PG_HOST}:{PG_PORT}/{db}"},
            table="contract_rows",
            bad_options={"dsn": f"postgresql://no_such_role_x:{secret}@{PG_HOST}:{PG_PORT}/{db}"},
            secret=secret,
        )

"""Contract provider for `mysql`: the rows in a fresh database on the local MariaDB server.

root has an empty password there, so a wrong password is refused for real ("Access denied").
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alignloop.connectors.testing import ContractRow, ContractSource
from tests.contract.servers import MYSQL_HOST, MYSQL_PORT, mysql_database, writable


@contextmanager
def seeded_source(tmp_path: Path, rows: list[ContractRow]) -> Iterator[ContractSource]:
    with mysql_database() as db:
        url = f"mysql://root@{MYSQL_HOST}:{MYSQL_PORT}/{db}"
        with writable("mysql", url) as con:
            con.execute("CREATE TABLE db.contract_rows (id VARCHAR, ts TIMESTAMP, body VARCHAR)")
            con.executemany("INSERT INTO db.contract_rows VALUES (?, ?, ?)",
                            [(r.id, r.ts, r.body) for r in reversed(rows)])
        secret = f"pw-{uuid.uuid4().hex}"
        yield ContractSource(
            options={"dsn": url},
            table="contract_rows",
            bad_options={"dsn": f"mysql://root:{secret}@{MYSQL_HOST}:{MYSQL_PORT}/{db}"},
            secret=secret,
        )

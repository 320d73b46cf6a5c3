"""Contract provider for `files`: the rows in a gzipped JSONL file on local disk.

Bad credentials for S3 (keys through ${ENV}, refused by a real S3-compatible server, never shown) are
checked in tests/integration/test_files_s3.py, which starts that server once for its module.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alignloop.connectors.testing import ContractRow, ContractSource


@contextmanager
def seeded_source(tmp_path: Path, rows: list[ContractRow]) -> Iterator[ContractSource]:
    lines = "".join(json.dumps({"id": r.id, "ts": r.ts.isoformat(sep=" "), "body": r.body}) + "\n" for r in reversed(rows))
    (tmp_path / "contract_rows.jsonl.gz").write_bytes(gzip.compress(lines.encode()))
    # Local files have no credentials: the bad variant is a file that is not there.
    yield ContractSource(options={"path": str(tmp_path / "{table}.jsonl.gz")}, table="contract_rows",
                         bad_options={"path": str(tmp_path / "missing.jsonl.gz")})

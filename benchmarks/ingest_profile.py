"""Where one ingest's time goes: wall seconds of every DuckDB statement of `FeedbackStore.ingest` and of
the shape profile after it, on a warehouse `alignloop bench ingest --workdir DIR` wrote.

    python -m alignloop.benchmarks.ingest_profile DIR [THREADS] [MEMORY_LIMIT]

The store is restored from DIR's empty copy and the warehouse from its original first, as the benchmark
does, so the figures are those of a first load. THREADS 0 (the default) is DuckDB's own choice.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path
from typing import Any


class TimedConnection:
    """A DuckDB connection that records (seconds, statement) for each statement it runs."""

    def __init__(self, con: Any, log: list[tuple[float, str]]) -> None:
        self._con, self._log = con, log

    def __getattr__(self, name: str) -> Any:
        return getattr(self._con, name)

    def _timed(self, label: str, run: Any) -> Any:
        t0 = time.perf_counter()
        result = run()
        self._log.append((time.perf_counter() - t0, " ".join(label.split())))
        return result

    def execute(self, sql: str, *args: Any, **kw: Any) -> TimedConnection:
        self._timed(str(sql), lambda: self._con.execute(sql, *args, **kw))
        return self

    def executemany(self, sql: str, *args: Any, **kw: Any) -> TimedConnection:
        self._timed(str(sql), lambda: self._con.executemany(sql, *args, **kw))
        return self

    def commit(self) -> TimedConnection:
        self._timed("COMMIT", self._con.commit)
        return self

    def close(self) -> None:
        self._timed("CLOSE (checkpoint)", self._con.close)

    def fetchone(self) -> Any:
        return self._con.fetchone()

    def fetchall(self) -> Any:
        return self._con.fetchall()


def profile(work: Path, threads: int | None = None, memory_limit: str | None = None
            ) -> tuple[float, float, list[tuple[float, str]]]:
    """(ingest seconds, snapshot + profile seconds, [(seconds, statement)]) of one first load of `work`."""
    from alignloop.benchmarks.ingest import SOURCE
    from alignloop.connectors.duckdb_file import DuckDBConnector, DuckDBSettings
    from alignloop.config import IngestSettings, SourceSettings
    from alignloop.ingest.store import FeedbackStore

    shutil.copyfile(work / "warehouse.original.duckdb", work / "warehouse.duckdb")
    shutil.copyfile(work / "feedback.empty.duckdb", work / "feedback.duckdb")
    wh = work / "warehouse.duckdb"
    src = SourceSettings(name=SOURCE, options={"path": str(wh)})
    settings = IngestSettings(threads=threads, **({"memory_limit": memory_limit} if memory_limit else {}))
    log: list[tuple[float, str]] = []
    t0 = time.perf_counter()
    store = FeedbackStore(work / "feedback.duckdb")
    store.con = TimedConnection(store.con, log)
    store.ingest(src, DuckDBConnector(DuckDBSettings(path=wh)), settings=settings)
    store.close()
    t1 = time.perf_counter()
    log.append((0.0, "---- snapshot and shape profile"))
    store = FeedbackStore(work / "feedback.duckdb")
    store.con = TimedConnection(store.con, log)
    if threads:
        store.con.execute(f"SET threads = {int(threads)}")
    store.measure(store.snapshot(), 0.2, memory_limit=settings.memory_limit)
    store.close()
    return t1 - t0, time.perf_counter() - t1, log


def main(argv: list[str]) -> None:
    work = Path(argv[0])
    threads = int(argv[1]) if len(argv) > 1 and int(argv[1]) else None
    memory_limit = argv[2] if len(argv) > 2 else None
    ingest, measure, log = profile(work, threads, memory_limit)
    print(f"ingest {ingest:.2f} s, snapshot + profile {measure:.2f} s; statements timed {sum(s for s, _ in log):.2f} s")
    for seconds, statement in log:
        if seconds >= 0.05 or statement.startswith("----"):
            print(f"{seconds:7.2f}  {statement[:140]}")


if __name__ == "__main__":
    main(sys.argv[1:])

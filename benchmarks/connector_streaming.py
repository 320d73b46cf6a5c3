"""How the PostgreSQL connector's two candidate paths stream one window: ADBC vs DuckDB's extension.

Seeds a throwaway database on the local server (ROWS rows, ~560 bytes each), reads the window
`ts >= $start` (all but 9 rows) with the bound value, each way in a fresh process, REPEATS times,
and prints median seconds, median peak RSS and the largest batch. The empty-window row is the
process's own footprint (Python, DuckDB, the extension). Run: `python benchmarks/connector_streaming.py`.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import uuid

ROWS, REPEATS = 300_000, 3
DSN = "postgresql://postgres@127.0.0.1:5432/{db}"

READER = r'''
import datetime, json, resource, sys, time
mode, dsn = sys.argv[1], sys.argv[2]
start = datetime.datetime(2027, 1, 1) if mode == "empty" else datetime.datetime(2026, 1, 1, 0, 0, 10)
t = time.perf_counter()
if mode == "adbc":
    import adbc_driver_postgresql.dbapi as pg
    cur = pg.connect(dsn).cursor()
    cur.execute('SELECT "id", "ts", "body" FROM "t" WHERE "ts" >= $1 ORDER BY "ts"', (start,))
    reader = cur.fetch_record_batch()
else:
    from alignloop.connectors.base import Window
    from alignloop.connectors.postgres import PostgresConnector, PostgresSettings
    c = PostgresConnector(PostgresSettings(dsn=dsn, batch_size=10_000, memory_limit="128MB"))
    reader = c.read(Window("t", "ts" if mode != "unordered" else None, start if mode != "unordered" else None,
                           columns=("id", "ts", "body")))
n = biggest = 0
for b in reader:
    n += b.num_rows
    biggest = max(biggest, b.num_rows)
rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
print(json.dumps({"rows": n, "s": time.perf_counter() - t, "rss_mb": rss_mb, "max_batch": biggest}))
'''


def main() -> None:
    import adbc_driver_postgresql.dbapi as pg

    db = f"alignloop_bench_{uuid.uuid4().hex[:8]}"
    admin = pg.connect(DSN.format(db="postgres"), autocommit=True)
    admin.cursor().execute(f'CREATE DATABASE "{db}"')
    try:
        with pg.connect(DSN.format(db=db), autocommit=True) as con, con.cursor() as cur:
            cur.execute(f"CREATE TABLE t AS SELECT 'id' || g AS id, timestamp '2026-01-01' + g * interval '1 second' AS ts,"
                        f" repeat(md5(g::text), 16) AS body FROM generate_series(1, {ROWS}) g")
        results: dict[str, list[dict]] = {m: [] for m in ("empty", "adbc", "duckdb", "unordered")}
        for _ in range(REPEATS):
            for mode in results:  # interleaved, so load on the machine hits every mode alike
                out = subprocess.run([sys.executable, "-c", READER, mode, DSN.format(db=db)], capture_output=True,
                                     text=True, check=True)
                results[mode].append(json.loads(out.stdout.strip().splitlines()[-1]))
        base = statistics.median(r["s"] for r in results["duckdb"])
        print(f"{'path':<34}{'rows':>8}{'max batch':>11}{'median s':>10}{'vs duckdb':>11}{'peak RSS MB':>13}")
        names = {"empty": "empty window (footprint)", "adbc": "ADBC, bound window, ORDER BY",
                 "duckdb": "DuckDB ext, bound window, ORDER BY", "unordered": "DuckDB ext, whole table, no sort"}
        for mode, runs in results.items():
            s = statistics.median(r["s"] for r in runs)
            print(f"{names[mode]:<34}{runs[0]['rows']:>8}{max(r['max_batch'] for r in runs):>11}{s:>10.2f}"
                  f"{s / base:>10.2f}x{statistics.median(r['rss_mb'] for r in runs):>13.0f}")
    finally:
        admin.cursor().execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        admin.close()


if __name__ == "__main__":
    main()

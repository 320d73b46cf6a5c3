"""Acceptance: feedback in a real PostgreSQL and a real MariaDB table, `preference` shape, each read
through a dsn whose password comes from ${ENV}: `alignloop run` trains and registers on the tiny
model, the next run reads only the rows appended since, and no password is in any file written."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pytest
import yaml

from tests.contract.servers import MYSQL_HOST, MYSQL_PORT, PG_HOST, PG_PORT, mysql_database, postgres_database, writable
from tests.shared_builds import model_cache, seeded_prefect_home

T0 = datetime(2026, 10, 1, 9, 0)
TOPICS = ["tea", "rivers", "owls", "bridges", "jazz", "glaciers", "chess", "bread", "comets", "maps", "bees",
          "kites", "salt", "moss", "violins", "deserts", "ferns", "tides", "clocks", "lighthouses"]
FIRST, APPENDED = 72, 9


def preference_rows(start: int, n: int) -> list[tuple]:
    """(id, ts, user_id, question, good, bad): a polite factual answer preferred over a rude refusal."""
    rows = []
    for i in range(start, start + n):
        topic = TOPICS[i % len(TOPICS)]
        rows.append((f"p{i}", T0 + timedelta(minutes=i), f"u{i % 11}", f"Tell me one thing about {topic} (#{i}).",
                     f"Happy to help: {topic} are fascinating, here is a fact.", f"No. Look up {topic} yourself."))
    return rows


def _seed(con: duckdb.DuckDBPyConnection, rows: list[tuple], create: bool) -> None:
    if create:
        con.execute("CREATE TABLE db.prefs (id VARCHAR, ts TIMESTAMP, user_id VARCHAR, question VARCHAR, "
                    "good VARCHAR, bad VARCHAR)")
    con.executemany("INSERT INTO db.prefs VALUES (?, ?, ?, ?, ?, ?)", rows)


def _source(connector: str, dsn: str) -> dict:
    return {"name": f"{connector}_prefs", "connector": connector, "options": {"dsn": dsn}, "shape": "preference",
            "mapping": {"rows": {"table": "prefs", "ts": "ts", "prompt": "question", "chosen": "good",
                                 "rejected": "bad"}}}


def _config(workdir: Path, sources: list[dict]) -> Path:
    config = workdir / "alignloop.yaml"
    config.write_text(yaml.safe_dump({
        "target": "db-acceptance",
        "sources": sources,
        "base_model": {"tiny": True, "cache_dir": str(model_cache())},
        "training": {"max_steps": 4, "max_length": 96, "method": "dpo"},
        "evaluation": {"max_examples": 8},
        # No look-back: the test checks that the next run starts at the cursor (the default re-reads a day).
        "ingest": {"lookback": 0},
    }))
    return config


def _alignloop(workdir: Path, passwords: dict[str, str], *args: str) -> str:
    """Run the console script as a user would, with its own Prefect home; return everything it printed."""
    env = {**os.environ, **passwords, "PREFECT_HOME": str(seeded_prefect_home(workdir / "prefect-home")),
           "HF_HUB_OFFLINE": "1",
           # Prefect starts its own server for the run; on a busy CI machine that takes more than its 20 s.
           "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180"}
    done = subprocess.run([sys.executable, "-m", "alignloop.cli.main", *args, "--config", str(workdir / "alignloop.yaml")],
                          cwd=workdir, env=env, capture_output=True, text=True, timeout=600)
    printed = done.stdout + done.stderr
    (workdir / f"alignloop-{args[0]}.log").write_text(printed)  # the run's log, grepped like every file
    # `run` exits 3 when the version it registered is refused by the gate (a few steps on tiny data may not gain).
    assert done.returncode in ((0, 3) if args[0] == "run" else (0,)), printed[-3000:]
    return printed


def _ingest_log(workdir: Path) -> dict[str, list[tuple[int, int]]]:
    """(rows read, rows landed) of every ingest batch, per source."""
    con = duckdb.connect(str(workdir / "feedback.duckdb"), read_only=True)
    try:
        rows = con.execute("SELECT source, rows_read, raw_added FROM ingest_log ORDER BY batch_id").fetchall()
    finally:
        con.close()
    out: dict[str, list[tuple[int, int]]] = {}
    for source, read, added in rows:
        out.setdefault(source, []).append((read, added))
    return out


def _files_holding(root: Path, secret: str) -> list[str]:
    needle = secret.encode()
    return [str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


@contextmanager
def mysql_user(db: str, password: str) -> Iterator[str]:
    """A MariaDB user that needs `password` and may only read `db`; dropped afterwards."""
    user = f"al_{uuid.uuid4().hex[:8]}"
    with writable("mysql", f"mysql://root@{MYSQL_HOST}:{MYSQL_PORT}/{db}") as con:
        con.execute(f"CALL mysql_execute('db', 'CREATE USER ''{user}''@''%'' IDENTIFIED BY ''{password}''')")
        con.execute(f"CALL mysql_execute('db', 'GRANT SELECT ON {db}.* TO ''{user}''@''%''')")
        try:
            yield user
        finally:
            con.execute(f"CALL mysql_execute('db', 'DROP USER IF EXISTS ''{user}''@''%''')")


@pytest.mark.slow
def test_postgres_and_mariadb_tables_run_end_to_end_next_run_reads_only_new_rows_no_password_written(tmp_path):
    # Both servers feed one run (one Prefect server start, one training): each source is its own
    # ingest batch and cursor, so each is checked on its own. Local PostgreSQL trusts every
    # connection, so any password is accepted there; the MariaDB user really needs its password.
    # (Wrong credentials: the contract suite and test_mariadb_wrong_password_is_terminal_and_secret_free.)
    passwords = {"PG_PW": f"pg-{uuid.uuid4().hex}", "MY_PW": f"my-{uuid.uuid4().hex}"}
    workdir = tmp_path / "work"
    workdir.mkdir()
    with postgres_database() as pg_db, mysql_database() as my_db, mysql_user(my_db, passwords["MY_PW"]) as user:
        seeds = [("postgres", f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{pg_db}"),
                 ("mysql", f"mysql://root@{MYSQL_HOST}:{MYSQL_PORT}/{my_db}")]
        _config(workdir, [
            _source("postgres", f"postgresql://postgres:${{PG_PW}}@{PG_HOST}:{PG_PORT}/{pg_db}"),
            _source("mysql", f"mysql://{user}:${{MY_PW}}@{MYSQL_HOST}:{MYSQL_PORT}/{my_db}"),
        ])
        for kind, url in seeds:
            with writable(kind, url) as con:
                _seed(con, preference_rows(0, FIRST), create=True)

        printed = _alignloop(workdir, passwords, "run")
        assert "registered" in printed and "version 1" in printed, printed[-2000:]
        # Without a terminal the reference's progress is a log line, once: not a stage line beside it as well.
        assert printed.count("distinct rows once before the first step") == 1, printed[-3000:]
        assert _ingest_log(workdir) == {"postgres_prefs": [(FIRST, FIRST)], "mysql_prefs": [(FIRST, FIRST)]}

        for kind, url in seeds:
            with writable(kind, url) as con:
                _seed(con, preference_rows(FIRST, APPENDED), create=False)
        _alignloop(workdir, passwords, "ingest")
    # The next run starts at the cursor (inclusive): the appended rows plus the one row at the old
    # high-water mark, which the store already holds and skips by key.
    log = _ingest_log(workdir)
    assert log["postgres_prefs"][-1] == log["mysql_prefs"][-1] == (APPENDED + 1, APPENDED)

    # The grep looks where the run really wrote: MLflow's database holds the run, Prefect's the flow run.
    assert b"db-acceptance" in (workdir / "mlflow.db").read_bytes()
    assert _files_holding(workdir / "prefect-home", "retrain")
    for password in passwords.values():
        leaks = _files_holding(workdir, password)
        assert not leaks, f"a password is written in {leaks}"


def test_mariadb_wrong_password_is_terminal_and_secret_free():
    from alignloop.connectors.base import ConnectorTerminalError
    from alignloop.connectors.mysql import MySQLConnector, MySQLSettings

    password = f"my-{uuid.uuid4().hex}"
    with mysql_database() as db, mysql_user(db, password) as user:
        good = MySQLConnector(MySQLSettings(dsn=f"mysql://{user}:{password}@{MYSQL_HOST}:{MYSQL_PORT}/{db}"))
        good.check()
        wrong = f"wrong-{password}"
        bad = MySQLConnector(MySQLSettings(dsn=f"mysql://{user}@{MYSQL_HOST}:{MYSQL_PORT}/{db}", password=wrong))
        with pytest.raises(ConnectorTerminalError) as caught:
            bad.check()
    assert "access denied" in str(caught.value).lower() and wrong not in str(caught.value)
    assert password not in str(caught.value) and "\n" not in str(caught.value)

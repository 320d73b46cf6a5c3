"""Acceptance: feedback in a real PostgreSQL and a real MariaDB table, `preference` shape, read through a
dsn whose password comes from ${PW}: `alignloop run` trains and registers on the tiny model, the next
run reads only the rows appended since, and the password is in no file the runs write."""

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

pytestmark = pytest.mark.slow
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


def _config(workdir: Path, connector: str, dsn: str) -> Path:
    config = workdir / "alignloop.yaml"
    config.write_text(yaml.safe_dump({
        "target": f"db-{connector}",
        "sources": [{"name": f"{connector}_prefs", "connector": connector, "options": {"dsn": dsn},
                     "shape": "preference",
                     "mapping": {"rows": {"table": "prefs", "ts": "ts", "prompt": "question", "chosen": "good",
                                          "rejected": "bad"}}}],
        "base_model": {"tiny": True},
        "training": {"max_steps": 4, "max_length": 96, "method": "dpo"},
        "evaluation": {"max_examples": 8},
        # No look-back: the test checks that the next run starts at the cursor (the default re-reads a day).
        "ingest": {"lookback": 0},
    }))
    return config


def _alignloop(workdir: Path, password: str, *args: str) -> str:
    """Run the console script as a user would, with its own Prefect home; return everything it printed."""
    env = {**os.environ, "PW": password, "PREFECT_HOME": str(workdir / "prefect-home"), "HF_HUB_OFFLINE": "1",
           # Prefect starts its own server for the run; on a busy CI machine that takes more than its 20 s.
           "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180"}
    done = subprocess.run([sys.executable, "-m", "flows.cli", *args, "--config", str(workdir / "alignloop.yaml")],
                          cwd=workdir, env=env, capture_output=True, text=True, timeout=600)
    printed = done.stdout + done.stderr
    (workdir / f"alignloop-{args[0]}.log").write_text(printed)  # the run's log, grepped like every file
    assert done.returncode == 0, printed[-3000:]
    return printed


def _ingest_log(workdir: Path) -> list[tuple[int, int]]:
    con = duckdb.connect(str(workdir / "feedback.duckdb"), read_only=True)
    try:
        return con.execute("SELECT rows_read, raw_added FROM ingest_log ORDER BY batch_id").fetchall()
    finally:
        con.close()


def _files_holding(root: Path, secret: str) -> list[str]:
    needle = secret.encode()
    return [str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def _acceptance(tmp_path: Path, connector: str, dsn_template: str, seed_url: str, password: str) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    _config(workdir, connector, dsn_template)
    kind = "postgres" if connector == "postgres" else "mysql"
    with writable(kind, seed_url) as con:
        _seed(con, preference_rows(0, FIRST), create=True)

    printed = _alignloop(workdir, password, "run")
    assert "registered" in printed and "version 1" in printed, printed[-2000:]
    assert _ingest_log(workdir) == [(FIRST, FIRST)]

    with writable(kind, seed_url) as con:
        _seed(con, preference_rows(FIRST, APPENDED), create=False)
    _alignloop(workdir, password, "ingest")
    # The next run starts at the cursor (inclusive): the appended rows plus the one row at the old
    # high-water mark, which the store already holds and skips by key.
    assert _ingest_log(workdir)[-1] == (APPENDED + 1, APPENDED)

    leaks = _files_holding(workdir, password)
    # The grep looks where the run really wrote: MLflow's database holds the run, Prefect's the flow run.
    assert f"db-{connector}".encode() in (workdir / "mlflow.db").read_bytes()
    assert _files_holding(workdir / "prefect-home", "retrain")
    assert not leaks, f"the password is written in {leaks}"


def test_postgres_preference_table_runs_end_to_end_reads_only_new_rows_and_leaks_no_password(tmp_path):
    # Local PostgreSQL trusts every connection, so any password is accepted: what is tested here is
    # that the one given never lands anywhere. (Wrong credentials are tested in the contract suite.)
    password = f"pg-{uuid.uuid4().hex}"
    with postgres_database() as db:
        _acceptance(tmp_path, "postgres", f"postgresql://postgres:${{PW}}@{PG_HOST}:{PG_PORT}/{db}",
                    f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{db}", password)


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


def test_mariadb_preference_table_runs_end_to_end_reads_only_new_rows_and_leaks_no_password(tmp_path):
    password = f"my-{uuid.uuid4().hex}"
    with mysql_database() as db, mysql_user(db, password) as user:
        _acceptance(tmp_path, "mysql", f"mysql://{user}:${{PW}}@{MYSQL_HOST}:{MYSQL_PORT}/{db}",
                    f"mysql://root@{MYSQL_HOST}:{MYSQL_PORT}/{db}", password)


def test_mariadb_wrong_password_is_terminal_and_secret_free(tmp_path):
    from connectors.base import ConnectorTerminalError
    from connectors.mysql import MySQLConnector, MySQLSettings

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

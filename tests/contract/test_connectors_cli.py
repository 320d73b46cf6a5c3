"""`alignloop connectors list | check | new`, broken plugins (scaffolded plugin packages: test_connector_templates.py)."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from alignloop.connectors.base import ConnectorTerminalError, available_connectors, connector_infos, load_connector
from alignloop.cli.main import app

runner = CliRunner()
T0 = datetime(2026, 10, 1, 12, 0)


def _prefs_db(path: Path, n: int, start: int = 0) -> None:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE IF NOT EXISTS prefs (id TEXT, ts TIMESTAMP, question TEXT, good TEXT, bad TEXT)")
    con.executemany("INSERT INTO prefs VALUES (?, ?, ?, ?, ?)",
                    [(f"p{i}", (T0 + timedelta(minutes=i)).isoformat(sep=" "), f"Q{i}?", "Yes, gladly.", "No.")
                     for i in range(start, start + n)])
    con.commit()
    con.close()


def _config(tmp_path: Path, **mapping) -> Path:
    config = tmp_path / "alignloop.yaml"
    config.write_text(yaml.safe_dump({
        "target": "t", "base_model": {"tiny": True},
        "sources": [{"name": "prefs", "connector": "sqlite", "options": {"path": "prefs.sqlite"},
                     "shape": "preference",
                     "mapping": {"rows": {"table": "prefs", "ts": "ts", "prompt": "question", "chosen": "good",
                                          "rejected": "bad", **mapping}}}]}))
    return config


def test_list_shows_every_connector_with_its_package_and_options():
    result = runner.invoke(app, ["connectors", "list"])
    assert result.exit_code == 0, result.output
    for name in ("duckdb", "postgres", "mysql", "sqlite", "snowflake", "bigquery"):
        assert name in result.output
    assert "dsn (SecretStr, required)" in result.output and "alignloop" in result.output


def test_check_connects_finds_the_columns_and_counts_rows_new_since_the_cursor(tmp_path):
    _prefs_db(tmp_path / "prefs.sqlite", 5)
    config = str(_config(tmp_path))
    result = runner.invoke(app, ["connectors", "check", "prefs", "--config", config])
    assert result.exit_code == 0, result.output
    assert "ok   connect (sqlite)" in result.output
    assert "rows: table prefs has the preference columns" in result.output
    assert "rows: 5 row(s) to read (nothing ingested yet)" in result.output
    assert runner.invoke(app, ["ingest", "--config", config]).exit_code == 0
    _prefs_db(tmp_path / "prefs.sqlite", 2, start=5)
    result = runner.invoke(app, ["connectors", "check", "prefs", "--config", config])
    assert "rows: 2 new row(s) after the cursor 2026-10-01T12:04:00" in result.output, result.output


def test_check_names_a_mapped_column_the_table_lacks(tmp_path):
    _prefs_db(tmp_path / "prefs.sqlite", 3)
    result = runner.invoke(app, ["connectors", "check", "prefs", "--config", str(_config(tmp_path, chosen="best"))])
    assert result.exit_code == 1
    assert "fail rows: table prefs lacks best (for chosen); map them in sources[prefs].mapping.rows" in result.output


def test_check_of_an_unreachable_source_fails_in_one_line(tmp_path):
    config = _config(tmp_path)
    result = runner.invoke(app, ["connectors", "check", "prefs", "--config", str(config)])
    assert result.exit_code == 1 and "fail connect (sqlite): sqlite: file" in result.output
    assert "Traceback" not in result.output


def _fake_dist(site: Path, dist: str, entry: str) -> None:
    info = site / f"{dist}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[alignloop.connectors]\n{entry}\n")


def test_a_broken_plugin_is_reported_by_name_and_the_others_keep_working(tmp_path, monkeypatch):
    _fake_dist(tmp_path, "broken_plugin", "shiny = broken_plugin_mod:Connector")
    (tmp_path / "broken_plugin_mod.py").write_text("import no_such_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "shiny" in available_connectors()
    with pytest.raises(ConnectorTerminalError) as caught:
        load_connector("shiny")
    assert str(caught.value).startswith("connector 'shiny' from package broken_plugin (broken_plugin_mod:Connector) "
                                        "failed to load: ModuleNotFoundError")
    infos = {i.name: i for i in connector_infos()}
    assert infos["shiny"].error and infos["duckdb"].error is None
    assert load_connector("duckdb").__name__ == "DuckDBConnector"
    result = runner.invoke(app, ["connectors", "list"])
    assert result.exit_code == 0 and "broken:" in result.output and "postgres" in result.output


def test_new_in_a_checkout_writes_connector_provider_and_entry_point(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "alignloop"\n\n[project.entry-points."alignloop.connectors"]\n'
        'duckdb = "alignloop.connectors.duckdb_file:DuckDBConnector"\n\n[tool.setuptools]\n')
    result = runner.invoke(app, ["connectors", "new", "acme_feed", "--dest", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "connectors" / "acme_feed.py").is_file()
    provider = (tmp_path / "tests" / "contract" / "providers" / "acme_feed.py").read_text()
    assert "from alignloop.connectors.testing import ContractRow, ContractSource" in provider
    assert ('duckdb = "alignloop.connectors.duckdb_file:DuckDBConnector"\n'
            'acme_feed = "alignloop.connectors.acme_feed:AcmeFeedConnector"\n'
            '\n[tool.setuptools]') in (tmp_path / "pyproject.toml").read_text()
    again = runner.invoke(app, ["connectors", "new", "acme_feed", "--dest", str(tmp_path)])
    assert again.exit_code == 2 and "already exists" in again.output
    assert runner.invoke(app, ["connectors", "new", "Bad-Name", "--dest", str(tmp_path)]).exit_code == 2

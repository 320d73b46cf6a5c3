"""SQL files are found through the installed package, and a missing one is one line, not a traceback."""

from __future__ import annotations

import pytest

from alignloop.errors import TerminalError
from alignloop.sqlfiles import sql_root, sql_text


def test_every_sql_file_reads_through_the_package_root():
    names = sorted(p.name for p in sql_root().joinpath("shapes").iterdir() if p.name.endswith(".sql"))
    assert "events_pairs.sql" in names
    assert sql_text("store_loaded_files.sql").startswith("-- purpose:")


def test_a_missing_sql_file_names_it():
    with pytest.raises(TerminalError, match=r"^SQL file sql/shapes/nope.sql is missing from this installation"):
        sql_text("shapes/nope.sql")

"""Access to the DuckDB SQL files in sql/ (one statement purpose per file, with a header).

The repository's top-level sql/ folder is installed as the data package `alignloop.sql`
(see pyproject.toml), so the same files are found in a source checkout, an editable install
and a built wheel: importlib.resources reads them wherever the package lies.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from alignloop.errors import TerminalError

SQL_PACKAGE = "alignloop.sql"


def sql_root() -> Traversable:
    """The folder holding the SQL files: the installed data package, or sql/ beside pipeline/ in a checkout."""
    try:
        root = resources.files(SQL_PACKAGE)
        if root.joinpath("store_schema.sql").is_file():
            return root
    except ModuleNotFoundError:
        pass
    # Running from a checkout that was never installed (e.g. `python -m pytest` with the repo on sys.path).
    return Path(__file__).resolve().parent.parent / "sql"


@cache
def sql_text(name: str) -> str:
    """The text of sql/<name> (e.g. 'shapes/events_pairs.sql')."""
    path = sql_root()
    for part in name.split("/"):
        path = path.joinpath(part)
    if not path.is_file():
        raise TerminalError(f"SQL file sql/{name} is missing from this installation; reinstall alignloop")
    return path.read_text()

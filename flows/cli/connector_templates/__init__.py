"""The files `alignloop connectors new NAME --kind KIND` writes: a connector and its contract provider per
kind, and the packaging around them for a plugin. Each kind runs as written against a source its
provider seeds, and passes the contract (alignloop.connectors.testing) before anyone edits it.

Templates are string.Template text: `$name` (entry-point name), `$cls` (class name), `$base` (where
the connector contract is imported from); a literal dollar sign is written `$$`.
"""

from __future__ import annotations

from string import Template

from alignloop.cli.connector_templates import files, http, sql

# kind -> (connector template, provider template, what it reads, for --help)
KINDS: dict[str, tuple[str, str, str]] = {
    "sql": (sql.CONNECTOR, sql.PROVIDER, "a table of a SQL database through a DB-API driver (sqlite3 as written)"),
    "http": (http.CONNECTOR, http.PROVIDER, "an HTTP/JSON API, paged with a next-page token, `since` from the window"),
    "files": (files.CONNECTOR, files.PROVIDER, "files of your own format (JSON Lines as written), incremental by file"),
}


def render(template: str, **values: str) -> str:
    """The template with its $placeholders filled; an unknown placeholder is an error, never left in."""
    return Template(template).substitute(values)


PLUGIN_PYPROJECT = '''[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "$dist"
version = "0.1.0"
description = "alignloop connector: $name"
requires-python = ">=3.11"
dependencies = ["alignloop"]

[project.optional-dependencies]
test = ["pytest>=8"]

[project.entry-points."alignloop.connectors"]
$name = "alignloop_$name.connector:$cls"

# Lets alignloop's own contract suite find this connector's provider too.
[project.entry-points."alignloop.contract_providers"]
$name = "alignloop_$name.contract_provider"

[tool.setuptools]
packages = ["alignloop_$name"]

[tool.pytest.ini_options]
testpaths = ["tests"]
'''

PLUGIN_TEST = '''"""The connector contract (alignloop.connectors.testing) against the source the provider seeds.

Run it with `pytest` in this folder once the package is installed (`pip install -e .`): the
connector is loaded through its entry point, so the registration is tested too.
"""

from alignloop.connectors.testing import ConnectorContract
from alignloop_$name import contract_provider


class Test${cls}Contract(ConnectorContract):
    connector = "$name"
    provider = contract_provider
'''

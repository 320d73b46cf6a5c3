"""`alignloop connectors list | check | new`: what a data engineer needs to add and debug a source.

`list` never lets one broken plugin hide the others; `check` connects, looks for the mapped columns
and counts what is new since the store's cursor, without writing anything; `new` scaffolds a
connector, its entry-point line and its contract-test provider.
"""

from __future__ import annotations

import keyword
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from alignloop.connectors.base import ConnectorError, Window, connector_infos, load_connector
from alignloop import secrets
from alignloop.errors import ConfigError, TerminalError, TransientError

out = Console()


def _describe_type(annotation: Any) -> str:
    text = getattr(annotation, "__name__", None) or str(annotation)
    return text.replace("typing.", "").replace("pathlib.", "").replace("pydantic.types.", "")


def options_of(cls: Any) -> list[tuple[str, str, str]]:
    """(name, type and default, description) of a connector's options."""
    rows = []
    for name, field in cls.Settings.model_fields.items():
        kind = _describe_type(field.annotation)
        if field.is_required():
            kind += ", required"
        elif field.default is not None and "Secret" not in kind:
            kind += f" = {field.default!r}"
        rows.append((name, kind, field.description or ""))
    return rows


def list_connectors() -> None:
    """Every installed connector: name, package, options. A broken plugin shows its error."""
    table = Table("connector", "package", "options", title="installed connectors", show_lines=True)
    for info in connector_infos():
        if info.error:
            table.add_row(f"[red]{escape(info.name)}[/]", escape(info.package), f"[red]broken:[/] {escape(info.error)}")
            continue
        cls = load_connector(info.name)
        opts = "\n".join(f"[bold]{escape(n)}[/] ({escape(k)}) {escape(d)}" for n, k, d in options_of(cls))
        table.add_row(escape(info.name), escape(info.package), opts)
    out.print(table)


# ------------------------------------------------------------------------------------------ check
def _cursor_positions(store_path: Path, source: str) -> dict[str, Any]:
    """The store's cursor per input of `source`, read-only; empty when there is no store yet."""
    import duckdb

    if not store_path.is_file():
        return {}
    con = duckdb.connect(str(store_path), read_only=True)
    try:
        rows = con.execute("SELECT input, position, kind FROM cursors WHERE source = ?", [source]).fetchall()
    except duckdb.CatalogException:
        rows = []
    finally:
        con.close()
    from alignloop.ingest.cursors import CursorPosition

    return {name: CursorPosition(value, kind) for name, value, kind in rows}


def _after(position: Any) -> Any:
    """The first value strictly after a stored cursor, in the type the source column compares with."""
    from alignloop.ingest.cursors import INTEGER, TEXT

    start = position.window_start(timedelta(0))
    if position.kind == INTEGER:
        return start + 1
    if position.kind == TEXT:
        return start  # text cursors compare as text: rows at the cursor itself are counted too
    return start + timedelta(microseconds=1)  # timestamps are kept to the microsecond


def _count(connector: Any, window: Window) -> int:
    """Rows in the window: the connector's own count() when it has one, else a streamed count."""
    if callable(getattr(connector, "count", None)):
        return int(connector.count(window))
    narrow = (window.cursor_column,) if window.cursor_column else window.columns
    return sum(batch.num_rows for batch in connector.read(
        Window(window.table, window.cursor_column, window.start, window.end, narrow)))


def check_source(config: Path, source_name: str) -> bool:
    """Connect, look for every mapped column, count new rows; print one line per finding."""
    from alignloop.config import load_settings
    from alignloop.shapes import SHAPES

    settings = load_settings(config)
    by_name = {s.name: s for s in settings.sources}
    if source_name not in by_name:
        raise ConfigError(f"{config}: no source named {source_name!r} (sources: {', '.join(by_name)})")
    source = by_name[source_name]
    from alignloop.stages import build_connector  # stages imports no training library at module level

    connector = build_connector(source)
    ok = True

    def say(good: bool, text: str) -> None:
        mark = "[green]ok[/]  " if good else "[red]fail[/]"
        out.print(f"{mark} {escape(secrets.redact(text))}", highlight=False, soft_wrap=True)

    try:
        connector.check()
    except ConnectorError as e:
        say(False, f"connect ({source.connector}): {e}")
        return False
    say(True, f"connect ({source.connector})")
    positions = _cursor_positions(settings.store_path, source.name)
    shape = SHAPES[source.shape]
    for inp in _inputs(source):
        cursor_col = inp.cursor_column
        try:
            found = _columns_of(connector, inp)
        except ConnectorError as e:
            ok = False
            say(False, f"{inp.spec.name}: table {inp.table}: {e}")
            continue
        required = [(c, s) for c, s in inp.source_columns.items()
                    if inp.spec.optional is None or c not in inp.spec.optional or c in inp.explicit]
        required += [(c, s) for c, names in inp.column_lists.items() for s in names]  # all of a named list
        missing = [f"{s} (for {c})" for c, s in required if found is not None and s not in found]
        if missing:
            ok = False
            say(False, f"{inp.spec.name}: table {inp.table} lacks {', '.join(missing)}; map them in "
                       f"sources[{source.name}].mapping.{inp.spec.name}")
            continue
        if found is None:
            say(True, f"{inp.spec.name}: table {inp.table} is reachable but empty (columns checked on the first rows)")
        else:
            say(True, f"{inp.spec.name}: table {inp.table} has the {shape.name} columns "
                      f"({', '.join(s for _, s in required)})")
        position = positions.get(inp.spec.name) if cursor_col else None
        # Rows at the cursor itself are landed already; timestamps are kept to the microsecond.
        after = _after(position) if position else None
        try:
            new = _count(connector, Window(inp.table, cursor_col, after, None, ()))
        except ConnectorError as e:
            ok = False
            say(False, f"{inp.spec.name}: counting new rows: {e}")
            continue
        if not cursor_col:
            say(True, f"{inp.spec.name}: {new} row(s); no cursor column is mapped, so every run reads them all "
                      f"and skips those already landed")
        elif position:
            say(True, f"{inp.spec.name}: {new} new row(s) after the cursor {position.value}")
        else:
            say(True, f"{inp.spec.name}: {new} row(s) to read (nothing ingested yet)")
    return ok


def _inputs(source: Any) -> list[Any]:
    from alignloop.shapes import resolve_mapping

    return resolve_mapping(source.shape, source.mapping, f"sources[{source.name}]",
                           getattr(source, "shape_options", None))


def _columns_of(connector: Any, inp: Any) -> set[str] | None:
    """The source columns the input's table offers, from its first batch (None when it is empty:
    a column-listing read binds the named columns, so a missing one has failed already)."""
    window = Window(inp.table, inp.cursor_column, columns=inp.read_columns)
    reader = connector.read(window)
    try:
        for batch in reader:
            return set(batch.schema.names)
        return None
    finally:
        reader.close()


# ------------------------------------------------------------------------------------------ new
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def _class_name(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_")) + "Connector"


def scaffold(name: str, dest: Path, kind: str = "sql") -> list[Path]:
    """Write a connector of `kind` (sql, http, files), its entry-point line and its contract provider; return
    the files written.

    In an alignloop checkout (a pyproject.toml with the alignloop.connectors group) the files go
    beside the built-in connectors; anywhere else `dest/alignloop-<name>/` becomes a plugin package
    whose own tests run the contract (alignloop.connectors.testing, shipped in the package).
    """
    from alignloop.cli import connector_templates as t

    if not _NAME.match(name) or keyword.iskeyword(name):
        raise ConfigError(f"connector name {name!r}: use lower-case letters, digits and _ (e.g. acme_events)")
    if kind not in t.KINDS:
        raise ConfigError(f"--kind {kind!r}: not a connector kind (kinds: {', '.join(t.KINDS)})")
    connector, provider, _ = t.KINDS[kind]
    dist = f"alignloop-{name.replace('_', '-')}"
    values = {"name": name, "cls": _class_name(name), "base": "alignloop.connectors.base", "dist": dist}
    pyproject = dest / "pyproject.toml"
    in_repo = pyproject.is_file() and '[project.entry-points."alignloop.connectors"]' in pyproject.read_text()
    if in_repo:
        files = {
            dest / "connectors" / f"{name}.py": connector,
            dest / "tests" / "contract" / "providers" / f"{name}.py": provider,
        }
    else:
        root = dest / dist
        pkg = root / f"alignloop_{name}"
        files = {
            root / "pyproject.toml": t.PLUGIN_PYPROJECT,
            pkg / "__init__.py": f'"""alignloop connector plugin: {name}."""\n',
            pkg / "connector.py": connector,
            pkg / "contract_provider.py": provider,
            root / "tests" / "test_contract.py": t.PLUGIN_TEST,
        }
    existing = [p for p in files if p.exists()]
    if existing:
        raise ConfigError(f"{existing[0]} already exists; pick another name or remove it first")
    for path, template in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(t.render(template, **values))
    written = list(files)
    if in_repo:
        _add_entry_point(pyproject, name, f"alignloop.connectors.{name}:{values['cls']}")
        written.append(pyproject)
    return written


def _add_entry_point(pyproject: Path, name: str, target: str) -> None:
    header = '[project.entry-points."alignloop.connectors"]\n'
    text = pyproject.read_text()
    start = text.index(header) + len(header)
    # Insert at the end of the group's block (before the blank line or next table that ends it).
    end = start
    lines = text[start:].splitlines(keepends=True)
    for line in lines:
        if not line.strip() or line.lstrip().startswith("["):
            break
        if line.split("=")[0].strip() == name:
            raise ConfigError(f"{pyproject}: the connector {name!r} is already registered")
        end += len(line)
    pyproject.write_text(text[:end] + f'{name} = "{target}"\n' + text[end:])


# ------------------------------------------------------------------------------------------ commands
def register(app: typer.Typer, friendly: Any) -> None:
    """Add the commands to the `alignloop connectors` group."""

    @app.command("list")
    @friendly
    def list_cmd() -> None:
        """List installed connectors: name, package and options (a broken plugin shows its error)."""
        list_connectors()

    @app.command("check")
    @friendly
    def check_cmd(
        source: Annotated[str, typer.Argument(help="The source's name in the config.")],
        config: Annotated[Path, typer.Option("--config", "-c", help="Path to alignloop.yaml.")] = Path("alignloop.yaml"),
    ) -> None:
        """Can we connect, do the mapped columns exist, how many rows are new since the cursor."""
        try:
            good = check_source(config, source)
        except ConnectorError as e:
            raise (TransientError if e.transient else TerminalError)(f"source {source!r}: {e}") from None
        if not good:
            raise typer.Exit(1)

    @app.command("new")
    @friendly
    def new_cmd(
        name: Annotated[str, typer.Argument(help="Entry-point name of the new connector (e.g. acme_events).")],
        kind: Annotated[str, typer.Option(help="What it reads: sql (a database table through a DB-API driver), "
                                               "http (an HTTP/JSON API with pages and a cursor), files (files of "
                                               "your own format).")] = "sql",
        dest: Annotated[Path, typer.Option(help="An alignloop checkout, or a folder for a plugin package.")] = Path("."),
    ) -> None:
        """Scaffold a connector, its entry-point line and a contract-test provider that passes as written."""
        written = scaffold(name, dest, kind)
        for path in written:
            out.print(f"wrote {path}", highlight=False, soft_wrap=True)
        if any(p.name == "test_contract.py" for p in written):
            package = written[0].parent
            out.print(f"next: pip install -e {package}, then pytest {package}", highlight=False, soft_wrap=True)
        else:
            out.print(f"next: pip install -e {dest}, then pytest tests/contract -k {name}", highlight=False, soft_wrap=True)

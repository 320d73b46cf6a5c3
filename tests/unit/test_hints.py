"""Every command an error message or hint tells people to run exists."""

from __future__ import annotations

import re
from pathlib import Path

import typer.main

from alignloop.cli.main import app

ROOT = Path(__file__).resolve().parents[2]
# "alignloop <word>" inside backticks, parentheses or after "run": a command being named to the reader.
HINT = re.compile(r"[`(]alignloop ([a-z][a-z-]*)|run alignloop ([a-z][a-z-]*)")


def _commands() -> set[str]:
    group = typer.main.get_group(app)
    return set(group.commands)


def test_every_alignloop_command_named_in_a_message_exists():
    named: dict[str, list[str]] = {}
    for path in [*ROOT.glob("pipeline/**/*.py"), *ROOT.glob("flows/**/*.py"), *ROOT.glob("connectors/**/*.py")]:
        for match in HINT.finditer(path.read_text()):
            word = match.group(1) or match.group(2)
            named.setdefault(word, []).append(str(path.relative_to(ROOT)))
    assert {"versions", "run", "promote"} <= set(named)  # the scan finds the hints it is meant to check
    missing = {word: where for word, where in named.items() if word not in _commands()}
    assert missing == {}

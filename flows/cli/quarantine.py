"""`alignloop quarantine`: what ingest set aside, by reason, with a few examples of each.

Reads the feedback store only; nothing here imports the training stack.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from alignloop.config import load_settings
from alignloop.errors import ConfigError
from alignloop.ingest.store import FeedbackStore

EXAMPLE_CHARS = 160


def show_quarantine(config: Path, source: str | None, examples: int, out: Console) -> None:
    """Print quarantined rows by reason (counts and examples), conflicts and contradictory items."""
    settings = load_settings(config)
    names = [s.name for s in settings.sources]
    if source is not None and source not in names:
        raise ConfigError(f"--source: no source named {source!r} in {config} (sources: {', '.join(names)})")
    if not settings.store_path.exists():
        out.print(f"the feedback store {settings.store_path} does not exist yet; run `alignloop ingest` first")
        return
    with FeedbackStore(settings.store_path) as store:
        reasons = store.quarantine_reasons(source)
        table = Table("rows", "reason", "examples (as read, PII scrubbed)", title=_title(source, reasons))
        for reason, n in reasons:
            shown = [f"[dim]{escape(src)}[/] {escape(_clip(payload))}"
                     for src, payload in store.quarantine_examples(reason, source, examples)]
            table.add_row(str(n), escape(reason), "\n".join(shown))
        out.print(table)
        conflicts = store.conflict_counts(source)
        if conflicts:
            extra = Table("versions", "outcome", title="differing versions of one key (table `conflicts`)")
            for outcome, n in conflicts:
                extra.add_row(str(n), outcome)
            out.print(extra)
        contradictions = {k: v for k, v in store.contradictions().items() if source is None or k == source}
        if contradictions:
            out.print("items with opposite judgements (kept; they measure label noise): "
                      + ", ".join(f"{k} {v}" for k, v in contradictions.items()))


def _title(source: str | None, reasons: list[tuple[str, int]]) -> str:
    total = sum(n for _, n in reasons)
    return f"quarantine{f' of {source}' if source else ''}: {total} rows"


def _clip(text: str | None) -> str:
    text = text or ""
    return text if len(text) <= EXAMPLE_CHARS else text[: EXAMPLE_CHARS - 1] + "…"

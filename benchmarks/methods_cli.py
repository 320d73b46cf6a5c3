"""`alignloop bench methods`: the command around benchmarks/methods.py (table, plot, JSON)."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import methods


def bench_methods(out_dir: Path, *, quick: bool, as_json: bool, workers: int, console, out) -> dict:
    """Run the benchmark, save methods.json and methods.png under out_dir, print a table or the JSON."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    with Progress(TextColumn("bench methods"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task("train", total=None)
        result = methods.run(out_dir, quick=quick, workers=workers,
                             progress=lambda done, total: bar.update(task, completed=done, total=total))
    json_path, png_path = methods.save(result, out_dir)
    if as_json:
        print(json.dumps(methods.public_json(result), indent=2))
        return result
    table = Table(*methods.TABLE_HEADER, title="held-out accuracy vs the hidden rule (mean ± sd over seeds; * best)")
    for row in methods.table_rows(result):
        table.add_row(*row)
    out.print(table)
    out.print(f"planner tied or best in {result['planner_ok']} of {result['n_regimes']} regimes "
              f"({100 * result['planner_ok_share']:.0f}%); {result['seconds']:.0f} s")
    out.print(f"saved {json_path} and {png_path}")
    return result

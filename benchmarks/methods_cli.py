"""`alignloop bench methods`: the command around benchmarks/methods.py (table, plot, JSON)."""

from __future__ import annotations

import json
from pathlib import Path

from alignloop.benchmarks import methods


def bench_methods(out_dir: Path, *, quick: bool, as_json: bool, workers: int, console, out,
                  trainer: str = "compact") -> dict:
    """Run the benchmark, save methods.json and methods.png under out_dir, print a table or the JSON.

    trainer "trl": the cross-check of the compact loop against TRL's own trainers (methods_trl.py)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    if trainer == "trl":
        return _bench_methods_trl(out_dir, quick=quick, as_json=as_json, workers=workers, console=console, out=out)

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


def _bench_methods_trl(out_dir: Path, *, quick: bool, as_json: bool, workers: int, console, out) -> dict:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from alignloop.benchmarks import methods_trl

    with Progress(TextColumn("bench methods --trainer trl"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task("train", total=None)
        subset = dict(regimes=methods.QUICK_REGIMES, budget=methods.QUICK_BUDGET) if quick else {}
        result = methods_trl.run_cross_check(out_dir, workers=workers, **subset,
                                             progress=lambda done, total: bar.update(task, completed=done, total=total))
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "methods_trl.json"
    json_path.write_text(json.dumps(result, indent=2))
    if as_json:
        print(json.dumps(result, indent=2))
        return result
    table = Table(*methods_trl.CROSS_CHECK_HEADER,
                  title="held-out accuracy, compact loop vs TRL's trainers (mean ± sd over seeds; * best)")
    for row in methods_trl.cross_check_rows(result):
        table.add_row(*row)
    out.print(table)
    for r in result["regimes"]:
        out.print(f"{r['name']}: ranking compact {' > '.join(r['ranking']['compact'])}; "
                  f"TRL {' > '.join(r['ranking']['trl'])}; winners agree (within ties): "
                  f"{'yes' if r['winners_agree'] else 'no'}")
    out.print(f"trainers: {', '.join(result['trainers'])}; {result['seconds']:.0f} s; saved {json_path}")
    return result


def bench_noise(*, as_json: bool, out) -> list[dict]:
    """Run the noise calibration; print a table or the JSON."""
    from rich.table import Table

    rows = methods.noise_calibration()
    if as_json:
        print(json.dumps({"calibration": rows}, indent=2))
        return rows
    table = Table("pairs", "injected", "true share", "estimate [95% interval]", "covered", "acted on", "s",
                  title="reward-model flip-rate estimate, no comparison repeated")
    for r in rows:
        est = "no estimate" if r["estimate"] is None else \
            f"{100 * r['estimate']:.1f}% [{100 * r['low']:.1f}–{100 * r['high']:.1f}]"
        table.add_row(str(r["pairs"]), f"{100 * r['injected']:.0f}%", f"{100 * r['true_share']:.1f}%", est,
                      "yes" if r["covered"] else "no", "yes" if r["acted_on"] else "no", f"{r['seconds']:.0f}")
    out.print(table)
    return rows

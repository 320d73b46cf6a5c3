"""`alignloop bench methods`: the command around benchmarks/methods.py (table, plot, JSON)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from alignloop.benchmarks import methods


# Without a terminal (a piped log, a scheduler) the bar does not draw: a line at most this often instead.
PROGRESS_LINE_SECONDS = 30.0


def progress_lines(console, bar, task, every: float = PROGRESS_LINE_SECONDS):
    """A progress callback (done, total) for the bar, which also prints a line to a console that is not a
    terminal: the first job, then at most every `every` seconds, and the last."""
    started = time.perf_counter()
    last = [-every]

    def on(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)
        now = time.perf_counter() - started
        if not console.is_terminal and (done in (1, total) or now - last[0] >= every):
            last[0] = now
            console.print(f"bench methods: {done}/{total} jobs done (+{now:.0f}s)", highlight=False)

    return on


def bench_methods(out_dir: Path, *, quick: bool, as_json: bool, workers: int, console, out,
                  trainer: str = "compact", sets: tuple[str, ...] = ("tuning", "heldout"),
                  draw_seed: int = methods.HELDOUT_SEED, draws: int = methods.HELDOUT_COUNT) -> dict:
    """Run the benchmark, save methods.json and methods.png under out_dir, print tables or the JSON.

    trainer "trl": the cross-check of the compact loop against TRL's own trainers (methods_trl.py)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from alignloop.benchmarks import methods_report as report

    if trainer == "trl":
        return _bench_methods_trl(out_dir, quick=quick, as_json=as_json, workers=workers, console=console, out=out)

    with Progress(TextColumn("bench methods"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task("train", total=None)
        result = methods.run(out_dir, quick=quick, workers=workers, sets=sets, draw_seed=draw_seed, draws=draws,
                             progress=progress_lines(console, bar, task))
    json_path, png_path = report.save(result, out_dir)
    if as_json:
        print(json.dumps(report.public_json(result), indent=2))
        return result
    for name, s in result["sets"].items():
        table = Table(*report.REGIME_HEADER, title=f"{name}: held-out accuracy vs the hidden rule (mean over seeds "
                      "* best, = tied with it; ± diff: half-width of a difference's 95% interval, points)")
        for row in report.regime_rows(s):
            table.add_row(*row)
        out.print(table)
        summary = Table(*report.SUMMARY_HEADER, title=f"{name}: regret over {s['summary']['n_regimes']} regimes "
                        "(points)")
        for row in report.summary_rows(s["summary"]):
            summary.add_row(*row)
        out.print(summary)
    out.print(f"{result['seconds']:.0f} s; saved {json_path} and {png_path}")
    return result


def pool_heldout(paths: list[Path]) -> dict:
    """The held-out regimes of saved `bench methods` results (each file's own draw, scored by the rules of its
    time), pooled into one regret summary: a paired interval over every regime of every draw. A draw seed
    found in two files is refused (its regimes would count twice)."""
    from alignloop.benchmarks.methods import ARMS
    from alignloop.benchmarks.regret import summarise_regret
    from alignloop.errors import ConfigError

    regimes, draws = [], []
    for path in paths:
        try:
            data = json.loads(Path(path).read_text())
            heldout = data["sets"]["heldout"]["regimes"]
            seed = data["heldout_seed"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ConfigError(f"--pool: {path} is not a `bench methods` result with a held-out draw ({e}); pass the "
                              "methods*.json files the benchmark saved") from e
        if seed in [d["seed"] for d in draws]:
            raise ConfigError(f"--pool: {path} holds draw seed {seed} again; pass each draw once")
        draws.append({"file": str(path), "seed": seed, "regimes": len(heldout)})
        regimes += heldout
    return {"draws": draws, "summary": summarise_regret(regimes, ARMS)}


def bench_methods_pool(paths: list[Path], *, as_json: bool, out) -> dict:
    """Print the pooled regret summary of saved results (no training)."""
    from rich.table import Table

    from alignloop.benchmarks import methods_report as report

    pooled = pool_heldout(paths)
    if as_json:
        print(json.dumps(report._rounded(pooled), indent=2))
        return pooled
    seeds = ", ".join(str(d["seed"]) for d in pooled["draws"])
    table = Table(*report.SUMMARY_HEADER, title=f"held-out draws {seeds} pooled: regret over "
                  f"{pooled['summary']['n_regimes']} regimes (points)")
    for row in report.summary_rows(pooled["summary"]):
        table.add_row(*row)
    out.print(table)
    return pooled


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


def bench_noise(*, as_json: bool, out, data_dir: Path | None = None) -> dict:
    """Run the noise checks (synthetic calibration, then real votes when the data is there); print tables
    or the JSON."""
    from alignloop.benchmarks import noise_check

    rows = noise_check.noise_calibration()
    thumbs = noise_check.thumbs_calibration()
    data_dir = noise_check.DEFAULT_DATA if data_dir is None else data_dir
    found = (data_dir / "qa-feedback" / "dev_feedback.json").exists()
    real = noise_check.real_votes_check(data_dir) if found else None
    result = {"calibration": rows, "thumbs_calibration": thumbs, "real_votes": real,
              **({} if found else {"real_votes_skipped": f"no qa-feedback/dev_feedback.json under {data_dir}; "
                                                         "pass --data with the folder that holds it"})}
    if as_json:
        print(json.dumps(result, indent=2))
        return result
    _print_calibration(rows, out)
    _print_thumbs_calibration(thumbs, out)
    if real is None:
        out.print(f"real votes: skipped, {result['real_votes_skipped']}")
    else:
        _print_real_votes(real, out)
    return result


def _share(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}%"


def _estimate(e: dict) -> str:
    if e["flip_rate"] is None:
        return "no estimate: " + e["detail"]
    return f"{_share(e['flip_rate'])} [{_share(e['low'])}–{_share(e['high'])}]"


def _print_calibration(rows: list[dict], out) -> None:
    from rich.table import Table

    table = Table("pairs", "injected", "true share", "estimate [95% interval]", "covered", "verdict", "s",
                  title="reward-model flip-rate estimate, no comparison repeated")
    for r in rows:
        est = "no estimate" if r["estimate"] is None else _estimate({"flip_rate": r["estimate"], **r})
        table.add_row(str(r["pairs"]), f"{100 * r['injected']:.0f}%", _share(r["true_share"]), est,
                      "yes" if r["covered"] else "no", r["verdict"], f"{r['seconds']:.0f}")
    out.print(table)


def _print_thumbs_calibration(rows: list[dict], out) -> None:
    from rich.table import Table

    table = Table("thumbs", "a prompt", "up", "injected", "true share", "estimate [95% interval]", "covered",
                  "verdict (kto_noise_threshold)", "s", title="reward-model flip-rate estimate on thumbs, none repeated")
    for r in rows:
        est = "no estimate" if r["estimate"] is None else _estimate({"flip_rate": r["estimate"], **r})
        table.add_row(str(r["thumbs"]), str(r["answers_per_prompt"]), _share(r["up_share"]),
                      f"{100 * r['injected']:.0f}%", _share(r["true_share"]), est, "yes" if r["covered"] else "no",
                      r["verdict"], f"{r['seconds']:.0f}")
    out.print(table)


def _print_real_votes(real: dict, out) -> None:
    from rich.table import Table

    table = Table("injected", "true share", "triads (the votes' agreement)", "reward model", "plan rests on",
                  title=f"QA-Feedback: {real['questions']} questions, {real['votes']} votes ({real['ties']} ties); "
                        "flips injected on top of the real votes")
    for r in real["rows"]:
        table.add_row(f"{100 * r['injected']:.0f}%", _share(r["true_share"]), _estimate(r["triads"]),
                      _estimate(r["reward_model"]), r["profile_rests_on"] or "—")
    out.print(table)
    hh = Table("set", "pairs", "reward model", title="HH-RLHF helpfulness (one vote a pair: nothing to check against)")
    for r in real["reward_model_without_votes"]:
        hh.add_row(r["set"], str(r["pairs"]), _estimate(r))
    out.print(hh)

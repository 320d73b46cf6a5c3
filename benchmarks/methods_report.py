"""What `alignloop bench methods` shows: per-regime tables, the regret summary, the plot and the JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from alignloop.benchmarks.compact_loop import ARMS

REGIME_HEADER = ["regime", "data", *ARMS, "± diff", "planner", "planner regret", "tied or best"]
SUMMARY_HEADER = ["policy", "mean regret [95% interval]", "minus planner's [95% interval]", "tied or best",
                  "tied or best where arms differ"]


def _pts(x: float | None) -> str:
    # + 0.0 turns a negative zero into 0.0, so "-0.0" is never printed
    return "—" if x is None else f"{round(100 * x, 1) + 0.0:.1f}"


def _interval(v: dict[str, Any]) -> str:
    if v["low"] is None:
        return f"{_pts(v['mean'])}"
    return f"{_pts(v['mean'])} [{_pts(v['low'])}, {_pts(v['high'])}]"


def regime_rows(set_result: dict[str, Any]) -> list[list[str]]:
    """One row a regime: each arm's mean accuracy (* best, = tied with it), the half-width of the interval
    of a difference between arms (points), the planner's arm(s), its regret (points) and its verdict."""
    rows = []
    for r in set_result["regimes"]:
        cells = [r["name"], r["describe"]]
        for arm in ARMS:
            mark = " *" if arm == r["best"] else " =" if r["tied_or_best"][arm] else ""
            cells.append(f"{r['accuracy'][arm]:.3f}{mark}")
        choices = sorted(set(r["planner_choice_by_seed"]), key=r["planner_choice_by_seed"].index)
        cells += [_pts(r["half_width"]), "/".join(choices), _pts(r["planner_regret"]),
                  ("yes" if r["planner_tied_or_best"] else "no") + ("" if r["separated"] else " (arms tied)")]
        rows.append(cells)
    return rows


def summary_rows(summary: dict[str, Any]) -> list[list[str]]:
    """Planner and every fixed arm: mean regret over regimes, the arm's minus the planner's (paired by regime),
    and how often each is tied or best (in all regimes, and where the arms differ by more than their noise)."""
    n, sep = summary["n_regimes"], summary["n_separated"]
    rows = [["planner", _interval(summary["planner_regret"]), "—", f"{summary['planner_tied_or_best']}/{n}",
             f"{summary['planner_tied_or_best_separated']}/{sep}"]]
    for arm in ARMS:
        d = summary["planner_minus_fixed_arm"][arm]
        # shown as arm minus planner: positive when the fixed arm loses more than the planner
        flipped = {"mean": -d["mean"], "low": None if d["high"] is None else -d["high"],
                   "high": None if d["low"] is None else -d["low"]}
        rows.append([f"always {arm}", _interval(summary["fixed_arm_regret"][arm]), _interval(flipped),
                     f"{summary['fixed_arm_tied_or_best'][arm]}/{n}",
                     f"{summary['fixed_arm_tied_or_best_separated'][arm]}/{sep}"])
    return rows


def markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def plot(result: dict[str, Any], path: Path) -> Path:
    """Mean regret (points) of the planner and of each fixed arm, with 95 % intervals, one panel a set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = result["sets"]
    fig, axes = plt.subplots(1, len(sets), figsize=(5 * len(sets), 3.6), squeeze=False)
    for ax, (name, s) in zip(axes[0], sets.items(), strict=True):
        summary = s["summary"]
        policies = [("planner", summary["planner_regret"])] + [(a, summary["fixed_arm_regret"][a]) for a in ARMS]
        means = [100 * v["mean"] for _, v in policies]
        errs = [[0 if v["low"] is None else 100 * (v["mean"] - v["low"]) for _, v in policies],
                [0 if v["high"] is None else 100 * (v["high"] - v["mean"]) for _, v in policies]]
        colors = ["black"] + [f"C{i}" for i in range(len(ARMS))]
        ax.bar([p for p, _ in policies], means, yerr=errs, capsize=3, color=colors)
        ax.set_title(f"{name}: {summary['n_regimes']} regimes")
        ax.set_ylabel("mean regret vs best arm (points)")
        ax.axhline(0, color="grey", lw=0.8)
    title = "alignloop bench methods: regret of the planner and of always one method (95% intervals)"
    # One panel is too narrow for the title on one line: it would be cut at both edges.
    fig.suptitle(title if len(sets) > 1 else title.replace(" and of", "\nand of"), fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_rounded(v) for v in value]
    return value


def public_json(result: dict[str, Any]) -> dict[str, Any]:
    """What `--json` prints and methods.json holds: the claim's regret figures first, then every set."""
    first = ("claim_set", "planner_regret", "fixed_arm_regret", "planner_minus_fixed_arm")
    return _rounded({**{k: result[k] for k in first}, **{k: v for k, v in result.items() if k not in first}})


def tables(result: dict[str, Any]) -> str:
    """Every set's per-regime table and regret summary as Markdown (methods.md beside the JSON)."""
    parts = ["# alignloop bench methods: every regime", "",
             "Mean held-out accuracy over seeds (* best, = tied with it); ± diff: half-width of the 95 % interval "
             "of a difference between two arms (points); regret: the best arm's mean minus the planner's (points). "
             "Written by the benchmark with methods.json and methods.png.", ""]
    for name, s in result["sets"].items():
        parts += [f"## {name}: {s['summary']['n_regimes']} regimes, seeds {', '.join(map(str, s['budget']['seeds']))}",
                  "", markdown(REGIME_HEADER, regime_rows(s)), "", markdown(SUMMARY_HEADER, summary_rows(s["summary"])),
                  ""]
    return "\n".join(parts)


def save(result: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "methods.json"
    json_path.write_text(json.dumps(public_json(result), indent=2))
    (out_dir / "methods.md").write_text(tables(result))
    return json_path, plot(result, out_dir / "methods.png")

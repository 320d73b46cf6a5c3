"""The review page: one self-contained HTML file per candidate, for the people who decide what ships.

It reads what a run folder holds (snapshot.json, plan.json, train.json, eval_report.json, gate.json,
per_pair_scores.jsonl when present) and shows what the candidate learned from, which method and why,
how it compares with the champion and the reference (with 95% intervals), the gate's verdict line by
line, three plots (PNG embedded as base64) and held-out prompts answered by both models side by side.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

MAX_SAMPLES = 20
PAGE_NAME = "review.html"


def write_review_page(run_dir: Path, *, target: str, champion: Mapping[str, Any] | None = None,
                      sources: Mapping[str, Any] | None = None, version: int | None = None,
                      out: Path | None = None) -> Path:
    """Render the run folder's review page to `out` (default run_dir/review.html); return the path."""
    run_dir = Path(run_dir)
    page = render_review_page(load_run(run_dir), target=target, champion=champion, sources=sources,
                              version=version, run_name=run_dir.name)
    path = Path(out) if out else run_dir / PAGE_NAME
    path.write_text(page, encoding="utf-8")
    return path


def load_run(run_dir: Path) -> dict[str, Any]:
    """The JSON files of a run folder, by stem; per-pair scores as a list (empty when absent)."""
    run: dict[str, Any] = {}
    for stem in ("snapshot", "plan", "train", "eval_report", "gate", "shape"):
        f = run_dir / f"{stem}.json"
        run[stem] = json.loads(f.read_text()) if f.is_file() else {}
    if not run["shape"]:
        run["shape"] = run["plan"].get("shape", {})
    pairs = run_dir / "per_pair_scores.jsonl"
    run["per_pair"] = [json.loads(line) for line in pairs.read_text().splitlines() if line.strip()] \
        if pairs.is_file() else []
    return run


# --------------------------------------------------------------------------------------------------
# HTML


def render_review_page(run: Mapping[str, Any], *, target: str, champion: Mapping[str, Any] | None = None,
                       sources: Mapping[str, Any] | None = None, version: int | None = None,
                       run_name: str = "") -> str:
    report, plan, gate = run.get("eval_report", {}), run.get("plan", {}), run.get("gate", {})
    metrics = report.get("metrics", {})
    title = f"{target} — {'version ' + str(version) if version else 'candidate'} {run_name}".strip()
    verdict = gate.get("verdict", "not gated")
    sections = [
        f"<h1>{_e(title)}</h1>",
        f'<p class="verdict {_e(verdict)}" id="verdict">Gate verdict: <b>{_e(verdict.upper())}</b></p>',
        f'<p class=small id="settings">Decided under promotion settings {_e(gate["settings_hash"])}.</p>'
        if gate.get("settings_hash") else "",
        _why(gate),
        _headline(metrics, champion),
        "<h2>The gate, check by check</h2>",
        _list(gate.get("reasons", []) or ["the candidate was not gated"], "gate"),
        "<h2>Compared with the champion and the reference</h2>",
        _comparison(metrics, report, champion),
        "<h2>Its own answers, and who judged them</h2>",
        _generation(metrics, report),
        "<h2>What it learned from</h2>",
        _data(run.get("shape", {}), run.get("snapshot", {}), run.get("train", {}), sources),
        f"<h2>Method: {_e(plan.get('method', '?'))}, and why</h2>",
        _list(plan.get("reasons", []), "reasons"),
        _hyperparameters(plan.get("hyperparameters", {})),
        "<h2>Plots</h2>",
        '<div class="plots">' + "".join(_plots(run, metrics)) + "</div>",
        f"<h2>Held-out prompts: {_e(_other_name(report))} and challenger side by side</h2>",
        _samples(report),
        _timing(report),
    ]
    return _PAGE.format(title=_e(title), body="\n".join(sections))


def _why(gate: Mapping[str, Any]) -> str:
    """The checks that decided a verdict other than pass, by name, right under it: the reason at a glance."""
    deciding = [line.split(":", 2) for line in gate.get("reasons", []) if line.startswith(("fail:", "unmeasured:"))]
    if not deciding:
        return ""
    items = "".join(f'<li class="{_e(kind)}"><b>{_e(kind)}: {_e(name.strip())}</b>'
                    f'{": " + _e(rest[0].split(";")[0].strip()) if rest else ""}</li>'
                    for kind, name, *rest in deciding)
    return f'<div id="why">Decided by:<ul>{items}</ul></div>'


def _e(x: Any) -> str:
    return html.escape(str(x))


def _num(x: Any, fmt: str = "{:.3f}") -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else fmt.format(x)


def _ci(metrics: Mapping[str, float], key: str, signed: bool = False, fmt: str | None = None) -> str:
    fmt = fmt or ("{:+.3f}" if signed else "{:.3f}")
    value, low, high = metrics.get(key), metrics.get(f"{key}_ci_low"), metrics.get(f"{key}_ci_high")
    if value is None:
        return "—"
    span = f" <span class=ci>[{_num(low, fmt)}, {_num(high, fmt)}]</span>" if low is not None else ""
    return f"{_num(value, fmt)}{span}"


def _headline(metrics: Mapping[str, float], champion: Mapping[str, Any] | None) -> str:
    if "eval_pref_accuracy_champion_delta" in metrics:
        key, against = "eval_pref_accuracy_champion_delta", f"champion (version {champion['version']})" \
            if champion else "champion"
    else:
        key, against = "eval_pref_accuracy_delta", "reference (the base model)"
    which = "95% interval" if f"{key}_ci_low" in metrics else "no interval measured"
    return (f'<p class="headline" id="gain">Preference accuracy gain over the {_e(against)}: '
            f"<b>{_ci(metrics, key, signed=True)}</b> ({which}) on {_num(metrics.get('eval_pairs'), '{:.0f}')} "
            "held-out pairs.</p>")


def _comparison(metrics: Mapping[str, float], report: Mapping[str, Any], champion: Mapping[str, Any] | None) -> str:
    champ = "—" if champion is None else f"version {champion['version']}"
    rows = [
        ("preference accuracy", _ci(metrics, "eval_pref_accuracy_reference"),
         _ci(metrics, "eval_pref_accuracy_champion"), _ci(metrics, "eval_pref_accuracy_candidate")),
        ("gain over reference", "", "", _ci(metrics, "eval_pref_accuracy_delta", signed=True)),
        ("gain over champion", "", "", _ci(metrics, "eval_pref_accuracy_champion_delta", signed=True)),
        ("implicit reward accuracy (the candidate's own DPO reward)", "", "", _num(metrics.get("eval_reward_accuracy"))),
        ("perplexity rise on capability text", "", "", _ci(metrics, "eval_ppl_rise", fmt="{:+.1%}")),
    ]
    body = "".join(f"<tr><th>{_e(n)}</th><td>{a}</td><td>{b}</td><td>{c}</td></tr>" for n, a, b, c in rows)
    return (f'<table id="comparison"><tr><th></th><th>reference</th><th>champion ({_e(champ)})</th>'
            f"<th>challenger</th></tr>{body}</table>"
            f"<p class=small>Evaluation set {_e(report.get('eval_set_hash', '?'))}: "
            f"{_num(metrics.get('eval_pairs'), '{:.0f}')} held-out pairs over {_num(metrics.get('eval_prompts'), '{:.0f}')} "
            "prompts; the champion was scored on the same pairs in the same run. Intervals are 95% bootstrap "
            "intervals over prompts (paired for differences); the gate decides by preference accuracy's gain, "
            "not by the implicit reward, which measures the candidate by its own reward.</p>")


def _generation(metrics: Mapping[str, float], report: Mapping[str, Any]) -> str:
    """The generation checks and the judge's provenance: what the gate reads besides preference accuracy."""
    n = metrics.get("eval_generation_prompts")
    if not n:
        return "<p id=\"generation\">The models did not answer held-out prompts in this evaluation.</p>"
    against = report.get("samples_against") or _other_name(report)
    per_prompt = (report.get("judge") or {}).get("sampled_per_prompt")
    draws = f", {per_prompt} per prompt" if per_prompt else ""
    limit = f" at {metrics['eval_max_new_tokens']:.0f} tokens" if metrics.get("eval_max_new_tokens") else ""
    rows = [
        (f"judged win rate over the {against}, greedy answers (gated)", _ci(metrics, "eval_judge_win_rate"),
         _num(metrics.get("eval_judge_prompts"), "{:.0f}")),
        *([("judged win rate over the reference, greedy answers", _ci(metrics, "eval_judge_win_rate_reference"),
             _num(metrics.get("eval_judge_prompts"), "{:.0f}") if "eval_judge_win_rate_reference" in metrics else "—")]
          if against != "reference" else []),
        (f"judged win rate over the reference, sampled answers (temperature 1{draws})",
         _ci(metrics, "eval_judge_sampled_win_rate"), _num(metrics.get("eval_judge_sampled_prompts"), "{:.0f}")),
        ("answer length, challenger/reference", _ci(metrics, "eval_length_ratio"), _num(n, "{:.0f}")),
        ("KL from the reference (nats per answer)", _ci(metrics, "eval_kl_reference"),
         _num(metrics.get("eval_kl_prompts"), "{:.0f}")),
        (f"degenerate answers (empty, repeating, cut off{limit}): challenger / reference",
         f"{_num(metrics.get('eval_degenerate_rate'), '{:.0%}')} / "
         f"{_num(metrics.get('eval_degenerate_rate_reference'), '{:.0%}')}", _num(n, "{:.0f}")),
        ("degenerate answers, challenger − reference", _ci(metrics, "eval_degenerate_rate_delta", fmt="{:+.0%}"),
         _num(n, "{:.0f}")),
        ("refusals: challenger / reference", f"{_num(metrics.get('eval_refusal_rate'), '{:.0%}')} / "
         f"{_num(metrics.get('eval_refusal_rate_reference'), '{:.0%}')}", _num(n, "{:.0f}")),
    ]
    body = "".join(f"<tr><th>{_e(a)}</th><td>{b}</td><td>{c}</td></tr>" for a, b, c in rows)
    return (f'<table id="generation"><tr><th></th><th>value [95% CI]</th><th>prompts</th></tr>{body}</table>'
            + _judge(report.get("judge") or {}))


def _judge(judge: Mapping[str, Any]) -> str:
    """Who judged, how well it did on held-out pairs, and what it learned from (never the training rows)."""
    if not judge:
        return '<p id="judge">No judge ran: no win rate.</p>'
    state = "usable" if judge.get("usable") else "UNUSABLE: its win rate is not trusted and not counted"
    low, high = judge.get("accuracy_ci_low"), judge.get("accuracy_ci_high")
    span = f" [{_num(low)}, {_num(high)}]" if low is not None and high is not None else " (no interval)"
    return (f'<p id="judge">Judge: {_e(judge.get("kind", "?"))}, {_e(state)}. Held-out accuracy '
            f"<b>{_num(judge.get('accuracy'))}</b>{_e(span)} on {_e(judge.get('n_accuracy_pairs', '?'))} pairs whose "
            f"preferred answer is known. Fitted on: {_e(judge.get('fitted_on') or 'not recorded')}.</p>")


def _data(shape: Mapping[str, Any], snapshot: Mapping[str, Any], train: Mapping[str, Any],
          sources: Mapping[str, Any] | None) -> str:
    pa_, ta = shape.get("pair_agreement") or {}, shape.get("thumb_agreement") or {}
    rows = [
        ("comparisons (pairs), of which training", f"{shape.get('n_pairs', '—')} ({shape.get('n_pairs_train', '—')})"),
        ("thumbs up / down", f"{shape.get('n_up', '—')} / {shape.get('n_down', '—')}"),
        ("share of thumbs up", _num(shape.get("up_share"), "{:.1%}")),
        ("distinct prompts", shape.get("n_prompts", "—")),
        ("estimated pair flip rate (noise)", _num(pa_.get("flip_rate"), "{:.1%}")),
        ("estimated thumb flip rate (noise)", _num(ta.get("flip_rate"), "{:.1%}")),
        ("preferred answer is the longer one", _num(shape.get("chosen_longer_share"), "{:.1%}")),
        ("time range", f"{shape.get('first_ts', '—')} → {shape.get('last_ts', '—')}"),
        ("snapshot", snapshot.get("snapshot_id", "—")),
        ("rows trained on", train.get("n_train", "—")),
    ]
    if shape.get("n_ties") or shape.get("n_both_bad"):  # votes for neither answer: kept, never trained on
        rows.insert(1, ("ties / both bad (kept, not trained on)", f"{shape['n_ties']} / {shape.get('n_both_bad', 0)}"))
    for name, cursor in (sources or {}).items():
        rows.append((f"source {name}", f"read up to {cursor}"))
    return '<table id="data">' + "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows) + "</table>"


def _hyperparameters(hp: Mapping[str, Any]) -> str:
    shown = {k: v for k, v in hp.items() if not isinstance(v, Mapping)}
    return "<p class=small>" + ", ".join(f"{_e(k)}={_e(v)}" for k, v in shown.items()) + "</p>"


def _list(items: list[str], ident: str) -> str:
    def cls(line: str) -> str:
        return line.split(":", 1)[0] if ":" in line else ""
    return f'<ul id="{ident}">' + "".join(f'<li class="{_e(cls(i))}">{_e(i)}</li>' for i in items) + "</ul>"


def _other_name(report: Mapping[str, Any]) -> str:
    return report.get("samples_against") or ("champion" if report.get("champion_version") else "reference")


def _samples(report: Mapping[str, Any]) -> str:
    """Up to MAX_SAMPLES answered prompts: the whole conversation, both answers (an empty or degenerate
    one marked as such) and the judge's verdict."""
    other = _other_name(report)
    every = list(report.get("samples") or [])
    samples = every[:MAX_SAMPLES]
    if not samples:
        return "<p>This evaluation report holds no generated answers.</p>"
    rows = "".join(
        f"<tr><td>{_conversation(s)}</td><td>{_answer(s, other)}</td><td>{_answer(s, 'candidate')}</td>"
        f"<td>{_verdict(s.get(f'judged_vs_{other}'))}</td></tr>" for s in samples)
    return (f'<p class=small id="samples-count">{len(samples)} of the {len(every)} held-out prompts both models '
            f"answered (up to {MAX_SAMPLES} are shown).</p>"
            f'<table id="samples" class="samples"><tr><th>conversation</th><th>{_e(other)}</th><th>challenger</th>'
            f"<th>judged</th></tr>{rows}</table>")


def _conversation(sample: Mapping[str, Any]) -> str:
    turns = sample.get("conversation") or [{"role": "user", "content": sample.get("prompt", "")}]
    return "".join(f'<div class="turn"><span class="role">{_e(t.get("role", "?"))}:</span> {_e(t.get("content", ""))}'
                   "</div>" for t in turns)


def _answer(sample: Mapping[str, Any], name: str) -> str:
    text = sample.get(name, sample.get("champion", sample.get("reference", ""))) if name != "candidate" \
        else sample.get("candidate", "")
    kind = sample.get(f"{name}_degenerate")
    if kind is None and not str(text).strip():
        kind = "empty"
    mark = f'<span class="degenerate">[{_e(kind)} answer]</span> ' if kind else ""
    return mark + _e(text)


def _verdict(v: Any) -> str:
    return {1.0: "challenger wins", 0.0: "challenger loses", 0.5: "tie"}.get(v, "—") if v is not None else "—"


def _timing(report: Mapping[str, Any]) -> str:
    seconds = report.get("seconds") or {}
    if not seconds:
        return ""
    parts = ", ".join(f"{_e(k.replace('_', ' '))} {v:.0f} s" for k, v in seconds.items()
                      if k != "total" and _finite(v))
    return f'<p class=small id="timing">Evaluation took {_num(seconds.get("total"), "{:.0f}")} s ({parts}).</p>'


# --------------------------------------------------------------------------------------------------
# Plots


def _plots(run: Mapping[str, Any], metrics: Mapping[str, float]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures = []
    margins = [p["reward_margin"] for p in run.get("per_pair", []) if _finite(p.get("reward_margin"))] or [
        e["reward_margin"] for e in run.get("eval_report", {}).get("examples", []) if _finite(e.get("reward_margin"))]
    if margins:
        fig, ax = plt.subplots(figsize=(5, 3.2))
        ax.hist(margins, bins=min(30, max(5, len(margins) // 3)), color="#4c78a8")
        ax.axvline(0, color="black", lw=1)
        ax.set(title="Implicit reward margin per held-out pair", xlabel="r(chosen) − r(rejected)", ylabel="pairs")
        figures.append(("margins", fig))
    bars = [(name, metrics.get(f"eval_pref_accuracy_{key}"), metrics.get(f"eval_pref_accuracy_{key}_ci_low"),
             metrics.get(f"eval_pref_accuracy_{key}_ci_high"))
            for name, key in (("reference", "reference"), ("champion", "champion"), ("challenger", "candidate"))]
    bars = [b for b in bars if _finite(b[1])]
    if bars:
        fig, ax = plt.subplots(figsize=(5, 3.2))
        values = [b[1] for b in bars]
        err = [[v - (lo if _finite(lo) else v) for _, v, lo, _ in bars],
               [(hi if _finite(hi) else v) - v for _, v, _, hi in bars]]
        ax.bar([b[0] for b in bars], values, yerr=err, capsize=6, color=["#9ecae9", "#f58518", "#54a24b"][:len(bars)])
        ax.set(title="Held-out preference accuracy (95% intervals)", ylim=(0, 1), ylabel="accuracy")
        figures.append(("accuracy", fig))
    samples = run.get("eval_report", {}).get("samples") or []
    other = _other_name(run.get("eval_report", {}))
    if samples:
        cand = [len(str(s.get("candidate", "")).split()) for s in samples]
        base = [len(str(s.get(other, "")).split()) for s in samples]
        fig, ax = plt.subplots(figsize=(5, 3.2))
        ax.scatter(base, cand, color="#e45756")
        top = max(cand + base + [1])
        ax.plot([0, top], [0, top], color="gray", lw=1, ls="--")
        ratio = metrics.get("eval_length_ratio")
        ax.set(title=f"Answer length drift (ratio {_num(ratio, '{:.2f}')})", xlabel=f"{other} answer (words)",
               ylabel="challenger answer (words)")
        figures.append(("length", fig))
    out = []
    for name, fig in figures:
        buffer = io.BytesIO()
        fig.tight_layout()
        fig.savefig(buffer, format="png", dpi=90)
        plt.close(fig)
        data = base64.b64encode(buffer.getvalue()).decode()
        out.append(f'<img id="plot-{name}" alt="{name}" src="data:image/png;base64,{data}">')
    return out


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }}
h1 {{ font-size: 1.5em; }} h2 {{ font-size: 1.15em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }}
table {{ border-collapse: collapse; margin: .5em 0; }} th, td {{ border: 1px solid #ddd; padding: .3em .6em;
 text-align: left; vertical-align: top; }} th {{ background: #f6f6f6; }}
.verdict {{ font-size: 1.3em; padding: .4em .8em; display: inline-block; border-radius: 4px; }}
.verdict.pass {{ background: #d8f3dc; }} .verdict.fail {{ background: #ffd6d6; }}
.verdict.unmeasured {{ background: #fff1c2; }}
li.fail {{ color: #b00020; }} li.pass {{ color: #1b7a35; }} li.unmeasured {{ color: #8a6d00; }}
li.skip {{ color: #666; }}
#why {{ font-size: 1.1em; margin: .6em 0; }} #why ul {{ margin: .2em 0; }}
.ci, .small {{ color: #666; font-size: .9em; }} .headline {{ font-size: 1.1em; }}
.plots img {{ margin: .3em; border: 1px solid #eee; }}
.samples td {{ width: 30%; white-space: pre-wrap; font-size: .9em; }} .samples td:last-child {{ width: 10%; }}
.degenerate {{ color: #b00020; font-weight: bold; }} .role {{ color: #666; font-weight: bold; }}
</style></head>
<body>
{body}
</body></html>
"""

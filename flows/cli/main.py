"""`alignloop ...`: the console script. Each stage alone, the whole flow, the demo, and the registry.

Errors alignloop raises on purpose, and writes that find the disk full, print as one line naming the
problem and the fix (exit 2 for bad settings, 1 otherwise), never as a traceback. `alignloop run`
exits with a code a scheduler can read (RUN_EXIT_CODES).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from alignloop.flows import progress
from alignloop.config import Settings, load_settings
from alignloop.errors import AlignloopError, ConfigError, disk_full
from alignloop import secrets
from alignloop.methods import METHODS
from alignloop.shapes import SHAPES
from alignloop.offline import set_offline_defaults
from alignloop.quiet import quiet_libraries

set_offline_defaults()
# Prefect configures its own loggers on import: keep its per-task INFO lines out of the CLI's display.
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__.splitlines()[0])
console = Console(stderr=True)
out = Console()

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="Path to alignloop.yaml.")]
# Sub-command groups; each feature adds its commands to its group in its own module or below.
bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks behind BENCHMARKS.md (speed, memory, method choice).")
connectors_app = typer.Typer(no_args_is_help=True, help="List, check and scaffold connectors.")
app.add_typer(bench_app, name="bench")
app.add_typer(connectors_app, name="connectors")

RunOpt = Annotated[str | None, typer.Option("--run", help="Run folder name under runs/ (default: the latest).")]

# `alignloop run`'s exit codes, by outcome; an error exits 1 (2 for bad settings), as every command does.
RUN_EXIT_CODES = {"passed": 0, "gated_out": 3, "skipped": 4}
RUN_EXIT_HELP = ("Exit codes: 0 registered and passed the gate; 3 registered but the gate refused it; 4 skipped "
                 "(the reason is printed); 1 failed; 2 bad settings.")


def _friendly(fn: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except AlignloopError as e:
            _print_error(e)
            raise typer.Exit(2 if isinstance(e, ConfigError) else 1) from None
        except Exception as e:
            no_room = disk_full(e)
            if no_room is None:
                raise
            _print_error(no_room)
            raise typer.Exit(1) from None

    return wrapper


def _print_error(e: Exception) -> None:
    # escape: messages name fields like sources[prod], which rich would take for markup
    console.print(f"[bold red]error:[/] {escape(secrets.redact(str(e)))}", highlight=False, soft_wrap=True)


class _ProgressLines(logging.Handler):
    """Progress lines before the first training step, as stage lines of a terminal run: the plan's timed steps
    (alignloop.stages) and the reference log-probs' scoring (alignloop.training.fastpath)."""

    STAGES = ("reference log-probs", "timing the plan")

    def __init__(self, reporter: RichReporter) -> None:
        super().__init__(logging.INFO)
        self.reporter = reporter

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        for stage in self.STAGES:
            if message.startswith(stage + ": "):
                self.reporter.stage(stage, message[len(stage) + 2:])


class RichReporter:
    """Shows each stage as it starts, a bar for training steps (with the loss), and one for scoring."""

    def __init__(self) -> None:
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=console)
        self.train_bar = self.eval_bar = None
        self.started = time.perf_counter()

    def __enter__(self) -> RichReporter:
        self.progress.start()
        progress.install(self)
        # Before the first step, training scores the reference log-probs of every row it will read (minutes on
        # a CPU), and a first plan times a few steps: their progress lines become stage lines here, where no bar
        # shows yet.
        # Only where nothing shows them yet: without a terminal, or with --verbose, they are log lines already.
        self._training_log = logging.getLogger("alignloop.training.progress")
        self._saved = (self._training_log.level, self._training_log.propagate)
        self._handler = None
        if not self._training_log.isEnabledFor(logging.INFO):
            self._training_log.setLevel(logging.INFO)
            self._training_log.propagate = False   # this handler shows them, the log handlers do not
            self._handler = _ProgressLines(self)
            self._training_log.addHandler(self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._handler is not None:
            self._training_log.removeHandler(self._handler)
        self._training_log.setLevel(self._saved[0])
        self._training_log.propagate = self._saved[1]
        progress.install(None)
        self.progress.stop()

    def stage(self, name: str, detail: str = "") -> None:
        elapsed = time.perf_counter() - self.started
        self.progress.console.print(f"[cyan]▶ {name}[/] {detail} [dim](+{elapsed:.0f}s)[/]")

    def train_step(self, step: int, max_steps: int, metrics: dict[str, float]) -> None:
        if self.train_bar is None:
            self.train_bar = self.progress.add_task("training", total=max_steps, info="")
        info = f"loss {metrics.get('loss', float('nan')):.4f}"
        if "rewards/accuracies" in metrics:
            info += f"  reward acc {metrics['rewards/accuracies']:.2f}"
        self.progress.update(self.train_bar, completed=step, info=info)

    def eval_progress(self, done: int, total: int) -> None:
        if self.eval_bar is None:
            self.eval_bar = self.progress.add_task("scoring held-out answers", total=total, info="")
        self.progress.update(self.eval_bar, completed=done)


def _settings(config: Path) -> Settings:
    return load_settings(config)


_log_format = "text"


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log every stage's details.")] = False,
         log_format: Annotated[str, typer.Option(
             "--log-format", help="text, or json: one JSON object per log line, with the Prefect flow run id and "
                                  "the run folder (run, serve).")] = "text") -> None:
    """alignloop: production feedback in, an evaluated and registered model out."""
    global _log_format
    if log_format not in ("text", "json"):
        console.print(f"[bold red]error:[/] --log-format: {escape(log_format)!r} is not one of text, json")
        raise typer.Exit(2)
    _log_format = log_format
    secrets.install()
    quiet_libraries()
    if verbose:
        logging.getLogger("alignloop").setLevel(logging.INFO)
    if not sys.stderr.isatty() or log_format == "json":  # no terminal for the bars: progress as log lines
        logging.getLogger("alignloop.training.progress").setLevel(logging.INFO)
        logging.getLogger("alignloop.evaluation.progress").setLevel(logging.INFO)


# ------------------------------------------------------------------------------------------ stages
@app.command(help="Read what is new in every source into the feedback store.\n\n"
                  f"Log shapes (sources[].shape): {', '.join(SHAPES)}.")
@_friendly
def ingest(config: ConfigOpt = Path("alignloop.yaml")) -> None:
    from alignloop import stages

    settings = _settings(config)
    try:
        with console.status("ingesting"):
            results = stages.ingest(settings)
    except AlignloopError as e:  # some sources failed: show what the others loaded, then the error
        if getattr(e, "results", None):
            _print_ingested(e.results)
        raise
    _print_ingested(results)


def _print_ingested(results: list[Any]) -> None:
    # Ties (votes for neither answer) get a column only when a source stored some: most shapes have none.
    ties = any(r.ties_added for r in results)
    table = Table("source", "rows read", "new pairs", "new thumbs", "new ranks", *(["new ties"] if ties else []),
                  "quarantined", "pending", title="ingest")
    for r in results:
        table.add_row(r.source, str(sum(r.rows_read.values())), str(r.pairs_added), str(r.unpaired_added),
                      str(r.ranks_added), *([str(r.ties_added)] if ties else []), str(r.quarantined), str(r.pending))
    out.print(table)


@app.command(help="Snapshot the store, measure the data's shape and choose the method (with reasons).\n\n"
                  + "\n\n".join(f"{m.name}: {m.summary}." for m in METHODS.values())
                  + "\n\ntraining.method: auto lets the planner choose; a name asks for that method.")
@_friendly
def plan(config: ConfigOpt = Path("alignloop.yaml"),
         as_json: Annotated[bool, typer.Option("--json", help="Print the Plan as JSON.")] = False) -> None:
    from alignloop import stages

    planned = stages.plan(_settings(config))
    if as_json:
        print(json.dumps(planned.plan.to_dict(), indent=2))
        return
    _print_plan(planned)


def _print_plan(planned: Any) -> None:
    p, s = planned.plan, planned.plan.shape
    out.print(f"[bold]method:[/] {p.method}   [dim]run {planned.run_id}, snapshot {planned.snapshot.snapshot_id[:12]}[/]")
    for reason in p.reasons:
        out.print(f"  • {reason}", highlight=False)
    table = Table("measure", "value", title="data shape")
    pn, tn = s.get("pair_noise") or {}, s.get("thumb_noise") or {}
    rows = [
        ("pairs (train)", f"{s['n_pairs']} ({s['n_pairs_train']})"),
        ("thumbs up / down (train)", f"{s['n_up']} / {s['n_down']} ({s['n_unpaired_train']})"),
        ("distinct prompts", str(s["n_prompts"])),
        ("pair flip rate (est.)", _fmt_noise(pn)),
        ("thumb flip rate (est.)", _fmt_noise(tn)),
        ("pairs from thumbs (train)",
         f"{s.get('pairs_from_thumbs_train', 0)} on {s.get('pairable_prompts_train', 0)} prompts"),
        ("chosen answer is longer", _fmt_share(s["chosen_longer_share"])),
        ("time range", f"{s['first_ts']} → {s['last_ts']}"),
    ]
    for k, v in rows:
        table.add_row(k, v)
    out.print(table)


def _fmt_share(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}%"


def _fmt_noise(n: dict[str, Any]) -> str:
    if not n or n.get("flip_rate") is None:
        return "— (no signal with enough evidence)"
    return f"{_fmt_share(n['flip_rate'])} [{_fmt_share(n['low'])}–{_fmt_share(n['high'])}] {n['signal']}, n={n['support']}"


@bench_app.command("methods")
@_friendly
def bench_methods(
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
    quick: Annotated[bool, typer.Option("--quick", help="Two small regimes and two drawn ones, two seeds, a few steps "
                                                        "(a smoke run).")] = False,
    out_dir: Annotated[Path, typer.Option("--out", help="Where methods.json and methods.png go.")] = Path("bench-results"),
    workers: Annotated[int, typer.Option("--workers", min=1, help="Processes training in parallel.")] = 2,
    trainer: Annotated[str, typer.Option(
        "--trainer", help="compact: TRL's losses in a compact loop (every regime); trl: cross-check it against "
                          "TRL's DPOTrainer/KTOTrainer on three regimes, two seeds.")] = "compact",
    regime_set: Annotated[str, typer.Option(
        "--set", help="tuning: the named regimes; heldout: the randomly drawn ones; both.")] = "both",
    draw_seed: Annotated[int | None, typer.Option(
        "--draw-seed", help="Seed of the drawn regimes (default: the recorded held-out seed).")] = None,
    draws: Annotated[int | None, typer.Option("--draws", min=1, help="How many regimes to draw.")] = None,
    pool: Annotated[list[Path] | None, typer.Option(
        "--pool", help="Train nothing: pool the held-out regimes of saved results (methods*.json, repeatable) into "
                       "one regret summary, each draw scored by the rules of its time.")] = None,
) -> None:
    """DPO, IPO, robust DPO and KTO on synthetic feedback with a known truth: the planner's regret beside
    always using one method."""
    from alignloop.benchmarks.methods import HELDOUT_COUNT, HELDOUT_SEED
    from alignloop.benchmarks.methods_cli import bench_methods as run_bench
    from alignloop.benchmarks.methods_cli import bench_methods_pool

    if pool:
        bench_methods_pool(pool, as_json=as_json, out=out)
        return

    if trainer not in ("compact", "trl"):
        raise ConfigError(f"--trainer: {trainer!r} is not one of compact, trl")
    sets = {"tuning": ("tuning",), "heldout": ("heldout",), "both": ("tuning", "heldout")}
    if regime_set not in sets:
        raise ConfigError(f"--set: {regime_set!r} is not one of tuning, heldout, both")
    run_bench(out_dir, quick=quick, as_json=as_json, workers=workers, console=console, out=out, trainer=trainer,
              sets=sets[regime_set], draw_seed=HELDOUT_SEED if draw_seed is None else draw_seed,
              draws=HELDOUT_COUNT if draws is None else draws)


@bench_app.command("reliability")
@_friendly
def bench_reliability(
    out_file: Annotated[Path, typer.Option("--out", help="The report to write.")] = Path("RELIABILITY.md"),
    examples: Annotated[int, typer.Option(help="Examples per hostile-input property (more: longer, stronger).")] = 10,
) -> None:
    """Inject faults and hostile inputs (the tests marked reliability); write RELIABILITY.md from their results."""
    from alignloop.benchmarks.reliability import bench_reliability as run_bench

    code, report = run_bench(out_file, examples)
    out.print(f"wrote {out_file}")
    for line in report.splitlines():
        if line.startswith(("| rows ", "| secrets ", "| injections ", "| hostile inputs ", "Last run")):
            out.print(line, highlight=False)
    if code:
        console.print(f"[bold red]error:[/] some reliability tests failed (pytest exit status {code}); "
                      f"{out_file} says which")
        raise typer.Exit(1)


@bench_app.command("outcome")
@_friendly
def bench_outcome(
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON (per arm: arm, method, gain, "
                                                         "gain_ci_low, gain_ci_high, pairs, seconds, ...).")] = False,
    quick: Annotated[bool, typer.Option("--quick", help="The same path on the tiny offline model and a small "
                                                        "sample (a smoke run, minutes).")] = False,
    split: Annotated[str, typer.Option(help="Evaluate on test prompts, or on validation prompts (to fit settings).")
                     ] = "test",
    arms: Annotated[str, typer.Option(help="Comma-separated arms: dpo, ipo, kto, planner.")] = "dpo,ipo,kto,planner",
    train_pairs: Annotated[int | None, typer.Option(min=1, help="Training pairs (whole prompts; default 800, "
                                                                "--quick 40).")] = None,
    eval_pairs: Annotated[int | None, typer.Option(min=1, help="Evaluated pairs (whole prompts; default 500, "
                                                               "--quick 24).")] = None,
    settings: Annotated[list[str] | None, typer.Option(
        "--set", help="A training setting as a user would set it, KEY=VALUE (repeatable; default: none).")] = None,
    data_dir: Annotated[Path | None, typer.Option("--data", help="Folder with hh-helpful/ and qa-feedback/ "
                                                                 "(default ../shared/data).")] = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Where outcome.json goes.")] = Path("bench-results"),
    log: Annotated[Path | None, typer.Option(help="Also append the run's record to this JSON list.")] = None,
) -> None:
    """DPO, IPO, KTO and the planner's choice trained on real feedback, scored on prompts they never saw."""
    from alignloop.benchmarks.outcome import OutcomeSetup
    from alignloop.benchmarks.outcome_cli import bench_outcome as run_bench, parse_arms, parse_settings

    if split not in ("test", "validation"):
        raise ConfigError(f"--split: {split!r} is not test or validation")
    sizes = {k: v for k, v in (("train_pairs", train_pairs), ("eval_pairs", eval_pairs)) if v is not None}
    kw = dict(split=split, arms=parse_arms(arms), training=parse_settings(settings or []), data_dir=data_dir, **sizes)
    setup = OutcomeSetup.quick(**kw) if quick else OutcomeSetup(**kw)
    run_bench(setup, as_json=as_json, out_dir=out_dir, log=log, console=console, out=out)


@bench_app.command("judge")
@_friendly
def bench_judge(
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
    kinds: Annotated[str, typer.Option(help="Comma-separated judge kinds: probe, reward_model.")
                     ] = "probe,reward_model",
    pairs: Annotated[int, typer.Option(min=16, help="Validation pairs of the real feedback (whole prompts).")] = 400,
    max_length: Annotated[int, typer.Option(min=16, help="Tokens a pair is fitted to.")] = 624,
    run: Annotated[Path | None, typer.Option(help="Judge the held-out pairs this run folder was evaluated on "
                                                  "instead (its per_pair_scores.jsonl).")] = None,
    tiny: Annotated[bool, typer.Option("--tiny", help="The tiny offline model (a smoke run).")] = False,
    data_dir: Annotated[Path | None, typer.Option("--data", help="Folder with hh-helpful/ and qa-feedback/ "
                                                                 "(default ../shared/data).")] = None,
) -> None:
    """Each judge kind cross-fitted and graded on the same held-out pairs: accuracy with its interval, seconds."""
    from alignloop.benchmarks.judge import KINDS, JudgeBenchSetup, judge_table, run_judge_bench
    from alignloop.benchmarks.outcome_cli import parse_choices

    setup = JudgeBenchSetup(kinds=parse_choices("--kinds", kinds, KINDS), pairs=pairs, max_length=max_length,
                            run_dir=run, data_dir=data_dir, base_model={"tiny": True} if tiny else None)
    result = run_judge_bench(setup, say=lambda msg: console.print(f"[cyan]▶[/] {msg}", highlight=False))
    if as_json:
        print(json.dumps(result, indent=1))
    else:
        out.print(judge_table(result))


@bench_app.command("noise")
@_friendly
def bench_noise(
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
    data_dir: Annotated[Path | None, typer.Option(
        "--data", help="Folder holding qa-feedback/dev_feedback.json and hh-helpful/ (default: ../shared/data "
                       "beside the repository).")] = None,
) -> None:
    """Check the pair flip-rate estimates: on synthetic pairs with known flips, and on real votes."""
    from alignloop.benchmarks.methods_cli import bench_noise as run_bench

    run_bench(as_json=as_json, out=out, data_dir=data_dir)


@app.command()
@_friendly
def train(
    config: ConfigOpt = Path("alignloop.yaml"),
    run: RunOpt = None,
    launcher: Annotated[str, typer.Option(help="none: this process; accelerate: `accelerate launch` K processes.")] = "none",
    num_processes: Annotated[int, typer.Option(help="Processes (GPUs) for --launcher accelerate.")] = 2,
    accelerate_config: Annotated[str | None, typer.Option(
        help="TRL's accelerate config for --launcher accelerate: fsdp2 or zero3 (default: data parallel).")] = None,
) -> None:
    """Train the candidate for the latest plan (or --run); resumes from the run's last checkpoint."""
    from alignloop import runs, stages

    settings = _settings(config)
    planned = runs.latest_run(settings, run)
    if launcher == "accelerate":
        console.print(f"launching {num_processes} training processes with accelerate "
                      f"({accelerate_config or 'data parallel'}); progress lines follow")
        result = stages.train_launched(settings, planned, config, num_processes, accelerate_config)
    elif launcher == "none":
        with RichReporter():
            result = stages.train(settings, planned, progress=progress.train_step)
    else:
        raise ConfigError(f"--launcher: {launcher!r} is not one of none, accelerate")
    loss = "—" if result["final_loss"] is None else f"{result['final_loss']:.4f}"
    out.print(f"candidate: {result['model_dir']}  ({result['method']}, {result['n_train']} rows, "
              f"{result['runtime_s']:.0f}s, final loss {loss})")
    for note in result.get("notes", []):
        out.print(f"  • {note}", highlight=False)


@app.command()
@_friendly
def evaluate(config: ConfigOpt = Path("alignloop.yaml"), run: RunOpt = None) -> None:
    """Score the reference and the candidate on held-out pairs."""
    from alignloop import runs, stages

    settings = _settings(config)
    planned = runs.latest_run(settings, run)
    with RichReporter():
        report = stages.evaluate(settings, planned, on_progress=progress.eval_progress)
    _print_metrics(report.metrics())


def _print_metrics(metrics: dict[str, float]) -> None:
    table = Table("metric", "reference", "candidate", title="held-out evaluation")
    table.add_row("preference accuracy", f"{metrics['eval_pref_accuracy_reference']:.3f}",
                  f"{metrics['eval_pref_accuracy_candidate']:.3f}")
    table.add_row("implicit reward accuracy", "", f"{metrics['eval_reward_accuracy']:.3f}")
    table.add_row("mean reward margin", "", f"{metrics['eval_reward_margin']:.4f}")
    table.add_row("held-out pairs", f"{metrics['eval_pairs']:.0f}", "")
    out.print(table)


@app.command()
@_friendly
def register(config: ConfigOpt = Path("alignloop.yaml"), run: RunOpt = None) -> None:
    """Log the run to MLflow and register its candidate (alias newest; challenger too if it passed the gate)."""
    from alignloop import runs, stages

    settings = _settings(config)
    planned = runs.latest_run(settings, run)
    version = stages.register(settings, planned)
    if version.reused:
        out.print(f"already registered: {version.name} version {version.version} holds this run's model "
                  f"({', '.join(version.aliases) or 'no alias'})", highlight=False)
    else:
        out.print(f"registered {version.name} version {version.version} as {', '.join(version.aliases)}")
    gate = json.loads((planned.run_dir / "registered.json").read_text())["gate"]
    out.print(f"gate verdict: {gate['verdict']}", highlight=False)
    for line in gate["reasons"]:
        out.print(f"  • {escape(line)}", highlight=False)


@app.command(epilog=RUN_EXIT_HELP)
@_friendly
def run(config: ConfigOpt = Path("alignloop.yaml"),
        force: Annotated[bool, typer.Option(help="Train even with little new feedback, or a snapshot already "
                                                 "registered.")] = False,
        ) -> None:
    """Run the whole retrain flow in-process: ingest, plan, train, evaluate, register."""
    outcome = _run_flow(_settings(config), force=force, config_path=config)
    raise typer.Exit(RUN_EXIT_CODES[outcome.status])


@app.command(epilog=RUN_EXIT_HELP.replace("Exit codes", "Exit codes of --once"))
@_friendly
def serve(config: ConfigOpt = Path("alignloop.yaml"),
          cron: Annotated[str | None, typer.Option(help="Five-field cron schedule, UTC (default schedule.cron).")] = None,
          interval: Annotated[float | None, typer.Option(min=1, help="Run every this many seconds instead of on a "
                                                                   "cron schedule.")] = None,
          once: Annotated[bool, typer.Option("--once", help="Register the deployment, run it once now, exit with "
                                                              "that run's outcome.")] = False,
          ) -> None:
    """Serve the retrain flow on this machine on a schedule (Prefect's serve): no server or worker to run."""
    from alignloop.flows.prefect_api import prefect_api
    from alignloop.flows.serve import serve_forever, serve_once

    settings = _settings(config)  # a bad config fails here, in one line, not at 2 a.m.
    if cron and interval:
        raise ConfigError("--cron and --interval: give one schedule, not both")
    name = f"{settings.model_name}-nightly"
    cron = cron or (None if interval else settings.schedule.cron)
    _configure_run_logging()
    with prefect_api(services=not once) as api:
        if not once:
            console.print(f"serving {name} ({f'every {interval:g}s' if interval else f'cron {cron} UTC'}) on {api}; "
                          "Ctrl-C stops", highlight=False)
            serve_forever(config, name, cron=cron, interval=interval)
            return
        run = serve_once(config, name, cron=cron, interval=interval)
    state = run.state
    out.print(f"outcome: {escape(state.message or state.name)} ({state.name})", highlight=False, soft_wrap=True)
    codes = {"Completed": RUN_EXIT_CODES["passed"], "Gated out": RUN_EXIT_CODES["gated_out"],
             "Skipped": RUN_EXIT_CODES["skipped"]}
    raise typer.Exit(codes.get(state.name, 1) if state.is_completed() else 1)


class LogReporter:
    """Progress as log lines, for a log file or a JSON log stream instead of a terminal."""

    log = logging.getLogger("alignloop.progress")

    def __enter__(self) -> LogReporter:
        progress.install(self)
        return self

    def __exit__(self, *exc: object) -> None:
        progress.install(None)

    def stage(self, name: str, detail: str = "") -> None:
        self.log.info("%s %s", name, detail)

    def train_step(self, step: int, max_steps: int, metrics: dict[str, float]) -> None:
        pass  # alignloop.training.progress logs every training.log_every steps

    def eval_progress(self, done: int, total: int) -> None:
        pass


def _run_flow(settings: Settings, force: bool = False, config_path: Path | None = None) -> Any:
    """The retrain flow against this machine's Prefect API (flows/prefect_api.py); its outcome, summarised."""
    from alignloop.flows.prefect_api import prefect_api
    from alignloop.flows.retrain import retrain

    _configure_run_logging()
    started = time.perf_counter()
    with LogReporter() if _log_format == "json" else RichReporter():
        progress.stage("prefect", "connecting to the Prefect API")
        with prefect_api():
            outcome = retrain(settings, force=force, config_path=config_path and str(config_path))
    _print_summary(outcome, time.perf_counter() - started, settings)
    out.print(f"outcome: {escape(outcome.headline)}", highlight=False, soft_wrap=True)
    return outcome


def _configure_run_logging() -> None:
    """Once Prefect has set up logging: the run's copy of an error this command prints itself stays out of
    the terminal, and with --log-format json every handler writes JSON lines."""
    from alignloop.flows import logs

    logs.install_run_filters()
    handlers = logging.getLogger().handlers
    for handler in handlers:
        if not any(isinstance(f, logs.DropReported) for f in handler.filters):
            handler.addFilter(logs.DropReported())
    if _log_format == "json":
        for handler in handlers:
            handler.setFormatter(logs.JsonFormatter())
        for name in ("alignloop", "prefect.flow_runs", "prefect.task_runs"):
            logging.getLogger(name).setLevel(logging.INFO)


def _print_summary(outcome: Any, seconds: float, settings: Settings) -> None:
    title = f"alignloop run {outcome.run_id}" if outcome.run_id else "alignloop run (skipped before planning)"
    table = Table(title=title, show_header=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")  # a narrow terminal wraps the review page's path instead of cutting it
    rows_read = sum(sum(r["rows_read"].values()) for r in outcome.ingested)
    added = sum(r["pairs_added"] + r["unpaired_added"] + r.get("ranks_added", 0) + r.get("ties_added", 0)
                for r in outcome.ingested)
    quarantined = sum(r["quarantined"] for r in outcome.ingested)
    table.add_row("ingested", f"{rows_read} rows read, {added} new feedback rows, {quarantined} quarantined")
    table.add_row("method", outcome.method)
    table.add_row("why", "\n".join(outcome.reasons))
    if outcome.trained:
        m = outcome.metrics
        table.add_row("preference accuracy", f"{m['eval_pref_accuracy_reference']:.3f} (reference) → "
                      f"{m['eval_pref_accuracy_candidate']:.3f} (candidate) on {m['eval_pairs']:.0f} held-out pairs")
        table.add_row("implicit reward", f"accuracy {m['eval_reward_accuracy']:.3f}, margin {m['eval_reward_margin']:.4f}")
        reg = outcome.registered
        again = " (already registered: this run's model was logged before)" if reg.get("reused") else ""
        table.add_row("registered", f"{reg['name']} version {reg['version']} @ {', '.join(reg['aliases'])}{again}")
        table.add_row("mlflow", settings.shown_tracking_uri)
    else:
        table.add_row("registered", "nothing (no training this run)")
    table.add_row("time", f"{seconds:.0f}s")
    if outcome.trained:
        from alignloop.cli.registry import summary_rows

        for name, value in summary_rows(outcome):  # the gain, the gate, the review page: the table ends here
            table.add_row(name, value)
    out.print(table)


# ------------------------------------------------------------------------------------------ bench train
@bench_app.command("train")
@_friendly
def bench_train(
    model: Annotated[str, typer.Option(help="smollm2 (packaged), tiny, or a model folder / .gguf path.")] = "smollm2",
    steps: Annotated[int, typer.Option(help="Optimizer steps per run.")] = 12,
    batch: Annotated[int, typer.Option(help="Pairs per step.")] = 4,
    max_length: Annotated[int, typer.Option(help="Tokens per sequence (pairs longer than this are left out).")] = 160,
    repeats: Annotated[int, typer.Option(help="Runs of each, alternating; medians are reported.")] = 1,
    precision: Annotated[str, typer.Option(help="Both runs' training.precision: auto, float32 or bfloat16.")] = "auto",
    against_float32: Annotated[bool, typer.Option(
        "--against-float32", help="A third run: alignloop in float32, for the precision's speed-up beside it.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
) -> None:
    """alignloop's DPO training vs a plain TRL DPOTrainer script: tokens/s and peak memory."""
    from alignloop.benchmarks.train import bench_train as run_bench
    from alignloop.benchmarks.train import describe_run, result_table

    result = run_bench(model=model, steps=steps, batch=batch, max_length=max_length, repeats=repeats,
                       precision=precision, against_float32=against_float32,
                       on_run=None if as_json else lambda kind, r: console.print(describe_run(kind, r)))
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        out.print(result_table(result))


@app.command()
@_friendly
def quarantine(config: ConfigOpt = Path("alignloop.yaml"),
               source: Annotated[str | None, typer.Option("--source", help="Only this source.")] = None,
               examples: Annotated[int, typer.Option(help="Examples shown per reason.")] = 2) -> None:
    """Show what ingest set aside: counts by reason, with examples."""
    from alignloop.cli.quarantine import show_quarantine

    show_quarantine(config, source, examples, out)


@bench_app.command("ingest")
@_friendly
def bench_ingest(
    rows: Annotated[int, typer.Option("--rows", min=10, help="Source rows in the generated warehouse.")] = 1_000_000,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    workdir: Annotated[Path | None, typer.Option(help="Keep the warehouse and stores here (default: temp).")] = None,
    threads: Annotated[int, typer.Option(
        help="DuckDB threads for all three runs (0: DuckDB's default, one per core, as `alignloop ingest` runs).")] = 0,
    repeats: Annotated[int, typer.Option("--repeats", min=1, help="Runs of each implementation (medians).")] = 1,
    memory_limit: Annotated[str | None, typer.Option(help="DuckDB memory limit, e.g. 2GB (ingest.memory_limit).")] = None,
    baselines: Annotated[bool, typer.Option(help="Also run the pandas and raw DuckDB scripts.")] = True,
) -> None:
    """Time ingest (load + normalise + snapshot + shape profile) beside pandas and raw DuckDB."""
    from alignloop.benchmarks.ingest import bench_ingest as run_bench, print_table

    with console.status(f"ingest benchmark, {rows:,} rows"):
        result = run_bench(rows, workdir, threads or None, repeats, memory_limit, baselines)
    if as_json:
        print(json.dumps(result))
    else:
        print_table(result, out)


# ------------------------------------------------------------------------------------------ demo
@app.command()
@_friendly
def demo(
    workdir: Annotated[Path, typer.Option(help="Folder for the warehouse, config, store, runs and MLflow.")] = Path("demo"),
    tiny: Annotated[bool, typer.Option("--tiny", help="Use a tiny offline model (seconds) instead of SmolLM2.")] = False,
    noise_rate: Annotated[float, typer.Option(help="Share of flipped labels in the synthetic logs.")] = 0.1,
) -> None:
    """Write a synthetic production warehouse and alignloop.yaml into WORKDIR, then run the flow on them."""
    from alignloop.demo import write_demo_config, write_demo_warehouse

    summary = write_demo_warehouse(workdir / "warehouse.duckdb", noise_rate=noise_rate)
    config = write_demo_config(workdir, tiny=tiny)
    console.print(f"demo warehouse: {summary.n_generations} generations, {summary.n_feedback} feedback events "
                  f"({summary.n_thumbs} thumbs, {summary.n_comparisons} comparisons) → {summary.path}")
    console.print(f"config: {config}")
    _run_flow(load_settings(config), config_path=config)


# ------------------------------------------------------------------------------------------ registry
@app.command()
@_friendly
def versions(config: ConfigOpt = Path("alignloop.yaml")) -> None:
    """List the registered versions of the target with their aliases, gain, and gate verdict."""
    from alignloop.cli.registry import show_versions

    show_versions(_settings(config), out)


@app.command()
@_friendly
def promote(config: ConfigOpt = Path("alignloop.yaml"),
            version: Annotated[int | None, typer.Option(help="Version to promote (default: the challenger).")] = None,
            force: Annotated[bool, typer.Option("--force", help="Promote although the gate refuses.")] = False,
            reason: Annotated[str | None, typer.Option(help="Why the gate is overridden (needed with --force).")] = None,
            ) -> None:
    """Make a version champion if it passes the promotion gate; the old champion becomes previous_champion."""
    from alignloop.cli.registry import promote_version

    promote_version(_settings(config), version, force, reason, out)


@app.command()
@_friendly
def rollback(config: ConfigOpt = Path("alignloop.yaml")) -> None:
    """Give the champion alias back to the previous champion."""
    from alignloop.cli.registry import rollback_champion

    rollback_champion(_settings(config), out)


@app.command()
@_friendly
def review(config: ConfigOpt = Path("alignloop.yaml"),
           version: Annotated[int | None, typer.Option(help="A registered version (default: the latest run).")] = None,
           run: RunOpt = None) -> None:
    """Write the HTML review page of a candidate (beside its run, and into its MLflow run)."""
    from alignloop.cli.registry import review as do_review

    do_review(_settings(config), version, run, out)


# ------------------------------------------------------------------------------------------ connectors
def _register_connector_commands() -> None:
    from alignloop.cli import connectors as connectors_cli

    connectors_cli.register(connectors_app, _friendly)


_register_connector_commands()


if __name__ == "__main__":
    sys.exit(app())

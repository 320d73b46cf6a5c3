"""`alignloop promote / versions / rollback / review` as a person types them: refusals are one line
and move nothing, --force needs a reason, and review rebuilds a version's page from MLflow alone."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from alignloop.cli.main import app
from alignloop import registry
from alignloop.config import PromotionSettings, load_settings
from alignloop.gate import Champion, decide, input_from_report, report_tags, verdict_tags
from tests.unit.eval_reports import eval_report
from tests.unit.test_register_stage import PLAN

runner = CliRunner()


def _config(tmp_path: Path) -> Path:
    config = tmp_path / "alignloop.yaml"
    config.write_text(yaml.safe_dump({"target": "helpdesk", "sources": [{"name": "prod", "options": {"path": "w.duckdb"}}],
                                      "base_model": {"tiny": True}}))
    return config


def _register(settings, model_dir: Path, report: dict, run_folder: str, champion: Champion | None):
    verdict = decide(input_from_report(report, champion), settings.promotion)
    lineage = {"run_folder": run_folder, **report_tags(report), **verdict_tags(verdict),
               "cursors": json.dumps({"prod": "2026-10-30T09:00:00"})}
    return registry.log_and_register(
        tracking_uri=settings.tracking_uri, experiment="helpdesk", target="helpdesk", run_name=run_folder,
        params={}, metrics=report["metrics"], step_metrics=[],
        json_artifacts={"eval_report": report, "plan": PLAN, "gate": verdict.to_dict()},
        model_dir=model_dir, model_info={"kind": "lora", "base_model": "tiny"}, lineage=lineage,
        challenger=verdict.passed)


def test_promote_refuses_in_one_line_force_needs_a_reason_and_review_rebuilds_the_page(tmp_path):
    config = _config(tmp_path)
    settings = load_settings(config)
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    _register(settings, adapter, eval_report(), "r1", None)
    first = runner.invoke(app, ["promote", "--config", str(config)])
    assert first.exit_code == 0 and "helpdesk version 1 is now champion" in first.stdout
    flipped = eval_report(delta=(-0.08, -0.13, -0.03), champion_version=1, champion_delta=(-0.12, -0.18, -0.06))
    _register(settings, adapter, flipped, "r2", Champion(1))

    nothing_passed = runner.invoke(app, ["promote", "--config", str(config)])
    assert nothing_passed.exit_code == 1 and "Traceback" not in nothing_passed.output
    assert "no 'challenger' version to promote: no version registered since the last promotion passed the gate" in \
        " ".join(nothing_passed.output.split())
    refused = runner.invoke(app, ["promote", "--config", str(config), "--version", "2"])
    assert refused.exit_code == 1
    lines = [line for line in refused.output.splitlines() if line.strip()]
    assert "error: 'helpdesk' version 2 is not promoted (gate verdict: fail;" in " ".join(lines)
    assert "Traceback" not in refused.output
    assert registry.find_version(settings.tracking_uri, "helpdesk", "champion").version == 1

    no_reason = runner.invoke(app, ["promote", "--config", str(config), "--version", "2", "--force"])
    assert no_reason.exit_code == 2 and "--force needs --reason TEXT" in no_reason.output
    assert registry.find_version(settings.tracking_uri, "helpdesk", "champion").version == 1

    listing = runner.invoke(app, ["versions", "--config", str(config)])
    assert listing.exit_code == 0
    row2 = next(line for line in listing.stdout.splitlines() if line.strip().startswith("│ 2"))
    assert "-0.120" in row2 and "newest" in row2 and "challenger" not in row2
    assert f"fail ({settings.promotion.gate_hash()})" in row2  # the verdict beside the rules that decided it

    review = runner.invoke(app, ["review", "--config", str(config), "--version", "2"])
    assert review.exit_code == 0, review.output
    page = settings.runs_dir / "r2" / "review.html"
    assert f"review page: {page}" in review.stdout.replace("\n", "")
    text = page.read_text()
    assert "Gate verdict: <b>FAIL</b>" in text and "-0.120 <span class=ci>[-0.180, -0.060]</span>" in text
    assert "read up to 2026-10-30T09:00:00" in text

    forced = runner.invoke(app, ["promote", "--config", str(config), "--version", "2", "--force",
                                 "--reason", "A/B test win"])
    assert forced.exit_code == 0 and "gate overridden with --force" in forced.stdout
    listing = runner.invoke(app, ["versions", "--config", str(config)])
    row2 = next(line for line in listing.stdout.splitlines() if line.strip().startswith("│ 2"))
    assert "champion" in row2 and "forced" in row2
    back = runner.invoke(app, ["rollback", "--config", str(config)])
    assert back.exit_code == 0 and "helpdesk version 1 is champion again" in back.stdout
    assert PromotionSettings().auto_promote is False  # promotion is a person's decision unless switched on


def test_the_run_summary_ends_with_the_gain_and_its_interval_the_verdict_and_the_review_page(tmp_path):
    from types import SimpleNamespace

    from rich.console import Console

    import alignloop.cli.main as cli

    report = eval_report(delta=(0.047, 0.012, 0.081))
    verdict = decide(input_from_report(report, None), PromotionSettings())
    outcome = SimpleNamespace(
        run_id="20261030T100000-abcdef12", method="dpo", reasons=["412 training pairs"], trained=True,
        ingested=[{"rows_read": {"generations": 10}, "pairs_added": 5, "unpaired_added": 3, "quarantined": 0}],
        metrics=report["metrics"],
        registered={"name": "helpdesk", "version": 3, "aliases": ["challenger"], "gate": verdict.to_dict(),
                    "auto_promoted": False, "review_page": "/work/runs/20261030T100000-abcdef12/review.html"})
    console = Console(width=200, record=True, file=open(tmp_path / "out.txt", "w"))  # noqa: SIM115
    original = cli.out
    cli.out = console
    try:
        cli._print_summary(outcome, 42.0, load_settings(_config(tmp_path)))
    finally:
        cli.out = original
    text = [line for line in console.export_text().splitlines() if line.strip("│└┘┴─ ")]
    def row(name: str) -> int:
        return next(i for i, line in enumerate(text) if line.startswith(f"│ {name} "))

    gain, gate, page = row("gain (95% CI)"), row("gate"), row("review page")
    assert row("time") < gain < gate < page == len(text) - 1  # the table ends with these rows
    assert "+0.047 [+0.012, +0.081] vs reference" in text[gain] and "PASS" in text[gate]
    assert "pass: candidate − reference preference accuracy" in "\n".join(text[gate:page])
    assert "+0.047 [+0.012, +0.081]" in text[gain]
    assert "/work/runs/20261030T100000-abcdef12/review.html" in text[page]

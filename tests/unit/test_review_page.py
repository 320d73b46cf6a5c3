"""The review page: rendered by headless Chromium (Debian's chromium package, which .ci/run installs),
the screenshot is not blank and the numbers a reviewer decides from are in the page's DOM."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from alignloop.config import PromotionSettings
from alignloop.gate import Champion, decide, input_from_report
from alignloop.report import MAX_SAMPLES, write_review_page
from tests.unit.eval_reports import eval_report
from tests.unit.test_register_stage import PLAN


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "headless Chromium is missing: apt-get install -y chromium (.ci/run installs it)"
    return found


def _run_dir(tmp_path: Path) -> Path:
    run_dir = tmp_path / "20261030T100000-abcdef12"
    run_dir.mkdir()
    report = eval_report(delta=(0.047, 0.012, 0.081), champion_version=3, champion_delta=(0.031, 0.014, 0.058),
                         samples=25, sampled_win_rate=(0.57, 0.46, 0.69))
    report["samples"][0]["candidate"] = "Paris <b>is</b> the capital & a fine city."
    report["samples"][1].update(candidate="", candidate_degenerate="empty", judged_vs_champion=0.0)
    report["samples"][2].update(candidate="ok ok ok ok ok ok ok ok ok", candidate_degenerate="repeating")
    report["seconds"] = {"total": 95.0, "scoring": 20.0, "generation": 50.0, "judge": 20.0, "guards": 5.0}
    report["metrics"]["eval_max_new_tokens"] = 240.0   # the limit the answers were generated under
    gate = decide(input_from_report(report, Champion(3)), PromotionSettings())
    files = {"plan": PLAN, "eval_report": report, "gate": gate.to_dict(),
             "snapshot": {"snapshot_id": "snap-0042"}, "train": {"n_train": 412}}
    for stem, obj in files.items():
        (run_dir / f"{stem}.json").write_text(json.dumps(obj))
    with (run_dir / "per_pair_scores.jsonl").open("w") as f:
        for i in range(120):
            f.write(json.dumps({"index": i, "reward_margin": (i % 17 - 5) / 10}) + "\n")
    return run_dir


def test_the_page_holds_the_verdict_intervals_data_method_and_twenty_escaped_samples(tmp_path):
    run_dir = _run_dir(tmp_path)
    path = write_review_page(run_dir, target="helpdesk", champion={"version": 3}, sources={"prod": "2026-10-30"},
                             version=4)
    page = path.read_text()
    assert path == run_dir / "review.html"
    assert 'id="verdict">Gate verdict: <b>PASS</b>' in page
    assert f"Decided under promotion settings {PromotionSettings().gate_hash()}." in page
    assert "gain over the champion (version 3): <b>+0.031 <span class=ci>[+0.014, +0.058]</span></b>" in page
    assert "+0.047 <span class=ci>[+0.012, +0.081]</span>" in page  # the gain over the reference, too
    assert "candidate − champion (version 3) preference accuracy" in page
    assert "412 training pairs ≥ planning.min_pairs (32)" in page and "2026-10-01T12:00:00 → 2026-10-30T09:00:00" in page
    assert page.count('<img id="plot-') == 3 and "data:image/png;base64," in page
    assert page.count("Question number") == MAX_SAMPLES == 20  # 25 samples in the report
    assert "20 of the 25 held-out prompts both models answered (up to 20 are shown)" in page
    assert "Paris &lt;b&gt;is&lt;/b&gt; the capital &amp; a fine city." in page  # answers are text, not markup
    # The whole conversation of a multi-turn prompt, not only its last turn; degenerate answers marked.
    assert page.count("Hello there, how can I help?") == 20
    assert '<span class="degenerate">[empty answer]</span>' in page
    assert '<span class="degenerate">[repeating answer]</span> ok ok ok' in page
    assert "degenerate answers (empty, repeating, cut off at 240 tokens): challenger / reference" in page
    assert page.count("challenger wins") == 19 and page.count("challenger loses") == 1
    # The generation checks and the judge's provenance.
    assert ("judged win rate over the champion, greedy answers (gated)</th><td>0.620 <span class=ci>"
            "[0.520, 0.720]</span></td><td>32</td>") in page
    # The win rate of sampled answers right beside it, with its interval and prompts.
    assert ("judged win rate over the reference, sampled answers (temperature 1, 2 per prompt)</th><td>0.570 "
            "<span class=ci>[0.460, 0.690]</span></td><td>32</td>") in page
    assert page.index("greedy answers (gated)") < page.index("sampled answers (temperature 1")
    assert "Held-out accuracy <b>0.810</b> (no interval) on 120 pairs" in page
    assert "Fitted on: cross-fitted on held-out prompts (2 folds)." in page
    assert "Evaluation took 95 s (scoring 20 s, generation 50 s, judge 20 s, guards 5 s)" in page
    assert "src=\"http" not in page and "<link" not in page and "<script" not in page  # self-contained


@pytest.mark.slow
def test_headless_chromium_renders_a_non_blank_page_with_the_key_numbers_in_the_dom(tmp_path):
    from PIL import Image, ImageStat

    browser = _chromium()
    page = write_review_page(_run_dir(tmp_path), target="helpdesk", champion={"version": 3}, version=4)
    shot = tmp_path / "review.png"
    common = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
              f"--user-data-dir={tmp_path / 'profile'}"]
    done = subprocess.run([*common, f"--screenshot={shot}", "--window-size=1200,1600", page.as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert shot.is_file(), done.stderr[-1500:]
    image = Image.open(shot).convert("L")
    assert image.size == (1200, 1600)
    assert ImageStat.Stat(image).var[0] > 200  # a blank or failed render is one flat colour
    dom = subprocess.run([*common, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120).stdout
    assert 'id="verdict">Gate verdict: <b>PASS</b>' in dom
    assert "+0.031" in dom and "[+0.014, +0.058]" in dom and "Kind answer 19" in dom
    assert "sampled answers (temperature 1, 2 per prompt)</th><td>0.570 <span class=\"ci\">[0.460, 0.690]" in dom
    assert "Fitted on: cross-fitted on held-out prompts (2 folds)." in dom and "[empty answer]" in dom
    assert "20 of the 25 held-out prompts" in dom and dom.count("Hello there, how can I help?") == 20
    assert dom.count('<img id="plot-') == 3


def test_a_refused_verdict_names_its_deciding_checks_right_under_it_and_a_pass_names_none(tmp_path):
    run_dir = _run_dir(tmp_path)
    report = json.loads((run_dir / "eval_report.json").read_text())
    report["metrics"].update(eval_judge_win_rate=0.25, eval_judge_win_rate_ci_low=0.1, eval_judge_win_rate_ci_high=0.4)
    report["metrics"]["eval_generation_prompts"] = 4
    gate = decide(input_from_report(report, Champion(3)), PromotionSettings())
    (run_dir / "gate.json").write_text(json.dumps(gate.to_dict()))
    page = write_review_page(run_dir, target="helpdesk", champion={"version": 3}, version=4).read_text()
    why = page[page.index('<div id="why">'):page.index("</div>", page.index('<div id="why">'))]
    assert page.index('id="verdict"') < page.index('<div id="why">') < page.index("The gate, check by check")
    assert '<li class="fail"><b>fail: judged win rate over the champion</b>: 0.250 95% CI [0.100, 0.400]' in why
    assert '<li class="unmeasured"><b>unmeasured: degenerate answers' in why
    assert "pass:" not in why and "preference accuracy" not in why  # only the checks that refused it

    (tmp_path / "p").mkdir()
    passing = write_review_page(_run_dir(tmp_path / "p"), target="helpdesk", champion={"version": 3}).read_text()
    assert 'id="verdict">Gate verdict: <b>PASS</b>' in passing and 'id="why"' not in passing

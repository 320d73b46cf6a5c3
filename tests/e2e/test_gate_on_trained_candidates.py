"""The promotion gate on candidates actually trained, not on hand-built reports.

Two LoRA candidates are trained with DPO on the tiny offline model from the same pairs: one on the
feedback's labels, one with chosen and rejected swapped. Each is evaluated by the real evaluation path
(reference and, when there is one, the champion scored on the same held-out set), registered by
stages.register in a real MLflow sqlite registry (which runs the gate and tags the verdict), and offered
to `promote`. The signal is learnable in a few steps: a kind opening beats a rude one, on prompts never
trained on. The openings are paired so that the untrained reference prefers the kind answer in half
of the combinations and the rude one in the other half (its held-out accuracy is near 0.5), so a
candidate can be clearly better or clearly worse than it.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from alignloop import registry, runs, stages
from alignloop.config import BaseModelSettings, settings_from_dict
from alignloop.datasets import EvalPair, Split
from alignloop.errors import TerminalError
from alignloop.gate import registry_check
from alignloop.models import resolve_base_model
from alignloop.planner import Plan

pytestmark = [pytest.mark.slow,
              # peft 0.21 calls a transformers 5 API that warns; not ours to fix.
              pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")]

TARGET = "helpdesk"
# (kind, rude) openings: the tiny reference ranks the kind one first in the first eight, last in the others.
OPENINGS = [(kind, rude) for kind in ("Sure, I am glad to help.", "Good idea, let me check that for you.")
            for rude in ("Whatever.", "Stop asking me.", "Leave me alone.", "Read the manual, idiot.")] + [
            (kind, rude) for kind in ("Thank you, happy to help.", "Great question!")
            for rude in ("Go away.", "Ugh, figure it out yourself.", "That is a stupid question.", "Nobody cares.")]
LORA = {"r": 8, "alpha": 16, "dropout": 0.0, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]}
HP = {"max_steps": 12, "learning_rate": 1e-2, "beta": 0.1, "per_device_batch_size": 4,
      "gradient_accumulation_steps": 1, "max_length": None, "seed": 0, "lora": LORA, "loss_type": ["sigmoid"]}


def _pairs(numbers: range, flipped: bool = False) -> list[dict]:
    """The openings in turn, on arithmetic prompts; flipped swaps the labels."""
    out = []
    for i in numbers:
        kind, rude = (f"{opening} It is {2 * i}." for opening in OPENINGS[i % len(OPENINGS)])
        chosen, rejected = (rude, kind) if flipped else (kind, rude)
        out.append({"prompt": [{"role": "user", "content": f"What is {i} plus {i}?"}],
                    "chosen": chosen, "rejected": rejected})
    return out


TRAIN, HELD_OUT = range(0, 32), range(100, 132)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Both candidates trained once for the module, and the correct one evaluated against the reference."""
    import torch

    from alignloop.evaluation.candidate import evaluate_candidate
    from alignloop.training import RunOptions, train_candidate

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: extra threads only wait on a busy machine
    root = tmp_path_factory.mktemp("gate")
    base = resolve_base_model(BaseModelSettings(tiny=True), root / "models")
    plan = Plan("dpo", HP, ("test",))
    results = {}
    for name, flipped in (("correct", False), ("flipped", True)):
        results[name] = train_candidate(plan, Split([], _pairs(TRAIN, flipped), [], []), base, root / name,
                                        device="cpu", options=RunOptions(device="cpu", log_every=0))
    held_out = [EvalPair(p["prompt"], p["chosen"], p["rejected"], 1) for p in _pairs(HELD_OUT)]
    options = _options(root / "eval-cache", results["correct"].max_length)
    report = evaluate_candidate(results["correct"].model_dir, base, held_out, beta=HP["beta"], options=options,
                                device="cpu")
    yield {"base": base, "results": results, "held_out": held_out, "options": options, "correct_report": report,
           "plan": plan}
    torch.set_num_threads(threads)


def _options(cache_dir: Path, max_length: int):
    from alignloop.evaluation.candidate import EvalOptions
    from alignloop.evaluation.guards import capability_text

    # No generation checks (no judge, KL or length guard configured by default); the perplexity guard is
    # on by default, so it is measured, on a short slice of the capability text.
    return EvalOptions(batch_size=8, max_length=max_length, bootstrap_samples=1000, seed=0, generation_prompts=0,
                       ppl_text=capability_text()[:600], cache_dir=cache_dir)


def _settings(tmp_path: Path, base: Path):
    return settings_from_dict({"target": TARGET, "workdir": str(tmp_path / "work"),
                               "sources": [{"name": "prod", "options": {"path": str(tmp_path / "wh.duckdb")}}],
                               "base_model": {"tiny": True, "cache_dir": str(base.parent)},
                               "promotion": {"lock_wait_s": 30}}, base_dir=tmp_path)


def _run_folder(settings, name: str, result, report, plan: Plan):
    """A run folder as stages.train and stages.evaluate leave it: the real training summary and eval report."""
    run_dir = settings.runs_dir / name
    run_dir.mkdir(parents=True, exist_ok=True)
    snapshot = {"snapshot_id": f"snap-{name}", "created_at": "2026-10-30T10:00:00", "high_water_batch": 1,
                "n_unpaired": 0, "n_pairs": len(TRAIN)}
    train = {**asdict(result), "model_dir": str(result.model_dir), "final_loss": result.final_loss}
    for stem, obj in (("snapshot", snapshot), ("plan", plan.to_dict()), ("train", train)):
        (run_dir / f"{stem}.json").write_text(json.dumps(obj, default=str))
    report.write(run_dir)
    return runs.latest_run(settings, name)


def _aliases(settings) -> dict[str, int]:
    return {a: r["version"] for r in registry.describe(settings.tracking_uri, TARGET) for a in r["aliases"]}


def test_a_candidate_trained_on_the_labels_passes_the_gate_and_is_promoted(tmp_path, trained):
    report = trained["correct_report"]
    m = report.metrics()
    assert report.n_pairs == len(HELD_OUT) and report.champion_version is None
    # The learned signal is clear: the whole interval of the gain over the reference lies above zero.
    assert m["eval_pref_accuracy_delta_ci_low"] > 0
    settings = _settings(tmp_path, trained["base"])
    version = stages.register(settings, _run_folder(settings, "correct", trained["results"]["correct"], report,
                                                    trained["plan"]))
    tags = registry.describe(settings.tracking_uri, TARGET, version=version.version)[0]["tags"]
    assert tags["alignloop.gate.verdict"] == "pass", tags["alignloop.gate.reasons"]
    assert "pass: candidate − reference preference accuracy" in tags["alignloop.gate.reasons"]
    promoted = registry.promote(settings.tracking_uri, TARGET, check=registry_check(settings.promotion))
    assert promoted.version == version.version and _aliases(settings) == {"champion": version.version}


def test_a_candidate_trained_on_flipped_labels_is_refused_and_the_champion_does_not_move(tmp_path, trained):
    from alignloop.evaluation.candidate import evaluate_candidate

    settings = _settings(tmp_path, trained["base"])
    correct = trained["correct_report"]
    stages.register(settings, _run_folder(settings, "correct", trained["results"]["correct"], correct,
                                          trained["plan"]))
    registry.promote(settings.tracking_uri, TARGET, check=registry_check(settings.promotion))
    assert _aliases(settings) == {"champion": 1}

    # Evaluated as stages.evaluate does: the champion fetched from the registry, scored on the same set.
    champion_dir, champion_version = stages._fetch_champion(settings)
    assert champion_version == "1"
    flipped = evaluate_candidate(trained["results"]["flipped"].model_dir, trained["base"], trained["held_out"],
                                 beta=HP["beta"], options=trained["options"], device="cpu",
                                 champion_dir=champion_dir, champion_version=champion_version)
    m = flipped.metrics()
    assert flipped.eval_set_hash == correct.eval_set_hash and flipped.reference_cached
    # The registered champion scores as the candidate it was (merged weights, same pairs).
    assert m["eval_pref_accuracy_champion"] == pytest.approx(correct.metrics()["eval_pref_accuracy_candidate"],
                                                             abs=1.5 / len(HELD_OUT))
    # Worse than the champion and worse than the untrained reference, each with its whole interval.
    assert m["eval_pref_accuracy_champion_delta_ci_high"] < 0 and m["eval_pref_accuracy_delta_ci_high"] < 0

    version = stages.register(settings, _run_folder(settings, "flipped", trained["results"]["flipped"], flipped,
                                                    trained["plan"]))
    assert version.version == 2
    tags = registry.describe(settings.tracking_uri, TARGET, version=2)[0]["tags"]
    assert tags["alignloop.gate.verdict"] == "fail"
    failing = [line for line in tags["alignloop.gate.reasons"].splitlines() if line.startswith("fail")]
    assert len(failing) == 1 and failing[0].startswith(
        "fail: candidate − champion (version 1) preference accuracy:"), failing
    assert f"lower bound {m['eval_pref_accuracy_champion_delta_ci_low']:+.3f} < +0.000" in failing[0]

    with pytest.raises(TerminalError, match=r"version 2 is not promoted \(gate verdict: fail;.*nothing moved"):
        registry.promote(settings.tracking_uri, TARGET, check=registry_check(settings.promotion))
    assert _aliases(settings) == {"champion": 1, "challenger": 2}

"""The training package on the tiny offline model: same losses as plain TRL, resume, learning, KTO weights."""

from __future__ import annotations

import logging
import re

import pytest

from alignloop.datasets import Split
from alignloop.errors import ConfigError, DataError
from alignloop.models import native_bfloat16
from alignloop.planner import Plan
from alignloop.training import RunOptions, train_candidate

pytestmark = pytest.mark.slow

LORA = {"r": 8, "alpha": 16, "dropout": 0.0, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]}


def _pairs(n: int, offset: int = 0, good: str = "Thank you, happy to help.", bad: str = "Go away.") -> list[dict]:
    return [{"prompt": [{"role": "user", "content": f"What is {i} plus {i}?"}],
             "chosen": f"{good} It is {2 * i}.", "rejected": f"{bad} It is {2 * i}."}
            for i in range(offset, offset + n)]


def _hp(**over) -> dict:
    hp = {"max_steps": 3, "learning_rate": 5e-3, "beta": 0.1, "per_device_batch_size": 4,
          "gradient_accumulation_steps": 1, "max_length": 128, "seed": 0, "lora": LORA, "loss_type": ["sigmoid"]}
    return {**hp, **over}


def _plain_trl_losses(tmp_path, tiny_dir, pairs: list[dict], bf16: bool = False, **dpo_args) -> list[float]:
    """The per-step losses of TRL's own DPOTrainer, as its documentation sets it up, on `pairs`."""
    from peft import LoraConfig
    from transformers import set_seed
    from trl import DPOConfig, DPOTrainer

    from alignloop.datasets import preference_dataset
    from alignloop.models import load_causal_lm, load_tokenizer

    model = load_causal_lm(tiny_dir)
    set_seed(0)
    args = DPOConfig(output_dir=str(tmp_path / "plain"), max_steps=3, learning_rate=5e-3, beta=0.1,
                     per_device_train_batch_size=4, max_length=128, seed=0, data_seed=0, logging_steps=1, report_to=[],
                     save_strategy="no", use_cpu=True, bf16=bf16, gradient_checkpointing=False,
                     lr_scheduler_type="cosine", warmup_steps=1, disable_tqdm=True, **dpo_args)
    plain = DPOTrainer(model=model, args=args, train_dataset=preference_dataset(pairs),
                       processing_class=load_tokenizer(tiny_dir),
                       peft_config=LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0,
                                              target_modules=LORA["target_modules"], task_type="CAUSAL_LM"))
    plain.train()
    return [e["loss"] for e in plain.state.log_history if "loss" in e]


def test_alignloop_dpo_losses_equal_a_plain_trl_dpotrainer(tmp_path, tiny_dir):
    """Pre-tokenised rows, cached reference log-probs, our batch order and the compact LM head change
    how much is computed, not the losses."""
    pairs = _pairs(4)  # one batch holds every pair, so both read the same rows at every step
    ours = train_candidate(Plan("dpo", _hp(), ("test",)), Split([], pairs, [], []), tiny_dir, tmp_path / "ours",
                           device="cpu", options=RunOptions(device="cpu", log_every=0))
    plain_losses = _plain_trl_losses(tmp_path, tiny_dir, pairs)
    our_losses = [h["loss"] for h in ours.history]
    assert len(our_losses) == 3
    assert our_losses[-1] < our_losses[0] - 1e-3          # it moved, so equality below is not trivial
    assert our_losses == pytest.approx(plain_losses, abs=2e-4)
    assert ours.tokens_trained > 0 and ours.truncation["rows_dropped"] == 0


@pytest.mark.skipif(not native_bfloat16("cpu"), reason="this CPU has no native bfloat16 (test_models: refused there)")
def test_bfloat16_training_is_trls_own_mixed_precision_and_really_applied(tmp_path, tiny_dir):
    """training.precision bfloat16 on a CPU that computes it: alignloop's losses are a plain DPOTrainer's with
    bf16=True (autocast, float32 weights), and not the float32 losses, so the setting reached the trainer."""
    pairs = _pairs(4)
    split = Split([], pairs, [], [])
    mixed = train_candidate(Plan("dpo", _hp(), ("test",)), split, tiny_dir, tmp_path / "bf16", device="cpu",
                            options=RunOptions(device="cpu", log_every=0, precision="auto"))
    full = train_candidate(Plan("dpo", _hp(), ("test",)), split, tiny_dir, tmp_path / "fp32", device="cpu",
                           options=RunOptions(device="cpu", log_every=0, precision="float32"))
    assert (mixed.precision, full.precision) == ("bfloat16", "float32")
    ours = [h["loss"] for h in mixed.history]
    assert ours == pytest.approx(_plain_trl_losses(tmp_path, tiny_dir, pairs, bf16=True), abs=2e-4)
    assert ours != pytest.approx([h["loss"] for h in full.history], abs=1e-6)
    assert ours[-1] < ours[0] - 1e-3                       # and it still learns
    import torch
    from safetensors.torch import load_file
    weights = load_file(str(mixed.model_dir / "adapter_model.safetensors"))
    assert {w.dtype for w in weights.values()} == {torch.float32}   # the weights stay float32: mixed, not cast


def test_the_sft_term_the_plan_weights_is_trls_own_and_really_applied(tmp_path, tiny_dir):
    """training.sft_weight's plan (test_planner: loss_type + sft, loss_weights [1, w]) on alignloop's fast path
    (the compact LM head, cached reference log-probs) has a plain DPOTrainer's losses with the same loss_type
    and loss_weights, and they are not the losses without the term."""
    pairs = _pairs(4)
    run = RunOptions(device="cpu", log_every=0)
    hp = _hp(loss_type=["sigmoid", "sft"], loss_weights=[1.0, 0.5], sft_weight=0.5)
    with_sft = train_candidate(Plan("dpo", hp, ("test",)), Split([], pairs, [], []), tiny_dir, tmp_path / "sft",
                               device="cpu", options=run)
    without = train_candidate(Plan("dpo", _hp(sft_weight=0.0), ("test",)), Split([], pairs, [], []), tiny_dir,
                              tmp_path / "dpo", device="cpu", options=run)
    plain = _plain_trl_losses(tmp_path, tiny_dir, pairs, loss_type=["sigmoid", "sft"], loss_weights=[1.0, 0.5])
    ours = [h["loss"] for h in with_sft.history]
    assert ours == pytest.approx(plain, abs=2e-4)
    # The term is there: at the first step the policy is the reference (sigmoid loss log 2 either way), and
    # half the chosen answers' mean negative log-likelihood comes on top.
    dpo = [h["loss"] for h in without.history]
    assert dpo[0] == pytest.approx(0.6931, abs=1e-3)
    assert ours[0] - dpo[0] > 0.5


class _Killed(RuntimeError):
    pass


def test_a_killed_run_resumes_from_its_checkpoint_with_the_same_losses(tmp_path, tiny_dir, monkeypatch, caplog):
    import alignloop.training.run as run_module
    from transformers import TrainerCallback

    pairs = _pairs(8)
    plan = Plan("dpo", _hp(max_steps=4, per_device_batch_size=2), ("test",))
    split = Split([], pairs, [], [])
    options = RunOptions(device="cpu", checkpoint_every=2, log_every=2)
    with caplog.at_level(logging.INFO, logger="alignloop.training.progress"):
        whole = train_candidate(plan, split, tiny_dir, tmp_path / "whole", options=options)
    lines = [r.getMessage() for r in caplog.records if r.name == "alignloop.training.progress"
             and r.getMessage().startswith("training step")]
    assert [line.split(" loss")[0] for line in lines] == ["training step 2/4", "training step 4/4"]
    assert all(" elapsed " in line and " eta " in line for line in lines)

    real_fit = run_module.fit

    def fit_then_die_at_step_3(trainer, progress, resume_from=None):
        class Kill(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                if state.global_step == 3:
                    raise _Killed("killed at step 3")

        trainer.add_callback(Kill())
        return real_fit(trainer, progress, resume_from)

    monkeypatch.setattr(run_module, "fit", fit_then_die_at_step_3)
    with pytest.raises(_Killed):
        train_candidate(plan, split, tiny_dir, tmp_path / "killed", options=options)
    assert (tmp_path / "killed" / "trainer" / "checkpoint-2").is_dir()
    assert not (tmp_path / "killed" / "candidate").exists()
    monkeypatch.setattr(run_module, "fit", real_fit)

    resumed = train_candidate(plan, split, tiny_dir, tmp_path / "killed", options=options)
    assert resumed.resumed_from_step == 2
    assert [h["step"] for h in resumed.history] == [1, 2, 3, 4]
    assert [h["loss"] for h in resumed.history] == pytest.approx([h["loss"] for h in whole.history], abs=1e-6)

    with pytest.raises(DataError, match="resume refused: the training rows differ"):
        train_candidate(plan, Split([], pairs[:-1], [], []), tiny_dir, tmp_path / "killed", options=options)
    changed = Plan("dpo", _hp(max_steps=4, per_device_batch_size=2, beta=0.2), ("test",))
    with pytest.raises(ConfigError, match=r"resume refused: the training settings differ .*changed: beta"):
        train_candidate(changed, split, tiny_dir, tmp_path / "killed", options=options)


def _answer_logps(model, tokenizer, pairs: list[dict], side: str) -> list[tuple[float, int]]:
    """Summed log-probability of each pair's `side` answer given its prompt (teacher forcing), and its tokens."""
    import torch

    from alignloop.training.data import encode_turns

    out = []
    with torch.no_grad():
        for p in pairs:
            prompt_ids, (answer,) = encode_turns(tokenizer, p["prompt"], [p[side]])
            ids = torch.tensor([prompt_ids + answer])
            logps = model(input_ids=ids).logits[0, :-1].float().log_softmax(-1)
            positions = torch.arange(len(prompt_ids) - 1, ids.shape[1] - 1)
            out.append((float(logps[positions, torch.tensor(answer)].sum()), len(answer)))
    return out


def test_dpo_training_makes_the_implicit_reward_rank_held_out_chosen_answers_first(tmp_path, tiny_dir):
    """A learnable toy signal (a polite opening beats a rude one) on prompts never trained on."""
    from peft import PeftModel

    from alignloop.models import load_causal_lm, load_tokenizer

    train, held_out = _pairs(24), _pairs(12, offset=100)
    plan = Plan("dpo", _hp(max_steps=12, learning_rate=1e-2), ("test",))
    result = train_candidate(plan, Split([], train, [], []), tiny_dir, tmp_path, device="cpu",
                             options=RunOptions(device="cpu", log_every=0))
    tokenizer = load_tokenizer(tiny_dir)
    model = PeftModel.from_pretrained(load_causal_lm(tiny_dir), str(result.model_dir)).eval()
    cand = {side: _answer_logps(model, tokenizer, held_out, side) for side in ("chosen", "rejected")}
    with model.disable_adapter():
        ref = {side: _answer_logps(model, tokenizer, held_out, side) for side in ("chosen", "rejected")}
    margins = [(cc[0] - rc[0]) - (cr[0] - rr[0]) for cc, rc, cr, rr in
               zip(cand["chosen"], ref["chosen"], cand["rejected"], ref["rejected"], strict=True)]
    reward_accuracy = sum(m > 0 for m in margins) / len(margins)
    # The reference's implicit reward is 0 for every answer: it ranks no chosen answer above its rejected one.
    assert reward_accuracy >= 0.9
    # And by mean per-token likelihood the trained model prefers the chosen answer more often than the reference.
    prefers = {name: sum(c[0] / c[1] > r[0] / r[1] for c, r in zip(d["chosen"], d["rejected"], strict=True))
               for name, d in (("candidate", cand), ("reference", ref))}
    assert prefers["candidate"] > prefers["reference"]


def test_kto_weights_come_from_the_rows_trained_on_and_satisfy_trls_own_check(tmp_path, tiny_dir, caplog):
    from alignloop.training.kto import KTO_RATIO_RANGE, trl_accepts_weights, weighted_ratio

    thumbs = [{"prompt": [{"role": "user", "content": f"What is {i} plus {i}?"}], "completion": f"It is {2 * i}.",
               "label": i % 4 != 0} for i in range(40)]            # 30 up, 10 down
    hp = _hp(max_steps=10, loss_type="kto", desirable_weight=1.0, undesirable_weight=1.0)   # the plan's guess: 1:1
    result = train_candidate(Plan("kto", hp, ("test",)), Split(thumbs, [], [], []), tiny_dir, tmp_path,
                             options=RunOptions(device="cpu", log_every=0))
    dw, uw = result.hyperparameters["desirable_weight"], result.hyperparameters["undesirable_weight"]
    assert (dw, uw) != (1.0, 1.0)
    lo, hi = KTO_RATIO_RANGE
    assert lo <= weighted_ratio(30, 10, dw, uw) <= hi
    assert trl_accepts_weights(30, 10, dw, uw) and not trl_accepts_weights(30, 10, 1.0, 1.0)
    assert any("30 up, 10 down" in n for n in result.notes)
    _assert_trl_check_agrees(tmp_path, tiny_dir, thumbs, dw, uw, caplog)


def test_kto_trains_with_the_weights_the_plan_states(tmp_path, tiny_dir):
    """The plan's weights come from the rows its steps will read, so training keeps them unchanged."""
    from alignloop.config import PlanningSettings, TrainingSettings
    from alignloop.planner import choose_method
    from tests.unit.test_planner import shape

    thumbs = [{"prompt": [{"role": "user", "content": f"What is {i} plus {i}?"}], "completion": f"It is {2 * i}.",
               "label": i < 125} for i in range(200)]          # 125 up, 75 down; 3 steps of 4 read 7 up, 5 down
    plan = choose_method(shape(0, 125, 75), TrainingSettings(max_steps=3, per_device_batch_size=4, max_length=64,
                                                             lora={"r": 8, "alpha": 16, "dropout": 0.0}),
                         PlanningSettings())
    assert plan.method == "kto" and plan.hyperparameters["train_on"] == "thumbs"
    assert (plan.hyperparameters["desirable_weight"], plan.hyperparameters["undesirable_weight"]) == (1.0, 1.4)
    result = train_candidate(plan, Split(thumbs, [], [], []), tiny_dir, tmp_path,
                             options=RunOptions(device="cpu", log_every=0))
    assert (result.hyperparameters["desirable_weight"], result.hyperparameters["undesirable_weight"]) == (1.0, 1.4)
    assert any("(7 up, 5 down)" in n for n in result.notes)
    assert not any("KTO weights set from" in n for n in result.notes)
    # Its 3 batches of 4 come out of one window, grouped by length within each label.
    (pad,) = [n for n in result.notes if n.startswith("batches grouped by length within each label: ")]
    assert re.search(r"\d+ pad tokens of \d+ computed \(\d+\.\d%\)", pad), pad


def _assert_trl_check_agrees(tmp_path, tiny_dir, thumbs, dw, uw, caplog):
    """TRL's KTOTrainer, given the same rows, warns about 1:1 weights and not about ours."""
    from datasets import Dataset
    from trl import KTOConfig, KTOTrainer

    from alignloop.models import load_causal_lm, load_tokenizer

    rows = Dataset.from_list([{**t, "completion": [{"role": "assistant", "content": t["completion"]}]} for t in thumbs])
    warned = {}
    for weights in ((1.0, 1.0), (dw, uw)):
        caplog.clear()
        args = KTOConfig(output_dir=str(tmp_path / "trl"), per_device_train_batch_size=4, max_length=128,
                         desirable_weight=weights[0], undesirable_weight=weights[1], use_cpu=True, bf16=False,
                         report_to=[], max_steps=1)
        logging.getLogger("trl").propagate = True
        with caplog.at_level(logging.WARNING):
            KTOTrainer(model=load_causal_lm(tiny_dir), args=args, train_dataset=rows,
                       processing_class=load_tokenizer(tiny_dir))
        warned[weights] = any("desirable_weight in" in r.getMessage() for r in caplog.records)
    assert warned == {(1.0, 1.0): True, (dw, uw): False}


def test_training_renders_rows_with_the_models_own_chat_template(tmp_path, tiny_dir):
    import shutil

    from alignloop.models import load_tokenizer
    from alignloop.training.data import encode_turns, tokenize_pairs

    custom = tmp_path / "custom"
    shutil.copytree(tiny_dir, custom)
    tokenizer = load_tokenizer(custom)
    tokenizer.chat_template = "SYSTEM: be kind\n" + tokenizer.chat_template
    prompt = [{"role": "user", "content": "What is two plus two?"}]
    prompt_ids, (answer,) = encode_turns(tokenizer, prompt, ["Two plus two is four."])
    assert tokenizer.decode(prompt_ids).startswith("SYSTEM: be kind<|im_start|>user\nWhat is two plus two?")
    assert tokenizer.decode(answer) == "Two plus two is four.<|im_end|>\n"

    tokenizer.chat_template = None
    with pytest.raises(ConfigError, match="base_model: its tokenizer has no chat template"):
        tokenize_pairs(tokenizer, _pairs(1), "fp")


def test_tokenised_rows_are_cached_and_read_back(tmp_path, tiny_dir):
    from alignloop.models import load_tokenizer
    from alignloop.training.data import tokenize_pairs

    tokenizer = load_tokenizer(tiny_dir)
    first = tokenize_pairs(tokenizer, _pairs(3), "fp", tmp_path)
    assert len(list((tmp_path / "tokens").glob("pairs-*.json"))) == 1

    class Refuses:
        chat_template = "x"

        def apply_chat_template(self, *a, **k):
            raise AssertionError("tokenised again instead of reading the cache")

    assert tokenize_pairs(Refuses(), _pairs(3), "fp", tmp_path) == first
    with pytest.raises(AssertionError, match="tokenised again"):
        tokenize_pairs(Refuses(), _pairs(3), "another tokenizer", tmp_path)


def test_scoring_the_reference_before_the_first_step_shows_its_progress(tmp_path, tiny_dir, monkeypatch, caplog):
    """Minutes on a CPU for a few thousand real rows: a terminal and a log see it moving, with the rows done."""
    from alignloop.training import fastpath

    monkeypatch.setattr(fastpath, "REPORT_EVERY_S", 0.0)
    caplog.set_level(logging.INFO, logger="alignloop.training.progress")
    pairs = _pairs(12)   # 3 steps of 4 read all 12
    train_candidate(Plan("dpo", _hp(max_steps=3), ("test",)), Split([], pairs, [], []), tiny_dir, tmp_path / "run",
                    device="cpu", options=RunOptions(device="cpu", log_every=0))
    said = [r.getMessage() for r in caplog.records if r.name == "alignloop.training.progress"]
    assert said[0] == "reference log-probs: scoring 12 distinct rows once before the first step (cached for later runs)"
    done = [int(m[1]) for s in said if (m := re.match(r"reference log-probs: (\d+)/12 rows, \d+m\d\ds, about "
                                                       r"\d+m\d\ds to go$", s))]
    assert done and done == sorted(done) and all(0 < d < 12 for d in done), said


def test_the_reference_progress_says_the_time_to_go_by_tokens_left_not_rows_left(tmp_path, tiny_dir, monkeypatch,
                                                                                 caplog):
    """The rows are scored shortest first, so time to go by rows left under-says it (on 1,600 real rows the
    last quarter took a third of the time). On a clock where scoring costs one second a token, each line's time to
    go is exactly the tokens still to score."""
    from types import SimpleNamespace

    from trl import DPOTrainer

    from alignloop.training import common, fastpath

    now = [0.0]
    scored: list[int] = []
    original = DPOTrainer.compute_ref_log_probs

    def costs_a_second_a_token(self, model, inputs):
        tokens = int(inputs["attention_mask"].sum())
        now[0] += tokens
        scored.append(tokens)
        return original(self, model, inputs)

    monkeypatch.setattr(DPOTrainer, "compute_ref_log_probs", costs_a_second_a_token)
    monkeypatch.setattr(fastpath, "time", SimpleNamespace(perf_counter=lambda: now[0]))
    monkeypatch.setattr(fastpath, "REPORT_EVERY_S", 0.0)
    caplog.set_level(logging.INFO, logger="alignloop.training.progress")
    # Answers from 1 to 12 phrases long: the batches grow longer as scoring goes on.
    pairs = [{"prompt": [{"role": "user", "content": f"What is {i} plus {i}?"}],
              "chosen": "happy to help " * i + f"It is {2 * i}.", "rejected": "go away " * i + f"It is {2 * i}."}
             for i in range(1, 13)]
    train_candidate(Plan("dpo", _hp(max_steps=6, per_device_batch_size=2), ("test",)), Split([], pairs, [], []),
                    tiny_dir, tmp_path / "run", device="cpu", options=RunOptions(device="cpu", log_every=0))
    said = [r.getMessage() for r in caplog.records if r.name == "alignloop.training.progress"]
    to_go = [m[1] for s in said if (m := re.match(r"reference log-probs: \d+/\d+ rows, \d+m\d\ds, about (\S+) to go$",
                                                   s))]
    total = sum(scored)
    expected = [common.format_seconds(total - sum(scored[: k + 1])) for k in range(len(scored) - 1)]
    assert len(scored) > 2 and scored[-1] > scored[0]      # batches of different lengths, so the two ways differ
    assert to_go == expected, said

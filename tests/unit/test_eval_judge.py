"""Judges are graded before they are trusted: an endpoint judge over real HTTP on loopback, and a
reward-model judge fitted with TRL's RewardTrainer on the tiny model."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from alignloop.config import JudgeSettings
from alignloop.datasets import EvalPair
from alignloop.errors import ConfigError, DataError, TransientError
from alignloop.evaluation.judge import EndpointJudge, judge_accuracy, win_rates
from tests.shared_builds import tiny_model

SECRET = "sk-test-not-a-real-key-123"


def _pairs(n: int = 24) -> list[EvalPair]:
    return [EvalPair([{"role": "user", "content": f"What is {i} + 1?"}], f"It is {i + 1}. GOOD", f"It is {i}.", 1)
            for i in range(n)]


class _Server:
    """A tiny OpenAI-compatible /v1/chat/completions on 127.0.0.1: `policy` picks the letter."""

    def __init__(self, policy, status: int = 200) -> None:
        self.requests: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
                text = body["messages"][-1]["content"]
                reply = json.dumps({"choices": [{"message": {"role": "assistant", "content": policy(text)}}]})
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(reply.encode())

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _prefers_good(text: str) -> str:
    a = text.split("Answer A:")[1].split("Answer B:")[0]
    return "A" if "GOOD" in a else "B"


@pytest.fixture
def server(request):
    srv = _Server(*request.param)
    yield srv
    srv.close()


@pytest.mark.parametrize("server", [(_prefers_good,)], indirect=True)
def test_a_good_endpoint_judge_is_accurate_and_gets_the_key_in_its_header(server, monkeypatch):
    monkeypatch.setenv("JUDGE_KEY", SECRET)
    settings = JudgeSettings(kind="endpoint", endpoint_url=server.url, endpoint_model="judge-1", api_key_env="JUDGE_KEY")
    judge = EndpointJudge.from_settings(settings)
    assert judge_accuracy(judge, _pairs()) == 1.0
    assert {r["path"] for r in server.requests} == {"/v1/chat/completions"}
    assert {r["auth"] for r in server.requests} == {f"Bearer {SECRET}"}
    assert server.requests[0]["body"]["model"] == "judge-1"
    # Both display orders were used, so position bias cannot pass for skill.
    shown_first = [r["body"]["messages"][-1]["content"].split("Answer B:")[0] for r in server.requests]
    assert 0 < sum("GOOD" in s for s in shown_first) < len(shown_first)
    prompts = [p.prompt for p in _pairs(4)]
    assert win_rates(judge, prompts, ["x GOOD", "y", "same", "z GOOD"], ["x", "y GOOD", "same", "z"]) == [1, 0, 0.5, 1]


@pytest.mark.parametrize("server", [(lambda text: "A",)], indirect=True)
def test_a_judge_that_always_says_a_is_not_accurate(server):
    judge = EndpointJudge(server.url, "lazy", api_key=None, timeout_s=5)
    accuracy = judge_accuracy(judge, _pairs())
    assert 0.2 < accuracy < 0.8
    assert {r["auth"] for r in server.requests} == {None}


@pytest.mark.parametrize("server", [(lambda text: "A", 500)], indirect=True)
def test_endpoint_errors_are_transient_and_never_show_the_key(server):
    judge = EndpointJudge(server.url, "m", api_key=SECRET, timeout_s=5)
    with pytest.raises(TransientError, match="HTTP 500") as info:
        judge_accuracy(judge, _pairs(2))
    assert SECRET not in str(info.value)


def test_endpoint_settings_name_what_is_missing(monkeypatch):
    with pytest.raises(ValueError, match="endpoint_url and endpoint_model"):
        JudgeSettings(kind="endpoint", endpoint_url="http://127.0.0.1:1/v1")
    monkeypatch.delenv("NOPE_KEY", raising=False)
    settings = JudgeSettings(kind="endpoint", endpoint_url="http://127.0.0.1:1/v1", endpoint_model="m",
                             api_key_env="NOPE_KEY")
    with pytest.raises(ConfigError, match="api_key_env: environment variable NOPE_KEY is not set"):
        EndpointJudge.from_settings(settings)


@pytest.mark.slow
def test_a_cross_fitted_judge_learns_the_preference_from_held_out_prompts_and_is_graded_on_the_other_fold(tmp_path):
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the tiny model's matrices are too small to split; on a busy machine threads wait
    try:
        _judge_round_trip(tmp_path)
    finally:
        torch.set_num_threads(threads)


def _signal(prompts: range, text: str) -> list[EvalPair]:
    return [EvalPair([{"role": "user", "content": text.format(i)}], "Thank you, happy to help!", "Ugh. No.", 1)
            for i in prompts]


def _judge_round_trip(tmp_path):
    from alignloop.evaluation.candidate import EvalOptions, evaluate_candidate
    from alignloop.evaluation.judge import CrossFittedJudge, build_judge, grade_judge, judge_fold
    from alignloop.schema import prompt_key

    tiny = tiny_model()
    trained_on = frozenset(prompt_key(p.prompt) for p in _signal(range(40), "Question {}?"))
    held = _signal(range(40), "What is {} + 1?")
    settings = JudgeSettings(kind="reward_model", steps=25, learning_rate=3e-3)
    kw = dict(device="cpu", max_length=64, batch_size=8, training_prompt_keys=trained_on)
    judge = build_judge(settings, held, tiny, tmp_path / "judge", **kw)
    assert isinstance(judge, CrossFittedJudge) and len(judge.judges) == 2
    # Each fold's model learned from the other fold's prompts only.
    for k, fold_judge in enumerate(judge.judges):
        assert fold_judge.fitted_prompt_keys == {prompt_key(p.prompt) for p in held if judge_fold(p.prompt) != k}
    assert 0 < judge.judges[0].n_fit_pairs < len(held) and judge.n_fit_pairs == len(held)
    summary = grade_judge(judge, held, min_accuracy=0.6, bootstrap_samples=300)
    assert summary.accuracy == 1.0 and summary.usable and summary.n_accuracy_pairs == 40
    assert summary.fitted_on.startswith("reward models cross-fitted on 40 held-out pairs over 40 prompts in 2 folds")
    folders = sorted((tmp_path / "judge").glob("*/model/config.json"))
    assert len(folders) == 2
    stamps = [f.stat().st_mtime_ns for f in folders]
    build_judge(settings, held, tiny, tmp_path / "judge", **kw)
    assert [f.stat().st_mtime_ns for f in folders] == stamps  # same recipe: fitted once, reused

    def run(min_accuracy: float):
        options = EvalOptions(batch_size=4, max_length=64, bootstrap_samples=200, generation_prompts=12,
                              max_new_tokens=6, kl_samples=0, judge_min_accuracy=min_accuracy)
        return evaluate_candidate(tiny, tiny, held, beta=0.1, options=options, device="cpu", judge=judge)

    trusted, untrusted = run(0.6), run(1.0 + 1e-9)
    m = trusted.metrics()
    assert trusted.judge.usable and m["eval_judge_accuracy"] == 1.0 and m["eval_judge_accuracy_pairs"] == 40
    # Candidate == reference: every answer is identical, so every comparison is a tie.
    assert (m["eval_judge_win_rate"], m["eval_judge_win_rate_ci_low"], m["eval_judge_win_rate_ci_high"]) == (
        0.5, 0.5, 0.5)
    assert m["eval_judge_prompts"] == 12
    judged = trusted.to_dict()["judge"]
    assert judged["fitted_on"] == judge.provenance and judged["n_fit_pairs"] == 40
    assert not untrusted.judge.usable
    assert "eval_judge_win_rate" not in untrusted.metrics() and "eval_judge_accuracy" in untrusted.metrics()
    assert untrusted.to_dict()["judge"]["usable"] is False

    # A judge fitted on the candidate's training rows is refused, however it is offered.
    with pytest.raises(DataError, match=r"was fitted on 40 prompts the candidate trained on"):
        build_judge(settings, _signal(range(40), "Question {}?"), tiny, tmp_path / "judge", **kw)
    configured = folders[0].parent  # one fold's reward model, named in the config, and what it learned from
    fitted_on_training = frozenset(json.loads((configured / "recipe.json").read_text())["prompt_keys"])
    with pytest.raises(DataError, match=f"fitted on {len(fitted_on_training)} prompts the candidate trained on"):
        build_judge(JudgeSettings(model_path=configured), [], tiny, tmp_path / "judge",
                    **{**kw, "training_prompt_keys": fitted_on_training})
    assert build_judge(JudgeSettings(model_path=configured), [], tiny, tmp_path / "judge", **kw) is not None
    with pytest.raises(ConfigError, match="this run's own reward model"):
        build_judge(JudgeSettings(model_path=configured), [], tiny, tmp_path / "judge", own_reward_model=configured,
                    **kw)


def test_too_few_held_out_pairs_give_no_judge_rather_than_one_fitted_on_training_rows(tmp_path, caplog):
    from alignloop.evaluation.judge import build_judge

    judge = build_judge(JudgeSettings(kind="reward_model"), _signal(range(6), "Q{}?"), tmp_path / "no-model-needed",
                        tmp_path, device="cpu", max_length=64, batch_size=8)
    assert judge is None
    assert "too few held-out pairs (6) to cross-fit a judge" in caplog.text


def test_a_reward_model_folder_is_judged_with_and_never_silently_ignored(tmp_path):
    from pydantic import ValidationError

    assert JudgeSettings(model_path=tmp_path).kind == "reward_model"  # named without a kind: it is the judge
    with pytest.raises(ValidationError, match="model_path names a reward model's folder, which kind probe does not read"):
        JudgeSettings(kind="probe", model_path=tmp_path)

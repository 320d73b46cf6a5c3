"""alignloop.registry against a real MLflow sqlite store: what a run records, how versions and aliases
move, which errors come out, and that a logged tiny model loads and generates through pyfunc."""

from __future__ import annotations

import json
import shutil
import sqlite3
import sys
from pathlib import Path
from urllib.parse import urlparse

import mlflow
import pytest
from mlflow import MlflowClient

from alignloop import registry
from alignloop.errors import TerminalError, TransientError
from alignloop.gate import PASS, Verdict
from alignloop.registry import RegisteredVersion

TARGET = "support-bot"
LINEAGE = {
    "snapshot_id": "snap-0007",
    "method": "dpo",
    "config_hash": "abc123def456",
    "git_sha": "0123456789abcdef",
    "cursors": json.dumps({"warehouse": "2026-11-01T00:00:00"}),
    "alignloop.eval_set_hash": "feedbeef",  # already prefixed: must not become alignloop.alignloop.
}
LINEAGE_TAGS = {
    "alignloop.snapshot_id": "snap-0007",
    "alignloop.method": "dpo",
    "alignloop.config_hash": "abc123def456",
    "alignloop.git_sha": "0123456789abcdef",
    "alignloop.cursors": '{"warehouse": "2026-11-01T00:00:00"}',
    "alignloop.eval_set_hash": "feedbeef",
}
# What MLflow adds to the run params when a pyfunc model is logged with model_config.
GENERATION_PARAMS = {
    "generation/max_new_tokens": "128",
    "generation/temperature": "0.0",
    "generation/device": "auto",
}


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow database with its schema created once: migrating a new sqlite file takes seconds,
    copying a migrated one takes milliseconds."""
    db = tmp_path_factory.mktemp("template") / "mlflow.db"
    uri = f"sqlite:///{db}"
    client = MlflowClient(uri, uri)
    client.search_experiments()
    client.search_registered_models()
    return db


@pytest.fixture
def tracking_uri(tmp_path: Path, empty_store: Path) -> str:
    db = tmp_path / "mlflow.db"
    shutil.copy(empty_store, db)
    return f"sqlite:///{db}"


@pytest.fixture
def adapter_dir(tmp_path: Path) -> Path:
    """Looks like a saved PEFT adapter; never loaded, so the bytes need not be a model."""
    folder = tmp_path / "adapter"
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 4}))
    (folder / "adapter_model.safetensors").write_bytes(bytes(range(256)) * 8)
    (folder / "tokenizer_config.json").write_text("{}")
    return folder


def _register(tracking_uri: str, model_dir: Path, **overrides) -> RegisteredVersion:
    kwargs = {
        "tracking_uri": tracking_uri,
        "experiment": "alignment",
        "target": TARGET,
        "run_name": "retrain",
        "params": {"method": "dpo"},
        "metrics": {"eval/accuracy": 0.75},
        "step_metrics": [{"step": 1, "loss": 0.69}],
        "json_artifacts": {"plan": {"method": "dpo"}},
        "model_dir": model_dir,
        "model_info": {"kind": "lora", "base_model": "tiny"},
        "lineage": LINEAGE,
        "challenger": True,
    }
    return registry.log_and_register(**{**kwargs, **overrides})


def _passes(candidate, champion) -> Verdict:
    """A gate every version passes: these tests are about how aliases move (the gate's own rules are
    tested in test_gate.py and test_promotion.py)."""
    return Verdict(PASS)


def _promote(tracking_uri: str, **kw) -> RegisteredVersion:
    return registry.promote(tracking_uri, TARGET, check=_passes, **kw)


def _aliases(tracking_uri: str) -> dict[int, list[str]]:
    return {row["version"]: row["aliases"] for row in registry.describe(tracking_uri, TARGET)}


def test_first_registration_is_version_1_and_the_second_takes_the_challenger_alias(tracking_uri, adapter_dir):
    first = _register(tracking_uri, adapter_dir)
    assert (first.name, first.version, first.aliases) == (TARGET, 1, ("challenger", "newest"))
    assert first.model_uri == f"models:/{TARGET}/1"

    second = _register(tracking_uri, adapter_dir, run_name="retrain-2")
    assert (second.version, second.aliases) == (2, ("challenger", "newest"))
    assert second.run_id != first.run_id
    assert _aliases(tracking_uri) == {1: [], 2: ["challenger", "newest"]}
    assert registry.find_version(tracking_uri, TARGET, "challenger") == second


def test_a_version_that_did_not_pass_takes_newest_but_never_challenger_from_one_that_did(tracking_uri, adapter_dir):
    _register(tracking_uri, adapter_dir)
    failing = _register(tracking_uri, adapter_dir, run_name="retrain-2", challenger=False)
    assert failing.aliases == ("newest",)
    assert _aliases(tracking_uri) == {1: ["challenger"], 2: ["newest"]}
    assert _promote(tracking_uri).version == 1  # a plain promote takes the version that passed
    assert _aliases(tracking_uri) == {1: ["champion"], 2: ["newest"]}
    with pytest.raises(TerminalError, match="no version registered since the last promotion passed the gate"):
        _promote(tracking_uri)


def test_run_records_params_metrics_curve_artifacts_and_lineage_exactly(tracking_uri, adapter_dir):
    plan = {"method": "dpo", "hyperparameters": {"beta": 0.1}, "reasons": ["enough pairs"]}
    shape = {"pairs": 120, "flip_rate": 0.04}
    report = {"preference_accuracy": 0.75, "guards": {"kl": "ok"}}
    model_info = {"kind": "lora", "base_model": "smollm2-135m-instruct", "base_model_path": "/models/base"}
    version = _register(
        tracking_uri,
        adapter_dir,
        params={
            "method": "dpo",
            "training": {"learning_rate": 1e-4, "lora": {"r": 16, "target_modules": ["q_proj", "v_proj"]}},
            "evaluation": {"max_new_tokens": 64},
            "note": "x" * 7000,
        },
        metrics={"eval/accuracy": 0.75, "loss": 0.31},
        step_metrics=[
            {"step": 1, "loss": 0.69, "rewards/margins": 0.0},
            {"step": 2, "loss": 0.5, "rewards/margins": 0.4},
        ],
        json_artifacts={"plan": plan, "shape": shape, "eval_report": report},
        model_info=model_info,
    )
    client = MlflowClient(tracking_uri, tracking_uri)
    run = client.get_run(version.run_id)

    assert run.info.run_name == "retrain" and run.info.status == "FINISHED"
    assert run.data.params == {
        "method": "dpo",
        "training.learning_rate": "0.0001",
        "training.lora.r": "16",
        "training.lora.target_modules": '["q_proj", "v_proj"]',
        "evaluation.max_new_tokens": "64",
        "note": "x" * 6000,  # MLflow's limit for a param value
        **GENERATION_PARAMS,
    }
    # The final values win over the curve's last point for the same key.
    assert run.data.metrics == {"eval/accuracy": 0.75, "loss": 0.31, "rewards/margins": 0.4}
    loss_curve = [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "loss")]
    assert sorted(loss_curve) == [(1, 0.69), (2, 0.31), (2, 0.5)]
    margins = [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "rewards/margins")]
    assert sorted(margins) == [(1, 0.0), (2, 0.4)]

    sha = registry.files_sha256([adapter_dir])
    assert {k: v for k, v in run.data.tags.items() if k.startswith("alignloop.")} == {
        **LINEAGE_TAGS,
        "alignloop.model_sha256": sha,
        "alignloop.final_step": "2",
    }
    mv = client.get_model_version(TARGET, str(version.version))
    # Lineage, the model files' hash, and the completeness mark set last.
    assert mv.tags == {**LINEAGE_TAGS, "alignloop.model_sha256": sha, "alignloop.complete": "true"}
    assert mv.run_id == run.info.run_id

    run_dir = Path(urlparse(run.info.artifact_uri).path)
    assert sorted(p.name for p in run_dir.iterdir()) == ["eval_report.json", "plan.json", "shape.json"]
    assert json.loads((run_dir / "plan.json").read_text()) == plan
    assert json.loads((run_dir / "shape.json").read_text()) == shape
    assert json.loads((run_dir / "eval_report.json").read_text()) == report

    # The registered version's source is the logged model, which holds the adapter and its description.
    assert mv.source.startswith("models:/m-")
    logged = client.get_logged_model(mv.source.removeprefix("models:/"))
    files = Path(urlparse(logged.artifact_location).path) / "artifacts"
    logged_files = sorted(p.name for p in (files / "adapter").iterdir())
    assert logged_files == sorted(p.name for p in adapter_dir.iterdir())
    assert (files / "adapter" / "adapter_model.safetensors").read_bytes() == (
        adapter_dir / "adapter_model.safetensors"
    ).read_bytes()
    assert json.loads((files / "alignloop_model.json").read_text()) == model_info
    requirements = (files.parent / "requirements.txt").read_text().split()
    assert {r.split("==")[0] for r in requirements} == {
        "mlflow", "cloudpickle", "torch", "transformers", "accelerate", "peft"
    }


def test_secret_looking_param_keys_are_dropped(tracking_uri, adapter_dir):
    version = _register(
        tracking_uri,
        adapter_dir,
        params={
            "method": "kto",
            "password": "hunter2",
            "hf_token": "hf_abc",
            "AWS_SECRET_ACCESS_KEY": "aws-secret",
            "sources": {
                "warehouse": {
                    "host": "db.internal",
                    "api_key": "k-123",
                    "Credentials": {"user": "svc", "pass": "pw-1"},
                    "dsn": "postgresql://svc:pw-2@db.internal/feedback",
                }
            },
            "tokenizer": {"padding_side": "left"},
        },
    )
    params = MlflowClient(tracking_uri).get_run(version.run_id).data.params
    ours = {k: v for k, v in params.items() if not k.startswith("generation/")}
    assert ours == {
        "method": "kto",
        "sources.warehouse.host": "db.internal",
        "sources.warehouse.dsn": "postgresql://db.internal/feedback",
        "tokenizer.padding_side": "left",
    }
    for secret in ("hunter2", "hf_abc", "aws-secret", "k-123", "pw-1", "pw-2", "svc:"):
        assert secret not in json.dumps(params)


def test_promote_moves_champion_and_keeps_the_old_one_as_previous_champion(tracking_uri, adapter_dir):
    for _ in range(3):
        _register(tracking_uri, adapter_dir)  # v3 is the challenger

    promoted = _promote(tracking_uri, version=1)
    assert (promoted.version, promoted.aliases) == (1, ("champion",))
    assert _aliases(tracking_uri) == {1: ["champion"], 2: [], 3: ["challenger", "newest"]}

    promoted = _promote(tracking_uri)  # default: the challenger
    assert (promoted.version, promoted.aliases) == (3, ("champion", "newest"))
    assert _aliases(tracking_uri) == {1: ["previous_champion"], 2: [], 3: ["champion", "newest"]}

    _promote(tracking_uri, version=2)
    assert _aliases(tracking_uri) == {1: [], 2: ["champion"], 3: ["newest", "previous_champion"]}

    # Promoting the champion again changes nothing.
    _promote(tracking_uri, version=2)
    assert _aliases(tracking_uri) == {1: [], 2: ["champion"], 3: ["newest", "previous_champion"]}


def test_rollback_gives_champion_back_and_consumes_previous_champion(tracking_uri, adapter_dir):
    _register(tracking_uri, adapter_dir)
    _promote(tracking_uri)
    _register(tracking_uri, adapter_dir)
    _promote(tracking_uri)
    assert _aliases(tracking_uri) == {1: ["previous_champion"], 2: ["champion", "newest"]}

    back = registry.rollback(tracking_uri, TARGET)
    assert (back.version, back.aliases) == (1, ("champion",))
    assert _aliases(tracking_uri) == {1: ["champion"], 2: ["newest"]}
    assert registry.find_version(tracking_uri, TARGET, "previous_champion") is None

    with pytest.raises(TerminalError, match="no previous_champion to roll back to"):
        registry.rollback(tracking_uri, TARGET)


def test_unknown_versions_and_aliases_are_terminal_errors_with_clear_text(tracking_uri, adapter_dir):
    with pytest.raises(TerminalError, match="no 'challenger' version to promote"):
        _promote(tracking_uri)  # the model does not exist yet
    _register(tracking_uri, adapter_dir)
    with pytest.raises(TerminalError, match=f"'{TARGET}' has no version 7"):
        _promote(tracking_uri, version=7)
    _promote(tracking_uri)
    with pytest.raises(TerminalError, match="no 'challenger' version to promote"):
        _promote(tracking_uri)  # the challenger became champion
    with pytest.raises(TerminalError, match="no previous_champion to roll back to"):
        registry.rollback(tracking_uri, TARGET)

    assert registry.find_version(tracking_uri, TARGET, "no-such-alias") is None
    assert registry.find_version(tracking_uri, "no-such-model", "champion") is None
    assert registry.describe(tracking_uri, "no-such-model") == []


def test_describe_lists_versions_with_aliases_lineage_and_run_metrics(tracking_uri, adapter_dir):
    _register(tracking_uri, adapter_dir, metrics={"eval/accuracy": 0.6})
    _register(tracking_uri, adapter_dir, metrics={"eval/accuracy": 0.8})
    _promote(tracking_uri)
    rows = registry.describe(tracking_uri, TARGET)
    assert [(r["version"], r["aliases"], r["metrics"]["eval/accuracy"]) for r in rows] == [
        (1, [], 0.6),
        (2, ["champion", "newest"], 0.8),
    ]
    assert all(LINEAGE_TAGS.items() <= r["tags"].items() and r["complete"] for r in rows)
    assert all(r["run_id"] and r["created"].endswith("+00:00") for r in rows)
    assert "alignloop.promoted_by" in rows[1]["tags"] and "alignloop.promoted_by" not in rows[0]["tags"]


def test_a_failed_log_marks_the_run_failed_and_registers_nothing(tracking_uri, adapter_dir):
    with pytest.raises(TerminalError, match="not a plain file name"):
        _register(tracking_uri, adapter_dir, json_artifacts={"../escape": {}})
    client = MlflowClient(tracking_uri, tracking_uri)
    [run] = client.search_runs([client.get_experiment_by_name("alignment").experiment_id])
    assert run.info.status == "FAILED"
    assert registry.describe(tracking_uri, TARGET) == []


def test_model_folder_that_does_not_match_model_info_is_refused(tracking_uri, adapter_dir, tmp_path):
    with pytest.raises(TerminalError, match="does not exist"):
        _register(tracking_uri, tmp_path / "missing")
    with pytest.raises(TerminalError, match="kind=full but config.json is missing"):
        _register(tracking_uri, adapter_dir, model_info={"kind": "full"})


def test_unreachable_server_is_transient_and_the_message_has_no_password(monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "3")
    with pytest.raises(TransientError) as caught:
        # Port 9 (discard): nothing listens, the connection is refused at once.
        registry.find_version("http://alice:s3cret@127.0.0.1:9", TARGET, "champion")
    message = str(caught.value)
    assert "127.0.0.1:9" in message
    assert "s3cret" not in message and "alice" not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_a_locked_sqlite_database_is_transient(tmp_path):
    db = tmp_path / "locked.db"
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(sqlite3.OperationalError, match="database is locked") as real:
            sqlite3.connect(db, timeout=0).execute("SELECT 1 FROM sqlite_master")
    finally:
        holder.execute("ROLLBACK")
    uri = "postgresql://bob:pw@db/mlflow"
    with pytest.raises(TransientError, match="database is locked"), registry._mlflow_errors(uri, "testing"):
        raise real.value
    with pytest.raises(TerminalError, match="no such table") as caught, registry._mlflow_errors(uri, "x"):
        sqlite3.connect(":memory:").execute("SELECT * FROM missing")
    assert not isinstance(caught.value, TransientError)
    assert "postgresql://db/mlflow" in str(caught.value) and "bob" not in str(caught.value)


# --------------------------------------------------------------------------------------------------
# A real (tiny) model: logged without loading it, then loaded and run through pyfunc.


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny") / "model"
    config = LlamaConfig(
        vocab_size=128, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1, intermediate_size=64,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    vocab = {"<unk>": 0, "<pad>": 1, "</s>": 2, **{f"w{i}": i + 3 for i in range(120)}}
    words = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    words.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(
        tokenizer_object=words, unk_token="<unk>", pad_token="<pad>", eos_token="</s>"
    ).save_pretrained(folder)
    return folder


def _greedy(model, folder: Path, prompt: str, new_tokens: int) -> str:
    import torch
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    ids = tok(prompt, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=new_tokens, do_sample=False, pad_token_id=tok.pad_token_id)
    return tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)


@pytest.fixture
def loadable(monkeypatch, tracking_uri):
    """Registry URIs resolve through the environment; loading must not need alignloop itself (the
    model class is pickled by value), so alignloop.registry is made unimportable while loading."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

    def load(model_uri: str, **config):
        monkeypatch.setitem(sys.modules, "alignloop.registry", None)
        try:
            return mlflow.pyfunc.load_model(model_uri, model_config={"generation": config})
        finally:
            monkeypatch.setitem(sys.modules, "alignloop.registry", registry)

    return load


def test_a_registered_full_model_loads_through_pyfunc_and_generates(tracking_uri, tiny_model, loadable):
    from transformers import AutoModelForCausalLM

    version = _register(tracking_uri, tiny_model, model_info={"kind": "full", "base_model": "tiny"})
    model = loadable(version.model_uri, max_new_tokens=3)
    answers = model.predict(["w1 w2 w3", "w7"])
    expected = AutoModelForCausalLM.from_pretrained(tiny_model)
    assert answers == [_greedy(expected, tiny_model, "w1 w2 w3", 3), _greedy(expected, tiny_model, "w7", 3)]
    assert all(len(a.split()) <= 3 for a in answers) and any(answers)  # max_new_tokens from model_config
    assert model.metadata.metadata == {"alignloop": {"kind": "full", "base_model": "tiny"}}


# peft 0.21 calls a transformers 5 API that warns; not ours to fix.
@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")
def test_a_registered_lora_adapter_loads_on_its_base_and_generates(
    tracking_uri, tiny_model, loadable, tmp_path
):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    # Random adapter weights (not the zero init) so the answer depends on the adapter being applied.
    adapted = get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_model),
        LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False),
    )
    adapter = tmp_path / "adapter"
    adapted.save_pretrained(adapter)
    version = _register(
        tracking_uri,
        adapter,
        model_info={"kind": "lora", "base_model": "tiny", "base_model_path": str(tiny_model)},
    )
    model = loadable(version.model_uri, max_new_tokens=4)
    assert model.predict(["w5 w6"]) == [_greedy(adapted.eval(), tiny_model, "w5 w6", 4)]


# --------------------------------------------------------------------------------------------------
# fetch_version_model: a version as a plain Hugging Face folder (how the champion is scored).


def test_fetch_version_model_returns_a_loadable_folder_by_alias_and_number(tracking_uri, tiny_model, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    version = _register(tracking_uri, tiny_model, model_info={"kind": "full", "base_model": "tiny"})
    _promote(tracking_uri)
    by_alias = registry.fetch_version_model(tracking_uri, TARGET, "champion", cache_dir=tmp_path / "cache")
    by_number = registry.fetch_version_model(tracking_uri, TARGET, version.version, cache_dir=tmp_path / "cache")
    assert by_alias == by_number and by_alias is not None
    fetched = AutoModelForCausalLM.from_pretrained(by_alias)
    original = AutoModelForCausalLM.from_pretrained(tiny_model)
    for (name, a), (_, b) in zip(fetched.state_dict().items(), original.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    assert registry.fetch_version_model(tracking_uri, TARGET, "challenger") is None  # promoted away
    assert registry.fetch_version_model(tracking_uri, TARGET, 99) is None
    assert registry.fetch_version_model(tracking_uri, "no-such-target", "champion") is None


@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")
def test_fetch_version_model_merges_a_lora_version_onto_its_base(tracking_uri, tiny_model, tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    adapted = get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_model),
        LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False),
    )
    adapter = tmp_path / "adapter"
    adapted.save_pretrained(adapter)
    _register(tracking_uri, adapter,
              model_info={"kind": "lora", "base_model": "tiny", "base_model_path": str(tiny_model)})
    folder = registry.fetch_version_model(tracking_uri, TARGET, "challenger", cache_dir=tmp_path / "cache")
    merged = AutoModelForCausalLM.from_pretrained(folder)
    ids = torch.tensor([[3, 4, 5, 6]])
    with torch.no_grad():
        assert torch.allclose(merged(ids).logits, adapted.eval()(ids).logits, atol=1e-5)
        assert not torch.allclose(merged(ids).logits, AutoModelForCausalLM.from_pretrained(tiny_model)(ids).logits)

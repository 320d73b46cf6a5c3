"""A run that needs a person reaches one: a failed or gated-out run POSTs one line to notify.webhook_url
(a real HTTP server on loopback), whose URL is a secret that no log line or error shows."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from alignloop import notify
from alignloop.config import settings_from_dict
from alignloop.errors import ConfigError, TerminalError
from tests.webhook import webhook_receiver

TOKEN = "T0K3N-hook-9f81c2"


def _settings(tmp_path: Path, monkeypatch, url: str, **notify_settings):
    monkeypatch.setenv("ALIGNLOOP_TEST_WEBHOOK", f"{url}/hooks/{TOKEN}")
    raw = {"target": "nightly", "sources": [{"name": "s", "options": {"path": "w.duckdb"}}],
           "base_model": {"tiny": True}, "notify": {"webhook_url": "${ALIGNLOOP_TEST_WEBHOOK}", **notify_settings}}
    return settings_from_dict(raw, base_dir=tmp_path)


def test_a_failed_run_posts_its_one_line_reason(tmp_path, monkeypatch):
    with webhook_receiver() as (url, received):
        settings = _settings(tmp_path, monkeypatch, url)
        error = TerminalError("source 'pg': database \"x\" does not exist; check the database in options.dsn\nmore")
        assert notify.run_failed(settings, "20261206-1", error) is True
    (body,) = received
    assert body["path"] == f"/hooks/{TOKEN}" and body["outcome"] == "failed" and body["run_id"] == "20261206-1"
    assert body["reason"] == "source 'pg': database \"x\" does not exist; check the database in options.dsn"
    assert body["text"] == f"alignloop nightly: failed: {body['reason']}"


def test_a_gated_out_version_posts_the_failing_check_and_a_passing_one_posts_nothing(tmp_path, monkeypatch):
    gate = {"verdict": "fail", "reasons": ["pass: perplexity rise 2% <= 10%",
                                           "fail: win rate 0.41 over the champion < 0.5"]}
    with webhook_receiver() as (url, received):
        settings = _settings(tmp_path, monkeypatch, url)
        assert notify.run_finished(settings, "r2", {"version": 3, "gate": gate}) is True
        assert notify.run_finished(settings, "r3", {"version": 4, "gate": {"verdict": "pass", "reasons": []}}) is False
        assert notify.run_finished(settings, "r4", None) is False  # skipped: nothing registered, nothing to say
    (body,) = received
    assert body["outcome"] == "gated_out"
    assert body["reason"] == "version 3 gated out (fail): fail: win rate 0.41 over the champion < 0.5"


def test_only_the_outcomes_listed_in_on_notify(tmp_path, monkeypatch):
    with webhook_receiver() as (url, received):
        settings = _settings(tmp_path, monkeypatch, url, on=["gated_out"])
        assert notify.run_failed(settings, "r", TerminalError("boom")) is False
    assert received == []


def test_an_undeliverable_notification_is_one_warning_without_the_url_and_never_an_error(tmp_path, monkeypatch, caplog):
    with webhook_receiver(status=500) as (url, received):
        settings = _settings(tmp_path, monkeypatch, url)
        with caplog.at_level(logging.WARNING, logger="alignloop.notify"):
            assert notify.run_failed(settings, "r", TerminalError("boom")) is False
    assert len(received) == 1
    down = _settings(tmp_path, monkeypatch, "http://127.0.0.1:9")  # nothing listens on the discard port
    with caplog.at_level(logging.WARNING, logger="alignloop.notify"):
        assert notify.run_failed(down, "r", TerminalError("boom")) is False
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and all("notify.webhook_url" in line and TOKEN not in line for line in lines)
    assert "500" in lines[0]


def test_the_webhook_url_is_a_secret_kept_out_of_dumps_and_config_files(tmp_path, monkeypatch):
    settings = _settings(tmp_path, monkeypatch, "http://127.0.0.1:1")
    assert TOKEN not in repr(settings) and TOKEN not in settings.model_dump_json()
    assert f"http://127.0.0.1:1/hooks/{TOKEN}" in settings.secret_values()
    raw = {"sources": [{"name": "s", "options": {"path": "w.duckdb"}}], "base_model": {"tiny": True},
           "notify": {"webhook_url": f"https://hooks.example.invalid/{TOKEN}"}}
    with pytest.raises(ConfigError, match=r"notify.webhook_url holds a password or key written in the file") as e:
        settings_from_dict(raw, base_dir=tmp_path)
    assert TOKEN not in str(e.value)


def test_a_secret_in_the_reason_is_masked(tmp_path, monkeypatch):
    with webhook_receiver() as (url, received):
        settings = _settings(tmp_path, monkeypatch, url)
        notify.run_failed(settings, "r", TerminalError("could not reach postgresql://u:pw-Zq81@db:5432/x"))
    assert "pw-Zq81" not in received[0]["text"]

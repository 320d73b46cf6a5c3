"""What a run leaves to read: markdown artifacts that keep their tables whole, links without passwords, and log
lines in which an expected error is one line (and JSON when asked)."""

from __future__ import annotations

import json
import logging

from hypothesis import given
from hypothesis import strategies as st

from alignloop import secrets
from alignloop.errors import DataError, TerminalError
from alignloop.flows import artifacts, logs


def _rows(markdown: str) -> list[list[str]]:
    """The cells of each table row (split on unescaped pipes)."""
    import re

    return [re.split(r"(?<!\\)\|", line)[1:-1] for line in markdown.splitlines() if line.startswith("|")]


@given(st.text(max_size=40), st.text(max_size=40))
def test_any_source_name_or_reason_keeps_the_ingest_table_one_row_of_nine_cells(source, reason):
    ingested = [{"source": source, "rows_read": {"feedback": 5}, "pairs_added": 1, "unpaired_added": 2,
                 "ranks_added": 0, "duplicates": 1, "pending": 0, "quarantined": 2}]
    markdown = artifacts.ingest_markdown(ingested, {source: [(reason, 2)]})
    header, _, row = _rows(markdown)
    assert len(header) == len(row) == 9 and row[-1].strip().startswith("2 ×")


def test_evaluation_shows_each_metric_once_with_its_interval_where_it_has_one():
    markdown = artifacts.evaluation_markdown({"eval_pref_accuracy_delta": 0.05, "eval_pref_accuracy_delta_ci_low": -0.01,
                                              "eval_pref_accuracy_delta_ci_high": 0.11, "eval_pairs": 44.0})
    rows = {r[0].strip(): r for r in _rows(markdown)[2:]}
    assert set(rows) == {"eval_pref_accuracy_delta", "eval_pairs"}
    assert rows["eval_pref_accuracy_delta"][2].strip() == "[-0.0100, 0.1100]"
    assert rows["eval_pairs"][2].strip() == "—"


def test_gate_lists_every_check_line_under_the_verdict():
    gate = {"verdict": "fail", "reasons": ["pass: a", "fail: b | c (promotion.min_gain_ci_low)"]}
    assert artifacts.gate_markdown(gate).splitlines() == ["# Gate: FAIL", "", "- pass: a",
                                                          "- fail: b \\| c (promotion.min_gain_ci_low)"]


def test_links_to_an_mlflow_server_carry_no_user_or_password():
    registered = {"name": "my model", "version": 3, "run_id": "abc", "review_page": "/w/runs/r1/review.html"}
    found = dict(artifacts.links("https://alice:s3cret@mlflow.example:5000/", registered, "7"))
    assert found == {"MLflow run": "https://mlflow.example:5000/#/experiments/7/runs/abc",
                     "registered version": "https://mlflow.example:5000/#/models/my%20model/versions/3",
                     "review page": "file:///w/runs/r1/review.html"}
    local = dict(artifacts.links("sqlite:////w/mlflow.db", registered))
    assert local["registered version"] == "`models:/my model/3`" and local["MLflow run"] == "run id `abc`"


def _record(msg: str, exc: BaseException | None = None, level: int = logging.ERROR) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc else None
    return logging.LogRecord("prefect.flow_runs", level, __file__, 1, msg, (), exc_info)


def _raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as e:
        return e


def test_an_expected_error_on_a_run_logger_is_one_line_without_traceback_and_marked():
    secrets.remember("hunter2-password")
    error = _raised(TerminalError("lock held; pw hunter2-password"))
    record = _record(f"Encountered exception during execution: {error!r}", error)
    assert logs.OneLineExpectedErrors().filter(record)
    assert record.getMessage() == "Encountered exception during execution: TerminalError: lock held; pw ***"
    assert record.exc_info is None and logs.DropReported().filter(record) is False
    formatted = logging.Formatter().format(record)
    assert "Traceback" not in formatted and "\n" not in formatted


def test_an_unexpected_error_keeps_its_traceback_and_reaches_the_console():
    record = _record("Encountered exception during execution", _raised(ZeroDivisionError("division by zero")))
    logs.OneLineExpectedErrors().filter(record)
    assert record.exc_info is not None and "Traceback" in logging.Formatter().format(record)
    assert logs.DropReported().filter(record)


def test_the_failed_state_line_of_an_expected_error_is_marked_but_other_lines_are_not():
    failed = _record("Finished in state Failed('Task run encountered an exception DataError: too few rows')")
    info = _record("Finished in state Completed()", level=logging.INFO)
    for record in (failed, info):
        logs.OneLineExpectedErrors().filter(record)
    assert DataError.__name__ in failed.getMessage()
    assert logs.DropReported().filter(failed) is False and logs.DropReported().filter(info)


def test_json_log_lines_carry_the_run_folder():
    logs.set_run_id("20261206T010203-abcdef12")
    try:
        line = json.loads(logs.JsonFormatter().format(_record("training step %d", level=logging.INFO)))
    finally:
        logs.set_run_id(None)
    assert line["run_id"] == "20261206T010203-abcdef12" and line["level"] == "INFO"
    assert line["flow_run_id"] is None and line["logger"] == "prefect.flow_runs"
    with_exc = json.loads(logs.JsonFormatter().format(_record("boom", _raised(ValueError("bad")))))
    assert "ValueError: bad" in with_exc["exception"] and with_exc["run_id"] is None


def test_the_wait_for_a_configured_prefect_api_is_30_s_unless_the_environment_says_otherwise(monkeypatch):
    import pytest

    from alignloop.flows import prefect_api

    monkeypatch.delenv(prefect_api.API_WAIT_ENV, raising=False)
    assert prefect_api.configured_server_wait_s() == 30.0
    monkeypatch.setenv(prefect_api.API_WAIT_ENV, " 2.5 ")
    assert prefect_api.configured_server_wait_s() == 2.5
    for bad in ("soon", "-1", "nan", "inf"):
        monkeypatch.setenv(prefect_api.API_WAIT_ENV, bad)
        with pytest.raises(TerminalError, match=f"^ALIGNLOOP_PREFECT_API_WAIT_SECONDS: '{bad}' is not a number"):
            prefect_api.configured_server_wait_s()

"""RELIABILITY.md is written from what the reliability tests record, never typed: a real pytest run of
small tests that record figures (one of them failing) becomes the report's figures and failures."""

from __future__ import annotations

from pathlib import Path

import pytest

from alignloop.benchmarks.reliability import bench_reliability
from alignloop.errors import ConfigError

TESTS = '''
import json
import pytest

@pytest.mark.reliability
def test_kill(record_property):
    record_property("reliability", json.dumps({"fault": "kill -9 after ingest", "rows_lost": 0, "rows_duplicated": 0}))


@pytest.mark.reliability
def test_hostile(record_property):
    record_property("reliability", json.dumps({"hostile": "shape preference", "inputs": 30, "examples": 10,
                                               "changed": 0, "injections_executed": 0}))


@pytest.mark.reliability
def test_leak(record_property):
    record_property("reliability", json.dumps({"fault": "wrong password (mysql)", "secrets_leaked": LEAKED}))
    assert LEAKED == 0, "the password is in the error"


def test_not_marked():
    pass
'''


def _checkout(tmp_path: Path, leaked: int) -> Path:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_figures.py").write_text(TESTS.replace("LEAKED", str(leaked)))
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    reliability: figures\n")
    return tmp_path


def test_figures_come_from_the_tests_results(tmp_path):
    code, report = bench_reliability(tmp_path / "RELIABILITY.md", examples=3, repo=_checkout(tmp_path, 0))
    assert code == 0 and (tmp_path / "RELIABILITY.md").read_text() == report
    assert "| rows lost | 0 |" in report and "| secrets leaked | 0 |" in report
    assert "| hostile inputs tried | 30 (per shape and connector below) |" in report
    assert "| shape preference | 30 | 10 | 0 | 0 |  |" in report
    assert "3 tests, 3 passed, 0 failed" in report and "3 examples per property" in report


def test_a_failing_test_makes_its_figures_not_hold_and_the_command_fail(tmp_path):
    code, report = bench_reliability(tmp_path / "RELIABILITY.md", repo=_checkout(tmp_path, 1))
    assert code == 1
    assert "| secrets leaked | **not holding** (a test failed) |" in report
    assert "**FAILED**: AssertionError: the password is in the error" in report
    assert "test_leak" in report.split("## Failed")[1]


def test_outside_a_checkout_it_says_so(tmp_path):
    with pytest.raises(ConfigError, match="needs a checkout"):
        bench_reliability(tmp_path / "R.md", repo=tmp_path)

"""In a terminal, the live progress display and the registry's quieting of MLflow share stderr cleanly."""

from __future__ import annotations

import sys
import textwrap

from tests.terminal import run_in_terminal

# What a run does while the display is live: the registry quiets MLflow, and MLflow (whose log handler writes
# to whatever sys.stderr is at the time) still has a warning to say; then the display stops.
CHILD = textwrap.dedent("""
    import logging, sys, warnings
    import mlflow  # installs MLflow's own log handler
    from alignloop.cli.main import RichReporter
    from alignloop.flows import progress
    from alignloop.registry.quiet import _quiet_mlflow

    with RichReporter():
        progress.stage("register")
        progress.train_step(1, 4, {"loss": 0.7})
        with _quiet_mlflow():
            logging.getLogger("mlflow.tracking").warning("a warning from MLflow")
            warnings.warn("a warning from a library")
            print("Created version '3' of model x", file=sys.stderr)
            print("a line on stdout")
        progress.train_step(4, 4, {"loss": 0.5})
    print("display stopped")
""")


def test_warnings_under_the_live_display_print_once_without_recursion_and_the_display_stops():
    finished = run_in_terminal([sys.executable, "-c", CHILD], timeout=60)
    assert not finished.timed_out, finished.output[-2000:]
    assert finished.code == 0, finished.output[-2000:]
    assert "RecursionError" not in finished.output and "Traceback" not in finished.output
    assert finished.output.count("a warning from MLflow") == 1
    assert "a warning from a library" in finished.output and "a line on stdout" in finished.output
    assert "Created version" not in finished.output  # MLflow's chatter is still dropped
    assert "display stopped" in finished.output

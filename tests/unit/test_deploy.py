"""Deployment files parse and point at code that exists (no Docker engine runs here to start them)."""

from __future__ import annotations

import importlib
from pathlib import Path

import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def test_prefect_deployment_points_at_the_retrain_flow():
    spec = yaml.safe_load((DEPLOY / "prefect.yaml").read_text())
    (deployment,) = spec["deployments"]
    module, _, name = deployment["entrypoint"].partition(":")
    flow = getattr(importlib.import_module(module.removesuffix(".py").replace("/", ".")), name)
    assert flow.name == "retrain-from-config"
    assert set(deployment["parameters"]) <= set(flow.parameters.properties)
    assert deployment["schedules"][0]["cron"].count(" ") == 4


def test_compose_has_the_backing_services_and_no_literal_password():
    text = (DEPLOY / "compose.yaml").read_text()
    spec = yaml.safe_load(text)
    assert {"postgres", "mlflow", "prefect"} <= set(spec["services"])
    assert "${POSTGRES_PASSWORD" in text

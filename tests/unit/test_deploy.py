"""The deploy stack agrees with itself and with the code: deployments import the flow, the documented
commands are the ones compose runs, every alignloop service runs the one image, the Kubernetes job
template renders to a Job the Kubernetes schema accepts. (tests/integration/test_prefect_deployment.py
starts the same services natively: no container engine runs here.)"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from prefect.flows import load_flow_from_entrypoint
from prefect.utilities.templating import apply_values

from alignloop.config import settings_from_dict
from alignloop.offline import OFFLINE_DEFAULTS
from alignloop.training.launch import ACCELERATE_CONFIGS

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
PREFECT = yaml.safe_load((DEPLOY / "prefect.yaml").read_text())
COMPOSE = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
DOCKERFILE = (DEPLOY / "Dockerfile").read_text()
TEMPLATE = json.loads((DEPLOY / "k8s" / "base-job-template.json").read_text())
DEPLOYMENTS = {d["name"]: d for d in PREFECT["deployments"]}


def header_commands() -> list[str]:
    """The commands deploy/prefect.yaml's header tells an operator to run, in order."""
    header = (DEPLOY / "prefect.yaml").read_text().split("\nname:", 1)[0]
    return re.findall(r"^#\s+(prefect .+)$", header, flags=re.M)


@pytest.mark.parametrize("name", sorted(DEPLOYMENTS))
def test_each_deployment_imports_the_retrain_flow_with_parameters_it_takes(name):
    deployment = DEPLOYMENTS[name]
    flow = load_flow_from_entrypoint(deployment["entrypoint"], use_placeholder_flow=False)
    assert flow.name == "retrain-from-config"
    assert set(deployment["parameters"]) <= set(flow.parameters.properties)
    assert [len(s["cron"].split()) for s in deployment["schedules"]] == [5]
    assert deployment["concurrency_limit"] == 1  # two nightly runs of one target never train at once


def test_runs_need_no_checkout_so_any_worker_with_the_package_runs_them():
    assert PREFECT["pull"] == []
    assert all(":" not in d["entrypoint"] for d in DEPLOYMENTS.values())  # a module path, not a file in a tree


def test_the_header_commands_create_the_pool_deploy_and_start_the_worker_of_the_process_deployment():
    create, deploy, worker = (shlex.split(c) for c in header_commands())
    pool = DEPLOYMENTS["nightly-retrain"]["work_pool"]["name"]
    assert create[:4] == ["prefect", "work-pool", "create", pool] and create[create.index("--type") + 1] == "process"
    assert deploy[deploy.index("--prefect-file") + 1] == "deploy/prefect.yaml"
    assert deploy[deploy.index("--name") + 1] == "nightly-retrain"
    assert worker == ["prefect", "worker", "start", "--pool", pool]


def test_compose_deploys_and_works_exactly_as_the_header_documents():
    services = COMPOSE["services"]
    create, deploy, worker = header_commands()
    assert shlex.split(services["deploy"]["command"]) == ["sh", "-c", f"{create} && {deploy}"]
    assert services["worker"]["command"] == worker
    assert services["worker"]["depends_on"]["deploy"] == {"condition": "service_completed_successfully"}
    mounts = [re.search(r":(/[^:]+)(?::ro)?$", v)[1] for v in services["worker"]["volumes"]]
    assert str(Path(DEPLOYMENTS["nightly-retrain"]["parameters"]["config_path"]).parent) == "/etc/alignloop"
    assert DEPLOYMENTS["nightly-retrain"]["parameters"]["config_path"] in mounts


def test_every_alignloop_service_runs_the_one_image_built_from_the_dockerfile():
    services = COMPOSE["services"]
    ours = {name for name, s in services.items() if name != "postgres"}
    assert ours == {"mlflow", "prefect", "deploy", "worker"}
    for name in ours:
        assert services[name]["image"] == "alignloop:${ALIGNLOOP_VARIANT:-cpu}", name
        assert services[name]["build"]["dockerfile"] == "deploy/Dockerfile", name
        assert services[name]["build"]["args"] == {"VARIANT": "${ALIGNLOOP_VARIANT:-cpu}"}, name


def test_the_databases_compose_points_at_are_the_ones_postgres_creates():
    services = COMPOSE["services"]
    mlflow_db = re.search(r"@postgres:5432/(\w+)", services["mlflow"]["command"])[1]
    prefect_db = re.search(r"@postgres:5432/(\w+)",
                           services["prefect"]["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"])[1]
    assert mlflow_db == services["postgres"]["environment"]["POSTGRES_DB"]
    assert f"CREATE DATABASE {prefect_db};" in (DEPLOY / "postgres-init.sql").read_text()


def test_compose_holds_no_literal_password():
    text = (DEPLOY / "compose.yaml").read_text()
    assert "${POSTGRES_PASSWORD:?" in text
    assert not re.search(r"alignloop:(?!\$\{POSTGRES_PASSWORD\})[^@\s]+@", text)


def test_the_dockerfile_copies_every_package_folder_and_runs_offline():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    folders = {d.split("/")[0] for d in pyproject["tool"]["setuptools"]["package-dir"].values()}
    copied = set(re.findall(r"^COPY (\S+) \1$", DOCKERFILE, flags=re.M))
    assert folders <= copied, folders - copied
    env = dict(re.findall(r"(\w+)=(\S+)", " ".join(re.findall(r"^ENV ((?:.*\\\n)*.*)", DOCKERFILE, flags=re.M))))
    assert {k: v for k, v in env.items() if k in OFFLINE_DEFAULTS} == OFFLINE_DEFAULTS
    # Prefect's workers start flow runs with their own command line: an ENTRYPOINT would be put before it.
    assert not re.search(r"^ENTRYPOINT", DOCKERFILE, flags=re.M)


def test_both_image_variants_are_built_from_the_one_dockerfile_and_each_deployment_names_one():
    builds = dict(re.findall(r"docker build -f deploy/Dockerfile (?:--build-arg VARIANT=(\w+) )?-t (\S+) \.",
                             DOCKERFILE))
    assert builds == {"": "alignloop:cpu", "cuda": "alignloop:cuda"}
    assert re.search(r"^ARG VARIANT=cpu$", DOCKERFILE, flags=re.M)
    assert re.search(r"cpu\)\s+index=", DOCKERFILE) and re.search(r"cuda\)\s+index=", DOCKERFILE)
    k8s = DEPLOYMENTS["nightly-retrain-k8s"]
    assert k8s["work_pool"]["job_variables"]["image"] == "alignloop:cuda"
    assert TEMPLATE["variables"]["properties"]["image"]["default"] == "alignloop:cuda"


def _placeholders(value) -> set[str]:
    return set(re.findall(r"\{\{\s*(\w+)\s*\}\}", json.dumps(value)))


def test_every_placeholder_of_the_job_template_is_a_declared_variable():
    declared = set(TEMPLATE["variables"]["properties"])
    assert _placeholders(TEMPLATE["job_configuration"]) <= declared
    assert set(TEMPLATE["variables"]["properties"]["accelerate_config"]["enum"]) == set(ACCELERATE_CONFIGS)


def rendered_job(**values) -> dict:
    """The Job the Kubernetes worker submits: variables' defaults filled in, its env and command added as the
    worker adds them (env entries appended to the container's, the command split into args)."""
    defaults = {k: v["default"] for k, v in TEMPLATE["variables"]["properties"].items() if "default" in v}
    values = {"name": "retrain-from-config-x1", "labels": {"prefect.io/flow-run-id": "x1"},
              "env": {"PREFECT_API_URL": "http://prefect:4200/api"}, **defaults, **values}
    manifest = apply_values(TEMPLATE["job_configuration"]["job_manifest"], values, remove_notset=True)
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    container["env"] += [{"name": k, "value": v} for k, v in values["env"].items()]
    container["args"] = shlex.split(values.get("command") or "prefect flow-run execute")
    return manifest


def test_the_job_template_renders_to_a_job_the_kubernetes_schema_accepts_with_a_gpu_request():
    job = rendered_job(gpus="4")
    kubernetes_validate.validate(job, "1.33.0", strict=True)
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == container["resources"]["requests"]["nvidia.com/gpu"] == "4"
    assert container["image"] == "alignloop:cuda" and container["args"] == ["prefect", "flow-run", "execute"]
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/etc/alignloop", "/var/lib/alignloop", "/dev/shm"} <= mounts


def test_a_job_template_error_is_caught_by_the_schema():
    job = rendered_job()
    job["spec"]["template"]["spec"]["containers"][0]["resource"] = {}  # misspelt field
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, "1.33.0", strict=True)


def test_the_jobs_gpu_count_sets_the_training_processes_the_flow_launches_with_accelerate(monkeypatch, tmp_path):
    container = rendered_job(gpus="4", accelerate_config="fsdp2")["spec"]["template"]["spec"]["containers"][0]
    for entry in container["env"]:
        monkeypatch.setenv(entry["name"], entry["value"])  # strings, or Kubernetes refuses the Job
    raw = {"sources": [{"name": "s", "options": {"path": "w.duckdb"}}], "base_model": {"tiny": True}}
    training = settings_from_dict(raw, base_dir=tmp_path).training
    assert (training.processes, training.accelerate_config) == (4, "fsdp2")


def schedule_blocks(heading: str) -> list[list[str]]:
    """The command lines of each code block under a heading of docs/deploy.md, comments dropped."""
    text = (REPO / "docs" / "deploy.md").read_text()
    section = text[text.index(f"## {heading}\n"):]
    end = section.find("\n## ", 3)  # the next heading, or the page's end
    section = section if end < 0 else section[:end]
    return [[line.split("  #")[0].strip() for line in block.strip().splitlines()]
            for block in re.findall(r"```\n(.*?)```", section, flags=re.S)]


def test_the_deploy_page_schedules_with_the_commands_prefect_yaml_and_compose_document():
    server, event = schedule_blocks("On a Prefect server")
    (compose,) = schedule_blocks("With Docker Compose")
    (kubernetes,) = schedule_blocks("On Kubernetes")
    assert server == header_commands()
    assert compose == [re.search(r"^#\s+(POSTGRES_PASSWORD=.+)$", (DEPLOY / "compose.yaml").read_text(), re.M)[1]]
    emit = shlex.split(event[0])
    assert emit[:3] == ["prefect", "events", "emit"] and [emit[3]] == DEPLOYMENTS["nightly-retrain"]["triggers"][0]["expect"]
    create = next(shlex.split(c) for c in kubernetes if c.startswith("prefect work-pool create"))
    deploy = next(shlex.split(c) for c in kubernetes if c.startswith("prefect deploy"))
    assert (REPO / create[create.index("--base-job-template") + 1]).is_file()
    assert create[3] == DEPLOYMENTS[deploy[deploy.index("--name") + 1]]["work_pool"]["name"] == "alignloop-k8s"
    assert create[create.index("--type") + 1] == "kubernetes"


def test_the_event_trigger_starts_the_process_deployment_with_the_payloads_config():
    (trigger,) = DEPLOYMENTS["nightly-retrain"]["triggers"]
    assert trigger["expect"] == ["alignloop.feedback.arrived"] and trigger["enabled"]
    assert set(trigger["parameters"]) <= set(DEPLOYMENTS["nightly-retrain"]["parameters"])
    assert "event.payload" in trigger["parameters"]["config_path"]

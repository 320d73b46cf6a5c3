"""`alignloop connectors new NAME --kind sql|http|files`: each template, built as a plugin package outside the
repository, installs, is listed, and passes the contract with its own tests; the HTTP template retries what
a retry can fix and refuses the rest at once, without the token."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from alignloop.cli.connectors import scaffold
from alignloop.cli.main import app
from alignloop.connectors.base import ConnectorTerminalError, ConnectorTransientError, Window
from alignloop.connectors.testing import PROMISES

REPO = Path(__file__).resolve().parents[2]
KINDS = ("sql", "http", "files")
runner = CliRunner()


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_a_scaffolded_plugin_outside_the_repository_passes_its_own_contract_tests(kind, tmp_path):
    name = f"acme_{kind}"
    written = scaffold(name, tmp_path / "work", kind)
    package = tmp_path / "work" / f"alignloop-acme-{kind}"
    assert package / "tests" / "test_contract.py" in written
    for path in written:  # the kit ships in the package: nothing written reaches into a checkout
        assert "tests.contract" not in path.read_text(), path
    lint = _run([sys.executable, "-m", "ruff", "check", "--no-cache", "--line-length", "125", str(package)],
                tmp_path, dict(os.environ))
    assert lint.returncode == 0, lint.stdout  # what `new` writes is clean code to build on
    site = tmp_path / "site"
    install = _run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target",
                    str(site), str(package)], tmp_path, dict(os.environ))
    assert install.returncode == 0, install.stderr[-2000:]
    # Only the installed plugin is added: the repository is neither on the path nor the working folder.
    env = {**os.environ, "PYTHONPATH": str(site), "HF_HUB_OFFLINE": "1"}
    listed = _run([sys.executable, "-m", "alignloop.cli.main", "connectors", "list"], tmp_path, env)
    assert listed.returncode == 0 and name in listed.stdout and f"alignloop-acme-{kind}" in listed.stdout, listed.stdout
    outside = _run([sys.executable, "-c", "import tests.contract"], package, env)
    assert outside.returncode != 0  # the contract cannot come from a checkout here
    contract = _run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], package, env)
    assert contract.returncode == 0, contract.stdout[-3000:] + contract.stderr[-2000:]
    assert f"{len(PROMISES)} passed" in contract.stdout, contract.stdout[-500:]


@pytest.mark.slow
def test_a_plugins_provider_joins_the_repositorys_own_contract_suite(tmp_path):
    scaffold("acme_joined", tmp_path, "http")
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target",
                    str(site), str(tmp_path / "alignloop-acme-joined")], check=True, capture_output=True, timeout=300)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)])}
    suite = _run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                  str(REPO / "tests" / "contract" / "test_contract.py"), "-k", "acme_joined"], REPO, env)
    assert suite.returncode == 0, suite.stdout[-3000:]
    assert f"{len(PROMISES)} passed" in suite.stdout, suite.stdout[-500:]


def test_new_writes_the_kind_asked_for_and_refuses_an_unknown_kind(tmp_path):
    for kind, marker in (("sql", "import sqlite3"), ("http", "import urllib.request"), ("files", 'incremental: ClassVar')):
        result = runner.invoke(app, ["connectors", "new", f"feed_{kind}", "--kind", kind, "--dest", str(tmp_path)])
        assert result.exit_code == 0, result.output
        assert marker in (tmp_path / f"alignloop-feed-{kind}" / f"alignloop_feed_{kind}" / "connector.py").read_text()
        assert f"then pytest {tmp_path / f'alignloop-feed-{kind}'}\n" in result.output
    result = runner.invoke(app, ["connectors", "new", "feed_x", "--kind", "kafka", "--dest", str(tmp_path)])
    assert result.exit_code == 2 and "--kind 'kafka': not a connector kind (kinds: sql, http, files)" in result.output
    assert not (tmp_path / "alignloop-feed-x").exists()


# ------------------------------------------------------------------------------ the HTTP template's errors
def _http_connector_class(tmp_path: Path) -> Any:
    scaffold("acme_api", tmp_path, "http")
    path = tmp_path / "alignloop-acme-api" / "alignloop_acme_api" / "connector.py"
    spec = importlib.util.spec_from_file_location("scaffolded_acme_api", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # pydantic resolves the settings' annotations through it
    spec.loader.exec_module(module)
    return module.AcmeApiConnector


@contextmanager
def _scripted_api(statuses: list[int]) -> Iterator[tuple[str, list[str]]]:
    """A loopback API answering each request with the next status (the last repeats); 200 gives one item."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization", ""))
            status = statuses[min(len(seen), len(statuses)) - 1]
            body = json.dumps({"items": [{"id": "x", "ts": "2026-10-01T12:00:00Z", "body": "hi"}], "next": None}
                              if status == 200 else {"error": f"echo {self.headers.get('Authorization')}"}).encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", seen
    finally:
        server.shutdown()
        server.server_close()


def _read(cls: Any, base_url: str, **options: Any) -> list[dict]:
    connector = cls(cls.Settings.model_validate({"base_url": base_url, "token": "tok-SECRET-1", "backoff_s": 0,
                                                 **options}))
    return [row for b in connector.read(Window("feedback", "ts", columns=("id", "ts", "body"))) for row in b.to_pylist()]


def test_http_template_retries_throttling_and_server_errors_then_reads(tmp_path):
    cls = _http_connector_class(tmp_path)
    with _scripted_api([503, 429, 200]) as (url, seen):
        rows = _read(cls, url, retries=2)
    assert [r["id"] for r in rows] == ["x"] and len(seen) == 3
    assert seen[0] == "Bearer tok-SECRET-1"


def test_http_template_gives_up_as_transient_after_its_retries_without_the_token(tmp_path):
    cls = _http_connector_class(tmp_path)
    with _scripted_api([503]) as (url, seen):
        with pytest.raises(ConnectorTransientError) as caught:
            _read(cls, url, retries=2)
    assert len(seen) == 3  # one try and two retries
    text = str(caught.value)
    assert "HTTP 503" in text and "tok-SECRET-1" not in text and "\n" not in text


@pytest.mark.parametrize("status", [401, 403])
def test_http_template_refuses_bad_credentials_at_once_without_the_token(tmp_path, status):
    cls = _http_connector_class(tmp_path)
    with _scripted_api([status]) as (url, seen):
        with pytest.raises(ConnectorTerminalError) as caught:
            _read(cls, url, retries=3)
    assert len(seen) == 1  # never retried
    text = str(caught.value)
    assert f"HTTP {status}" in text and "options.token" in text and "tok-SECRET-1" not in text

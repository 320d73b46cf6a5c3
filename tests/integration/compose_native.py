"""deploy/compose.yaml's services started natively: the same commands and environment, with compose's
host names, ports, volumes and PostgreSQL user rewritten to loopback, free ports, a test folder and
fresh databases on the local server (no container engine runs here)."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import yaml

from tests.contract.servers import PG_HOST, PG_PORT
from tests.integration.services import REPO

COMPOSE = REPO / "deploy" / "compose.yaml"
_URL = re.compile(r"(?P<scheme>[a-z][a-z0-9+]*)://(?:[^@/\s]*@)?(?P<host>[a-z][a-z0-9-]*)(?::\d+)?(?P<path>/[\w-]*)?")


def services() -> dict[str, dict]:
    return yaml.safe_load(COMPOSE.read_text())["services"]


class NativeStack:
    """Rewrites compose's values for services running on this machine."""

    def __init__(self, folder: Path, ports: dict[str, int], databases: dict[str, str]) -> None:
        self.folder, self.ports, self.databases = folder, ports, databases

    def text(self, value: str) -> str:
        value = value.replace("${POSTGRES_PASSWORD}", "").replace("/var/lib/alignloop", str(self.folder))
        return _URL.sub(self._url, value)

    def _url(self, m: re.Match[str]) -> str:
        host, path = m["host"], m["path"] or ""
        if host == "postgres":  # the compose user and password -> the local server's trusted postgres user
            return f"{m['scheme']}://postgres@{PG_HOST}:{PG_PORT}/{self.databases[path.lstrip('/')]}"
        if host in self.ports:
            return f"{m['scheme']}://127.0.0.1:{self.ports[host]}{path}"
        return m[0]

    def argv(self, service: str) -> list[str]:
        """The service's command: --host/--port on loopback and its own free port, one server worker process
        (the machine is shared), python -m for the CLIs."""
        argv = shlex.split(self.text(services()[service]["command"]))
        for i, word in enumerate(argv[:-1]):
            if word == "--host":
                argv[i + 1] = "127.0.0.1"
            elif word == "--port":
                argv[i + 1] = str(self.ports[service])
            elif word == "--workers":
                argv[i + 1] = "1"
        return [sys.executable, "-m", *argv] if argv[0] in ("prefect", "mlflow") else argv

    def environment(self, service: str) -> dict[str, str]:
        return {k: self.text(str(v)) for k, v in (services()[service].get("environment") or {}).items()}


def tool_shims(folder: Path) -> Path:
    """A bin folder whose `prefect` and `mlflow` run with this interpreter (shell commands find them first)."""
    bin_dir = folder / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    for tool in ("prefect", "mlflow", "python"):
        shim = bin_dir / tool
        shim.write_text(f"#!/bin/sh\nexec {sys.executable}{'' if tool == 'python' else f' -m {tool}'} \"$@\"\n")
        shim.chmod(0o755)
    return bin_dir

"""The emulator in its own process, and a small HTTPS client for its ``/_emulator`` control endpoints.

The emulator runs in a separate process so that its CPU time is not counted against the triggers.
The control client verifies the emulator's certificate against the run's self-signed CA.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

from benchmarks.tls import CertFiles


class EmulatorClient:
    """Calls the control endpoints over HTTPS (status requests are the triggers' business)."""

    def __init__(self, base_url: str, cafile: Path, timeout: float = 60.0) -> None:
        self.base_url = base_url
        self.timeout = timeout
        self._ssl = ssl.create_default_context(cafile=str(cafile))

    def _call(self, method: str, path: str, body: object = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.base_url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=self.timeout, context=self._ssl) as response:
            return json.loads(response.read())

    def health(self) -> bool:
        return bool(self._call("GET", "/_emulator/health").get("ok"))

    def reset(self) -> None:
        self._call("POST", "/_emulator/reset")

    def set_tasks(self, api: str, task_ids: list[str], steps: list[dict[str, Any]]) -> None:
        """Create or replace many scripted tasks of one API with the same steps, in one request."""
        specs = [{"api": api, "task_id": task_id, "steps": steps} for task_id in task_ids]
        for start in range(0, len(specs), 5000):
            self._call("POST", "/_emulator/tasks", specs[start : start + 5000])

    def set_scripts(self, api: str, scripts: dict[str, list[dict[str, Any]]]) -> None:
        """Create or replace scripted tasks of one API, each with its own steps, in one request."""
        self._call(
            "POST", "/_emulator/tasks", [{"api": api, "task_id": t, "steps": s} for t, s in scripts.items()]
        )

    def set_limits(self, limits: dict[str, Any]) -> dict[str, Any]:
        """Enforce request budgets from now on, from empty windows (``reset`` lifts them)."""
        result: dict[str, Any] = self._call("POST", "/_emulator/limits", limits)
        return result

    def requests(self, api: str) -> list[dict[str, Any]]:
        """The emulator's request log for one API since the last reset, oldest first."""
        result: list[dict[str, Any]] = self._call("GET", f"/_emulator/requests?api={api}")
        return result

    def changes(self, api: str, task_id: str) -> list[dict[str, Any]]:
        """When each step of a scripted task started answering (epoch seconds), oldest first."""
        query = urllib.parse.urlencode({"api": api, "task_id": task_id})
        result: list[dict[str, Any]] = self._call("GET", f"/_emulator/changes?{query}")
        return result

    def flip(self, api: str, ids: list[str]) -> None:
        self._call("POST", "/_emulator/flip", {"api": api, "ids": ids})

    def stats(self, since: float | None = None, until: float | None = None) -> dict[str, Any]:
        query = "&".join(f"{k}={v!r}" for k, v in (("since", since), ("until", until)) if v is not None)
        result: dict[str, Any] = self._call("GET", "/_emulator/stats" + (f"?{query}" if query else ""))
        return result


class EmulatorProcess:
    """``python -m airflow_provider_taskstatus.emulator`` over TLS on a free loopback port."""

    def __init__(self, certs: CertFiles, log_path: Path) -> None:
        self.certs = certs
        self.log_path = log_path
        self._proc: subprocess.Popen[str] | None = None
        self.base_url = ""
        self.port = 0

    def start(self, wait: float = 60.0) -> EmulatorProcess:
        cmd = [
            sys.executable,
            "-m",
            "airflow_provider_taskstatus.emulator",
            "--port",
            "0",
            "--tls-cert",
            str(self.certs.cert),
            "--tls-key",
            str(self.certs.key),
            "--quiet",
        ]
        with self.log_path.open("w") as stderr:
            self._proc = subprocess.Popen(
                cmd, stdout=subprocess.PIPE, stderr=stderr, text=True, env=dict(os.environ)
            )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()  # "taskstatus-emulator on https://127.0.0.1:PORT | ..."
        if not line.startswith("taskstatus-emulator on https://"):
            self.stop()
            raise RuntimeError(f"emulator did not start (see {self.log_path}): {line!r}")
        self.base_url = line.split()[2]
        self.port = int(self.base_url.rsplit(":", 1)[1])
        client = EmulatorClient(self.base_url, self.certs.cert)
        deadline = time.monotonic() + wait
        while not client.health():
            if time.monotonic() > deadline:
                raise RuntimeError("emulator never answered its health check")
            time.sleep(0.1)
        return self

    @property
    def pid(self) -> int:
        return self._proc.pid if self._proc is not None else 0

    def stop(self) -> None:
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()
        self._proc = None

    def __enter__(self) -> EmulatorProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

"""Real Airflow processes for the end-to-end tests, on whichever release is installed.

A module-scoped fixture, :func:`real_airflow`, builds a throw-away Airflow home (SQLite,
LocalExecutor), starts its own emulator on a loopback port, points the ``coze_default`` /
``truewatch_default`` connections at it through ``AIRFLOW_CONN_*`` variables, migrates the database
and starts the release's processes, each in its own process group with its output in
``<AIRFLOW_HOME>/process-logs/``. Every socket is on 127.0.0.1. The processes are stopped (SIGTERM,
then SIGKILL) once the module's tests are done, whatever happened; when a test fails, the tail of
every process log is attached to its report.

What differs between releases is behind :class:`Driver`:

* Airflow 3 (:class:`RestDriver`): api-server, scheduler, dag-processor and triggerer; runs are
  started and observed through the REST API (``/api/v2``, SimpleAuthManager, every user an admin).
* Airflow 2.11 (:class:`MetadataDbDriver`): a scheduler (which parses the DAGs itself and whose
  LocalExecutor runs ``airflow tasks run``) and a triggerer, nothing else: runs are started with
  ``airflow dags trigger`` and observed by reading the SQLite metadata database, read-only (a CLI
  call costs seconds on a 2-core machine, a query milliseconds; there is no API server to ask).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.fernet import Fernet

from airflow_provider_taskstatus.emulator.server import (
    DEFAULT_COZE_TOKEN,
    EmulatorServer,
    airflow_connections,
)

DAGS_FOLDER = Path(__file__).resolve().parent / "dags"
#: Every DAG in DAGS_FOLDER: the fixture waits until the dag-processor has stored all of them.
E2E_DAG_IDS = (
    "e2e_coze",
    "e2e_truewatch",
    "e2e_coze_timeout",
    "e2e_coze_timeout_soft_fail",
    "e2e_coze_timeout_20s",
)
TERMINAL_RUN_STATES = frozenset({"success", "failed"})
#: Seconds for ``airflow db migrate`` and for all processes to become ready (a loaded 2-core machine).
STARTUP_TIMEOUT = 240.0
#: Seconds a process gets to exit after SIGTERM before its group is killed.
STOP_GRACE = 10.0
LOG_TAIL_LINES = 40

_REAL_AIRFLOW = pytest.StashKey["RealAirflow"]()

#: A second Coze account on the emulator (see ``AIRFLOW_CONN_COZE_TIMEOUT_ACCOUNT``).
TIMEOUT_ACCOUNT_TOKEN = "pat_e2e_timeout_account"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as error:
        return f"<cannot read {path}: {error}>"
    return "\n".join(text.splitlines()[-lines:])


def airflow_env(home: Path, api_port: int, emulator_url: str) -> dict[str, str]:
    """The environment of every Airflow process; nothing ``AIRFLOW*`` is inherited from outside."""
    api_url = f"http://127.0.0.1:{api_port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "8",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
            # Task runners call the execution API of the api-server; every process must sign and
            # check task tokens with the same secret.
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api_url}/execution/",
            "AIRFLOW__API__BASE_URL": f"{api_url}/",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(api_port),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
            # No login: the REST API treats every request as an admin's.
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            # Short intervals, so runs start, resume and finish within seconds.
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "AIRFLOW__SCHEDULER__JOB_HEARTBEAT_SEC": "1",
            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
            # Airflow's own check of deferral timeouts (every 15 s by default) is a backstop that
            # races the trigger's timeout event, due at the same instant. Keep it out of the session,
            # so a timeout the tests see is the trigger's own, with the deadline it carries.
            "AIRFLOW__SCHEDULER__TRIGGER_TIMEOUT_CHECK_INTERVAL": "3600",
            # A task supervisor notices its task ended within this many seconds (default 5). Its
            # late "success" report after a deferral can fail the resumed try of the task if that
            # already runs (apache/airflow#72716): keep the window short.
            "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
            "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
            # A killed triggerer's triggers go to a new one once it missed heartbeats for this long.
            "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "5",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
            "AIRFLOW__LOGGING__COLORED_CONSOLE_LOG": "False",
            **airflow_connections(emulator_url),
            # The timeout DAGs poll through an account of their own: a rate limit pauses every wait
            # of its account (by design), and the transient scenario provokes one meanwhile.
            "AIRFLOW_CONN_COZE_TIMEOUT_ACCOUNT": json.dumps(
                {"conn_type": "coze", "host": emulator_url, "password": TIMEOUT_ACCOUNT_TOKEN}
            ),
        }
    )
    return env


#: The processes, by name: their ``airflow`` sub-command. Log servers are off (logs are read from files).
PROCESS_COMMANDS: dict[str, Callable[[int], list[str]]] = {
    "api-server": lambda port: ["api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
    "scheduler": lambda port: ["scheduler", "--skip-serve-logs"],
    "dag-processor": lambda port: ["dag-processor"],
    "triggerer": lambda port: ["triggerer", "--skip-serve-logs"],
}


class RealAirflow:
    """A running Airflow deployment, its REST API, its log files, and the emulator it talks to."""

    def __init__(self, home: Path, emulator: EmulatorServer) -> None:
        self.home = home
        self.emulator = emulator
        self.api_port = _free_port()
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        self.env = airflow_env(home, self.api_port, emulator.base_url)
        self.log_dir = home / "process-logs"
        self.log_dir.mkdir()
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.http = requests.Session()
        self.http.trust_env = False  # loopback only: never a proxy from the environment
        self._runs = 0

    # --- processes -------------------------------------------------------------------------------

    def run_cli(self, *args: str, timeout: float = STARTUP_TIMEOUT) -> None:
        """Run one ``airflow`` command to completion; raise with its output if it fails."""
        result = subprocess.run(
            [sys.executable, "-m", "airflow", *args],
            env=self.env,
            cwd=self.home,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"airflow {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
            )

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def start(self, name: str) -> None:
        """Start (or restart) one process; its output is appended to its log file."""
        old = self.processes.get(name)
        if old is not None and old.poll() is None:
            raise RuntimeError(f"{name} is already running (pid {old.pid})")
        with self.log_path(name).open("ab") as log:
            log.write(f"\n===== starting {name} at {time.strftime('%H:%M:%S')} =====\n".encode())
            log.flush()
            self.processes[name] = subprocess.Popen(
                [sys.executable, "-m", "airflow", *PROCESS_COMMANDS[name](self.api_port)],
                env=self.env,
                cwd=self.home,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stopping it stops its children too
            )

    def kill(self, name: str, sig: signal.Signals = signal.SIGKILL) -> None:
        """Send ``sig`` to the process group of ``name`` and wait for the leader to exit."""
        proc = self.processes[name]
        self._signal_group(proc, sig)
        proc.wait(timeout=STOP_GRACE)

    def stop_all(self) -> None:
        """SIGTERM to every process group, then SIGKILL to those still there after the grace period."""
        for proc in self.processes.values():
            self._signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        for proc in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        for proc in self.processes.values():
            # Children may outlive their leader: kill the whole group in any case.
            self._signal_group(proc, signal.SIGKILL)
            if proc.poll() is None:
                proc.wait(timeout=STOP_GRACE)

    @staticmethod
    def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):  # the group is gone already
            os.killpg(proc.pid, sig)

    def check_alive(self) -> None:
        for name, proc in self.processes.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with status {proc.returncode}")

    def diagnostics(self) -> str:
        """The tail of every process log, for a failure report."""
        parts = []
        for name in PROCESS_COMMANDS:
            proc = self.processes.get(name)
            status = "not started" if proc is None else f"pid {proc.pid}, exit status {proc.poll()}"
            parts.append(f"----- {name} ({status}): {self.log_path(name)}\n{_tail(self.log_path(name))}")
        return "\n".join(parts)

    # --- readiness -------------------------------------------------------------------------------

    def wait_until_ready(self, timeout: float = STARTUP_TIMEOUT) -> None:
        """Until the API answers, every job is healthy and the dag-processor stored every E2E DAG."""
        deadline = time.monotonic() + timeout
        last = "nothing yet"
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                health = self.api("GET", "/api/v2/monitor/health")
                unhealthy = [
                    part
                    for part in ("metadatabase", "scheduler", "triggerer", "dag_processor")
                    if (health.get(part) or {}).get("status") != "healthy"
                ]
                dags = {d["dag_id"] for d in self.api("GET", "/api/v2/dags", params={"limit": 100})["dags"]}
                missing = sorted(set(E2E_DAG_IDS) - dags)
                if not unhealthy and not missing:
                    return
                last = f"unhealthy: {unhealthy}, DAGs not parsed yet: {missing}"
            except (requests.RequestException, ValueError) as error:
                last = repr(error)
            time.sleep(1)
        raise TimeoutError(f"Airflow not ready after {timeout:.0f} s; last: {last}")

    # --- REST API --------------------------------------------------------------------------------

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, self.api_url + path, timeout=30, **kwargs)
        if response.status_code >= 400:
            raise RuntimeError(f"{method} {path} → HTTP {response.status_code}: {response.text[:2000]}")
        return response.json()

    def trigger(self, dag_id: str, conf: dict[str, Any]) -> str:
        """Start a DAG run with ``conf``; return its run id."""
        self._runs += 1
        run_id = f"e2e_{self._runs}_{int(time.time())}"
        self.api(
            "POST",
            f"/api/v2/dags/{dag_id}/dagRuns",
            json={"dag_run_id": run_id, "logical_date": None, "conf": conf},
        )
        return run_id

    def run_state(self, dag_id: str, run_id: str) -> str:
        return str(self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")["state"])

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 120.0) -> str:
        """Wait (bounded) until the run is ``success`` or ``failed``; return that state."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.run_state(dag_id, run_id)
            if state in TERMINAL_RUN_STATES:
                return state
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{dag_id} {run_id} still {state} after {timeout:.0f} s; tasks: "
                    f"{self.task_instances(dag_id, run_id)}"
                )
            self.check_alive()
            time.sleep(0.5)

    def task_instances(self, dag_id: str, run_id: str) -> dict[str, dict[str, Any]]:
        """Task id → the API's task instance (``state``, ``try_number``, ...)."""
        found = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        return {ti["task_id"]: ti for ti in found["task_instances"]}

    def wait_for_task_state(
        self, dag_id: str, run_id: str, task_id: str, state: str, timeout: float = 60.0
    ) -> None:
        deadline = time.monotonic() + timeout
        while (current := self.task_instances(dag_id, run_id).get(task_id, {}).get("state")) != state:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{dag_id}.{task_id} is {current}, not {state}, after {timeout:.0f} s")
            self.check_alive()
            time.sleep(0.3)

    def xcom(self, dag_id: str, run_id: str, task_id: str) -> Any:
        """The task's ``return_value`` XCom."""
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value"
        return self.api("GET", path, params={"deserialize": "true", "stringify": "false"})["value"]

    # --- logs ------------------------------------------------------------------------------------

    def task_log(self, dag_id: str, run_id: str, task_id: str) -> str:
        """Every log file of the task (all attempts, and the trigger's part), concatenated."""
        folder = self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
        files = sorted(p for p in folder.rglob("*") if p.is_file())
        return "\n".join(p.read_text(errors="replace") for p in files)

    def all_logs(self) -> dict[Path, str]:
        """Every log file Airflow and the processes wrote: task, trigger, DAG-processing, process output."""
        files = [p for folder in (self.home / "logs", self.log_dir) for p in folder.rglob("*") if p.is_file()]
        return {p: p.read_text(errors="replace") for p in files}


@pytest.fixture(scope="module")
def real_airflow(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[RealAirflow]:
    """Airflow's four processes, ready, on a fresh SQLite home; stopped after the module's tests."""
    home = tmp_path_factory.mktemp("airflow-e2e-home")
    with EmulatorServer(
        host="127.0.0.1", port=0, coze_tokens=(DEFAULT_COZE_TOKEN, TIMEOUT_ACCOUNT_TOKEN)
    ) as emulator:
        airflow = RealAirflow(home, emulator)
        request.config.stash[_REAL_AIRFLOW] = airflow
        try:
            try:
                airflow.run_cli("db", "migrate")
                for name in PROCESS_COMMANDS:
                    airflow.start(name)
                airflow.wait_until_ready()
            except Exception as error:
                raise RuntimeError(f"Airflow did not start: {error}\n{airflow.diagnostics()}") from error
            yield airflow
        finally:
            airflow.stop_all()
            del request.config.stash[_REAL_AIRFLOW]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach the tail of every Airflow process log to the report of a failed e2e test."""
    report = yield
    airflow = item.config.stash.get(_REAL_AIRFLOW, None)
    if report.failed and airflow is not None:
        report.sections.append(("Airflow process logs (tail)", airflow.diagnostics()))
    return report

"""Real Airflow processes for the end-to-end tests, on whichever release is installed (2.11 or 3.x).

A module-scoped fixture, :func:`real_airflow`, builds a throw-away Airflow home (SQLite,
LocalExecutor), starts its own emulator on a loopback port, points the ``coze_default`` /
``truewatch_default`` connections at it through ``AIRFLOW_CONN_*`` variables, migrates the database
and starts the release's processes, each in a session of its own with its output in
``<AIRFLOW_HOME>/process-logs/``. Every socket is on 127.0.0.1. The processes are stopped (SIGTERM,
then SIGKILL) once the module's tests are done, whatever happened; when a test fails, the tail of
every process log is attached to its report.

How runs are started and watched differs per release, behind :class:`Driver`:

* Airflow 3, :class:`RestDriver`: api-server, scheduler, dag-processor and triggerer; runs go through
  the REST API (``/api/v2``; SimpleAuthManager with every user an admin, so no login).
* Airflow 2.11, :class:`MetadataDbDriver`: a scheduler (it parses the DAG files itself, and its
  LocalExecutor runs ``airflow tasks run``) and a triggerer, nothing else. There is no API server to
  ask: runs are started with ``airflow dags trigger`` and watched by reading the SQLite metadata
  database (a CLI call costs seconds on a 2-core machine, a query a millisecond).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any, ClassVar

import psutil
import pytest
import requests
from cryptography.fernet import Fernet

from airflow_provider_taskstatus.compat import AIRFLOW_V_3_0_PLUS
from airflow_provider_taskstatus.emulator.server import (
    DEFAULT_COZE_TOKEN,
    EmulatorServer,
    airflow_connections,
)

DAGS_FOLDER = Path(__file__).resolve().parent / "dags"
#: Every DAG in DAGS_FOLDER: the fixture waits until Airflow has stored all of them.
E2E_DAG_IDS = (
    "e2e_coze",
    "e2e_truewatch",
    "e2e_coze_timeout",
    "e2e_coze_timeout_soft_fail",
    "e2e_coze_timeout_30s",
)
TERMINAL_RUN_STATES = frozenset({"success", "failed"})
#: Seconds for ``airflow db migrate`` and for all processes to become ready (a loaded 2-core machine).
STARTUP_TIMEOUT = 240.0
#: Seconds a process gets to exit after SIGTERM before its session is killed.
STOP_GRACE = 10.0
LOG_TAIL_LINES = 40
#: Seconds between parses of an unchanged DAG file (default 30): the files never change in a session,
#: and every parse costs CPU the timed scenarios need on a 2-core machine.
REPARSE_INTERVAL = 600
#: Seconds without a heartbeat after which a job counts as dead (the triggerer's own threshold below).
HEALTH_CHECK_THRESHOLD = 5

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


def _airflow_3_settings(api_port: int) -> dict[str, str]:
    """Settings only Airflow 3 has: its api-server, which task runners call, and its dag-processor."""
    api_url = f"http://127.0.0.1:{api_port}"
    return {
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
        # A task supervisor notices its task ended within this many seconds (default 5). Its
        # late "success" report after a deferral can fail the resumed try of the task if that
        # already runs (apache/airflow#72716): keep the window short.
        "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": str(REPARSE_INTERVAL),
    }


#: Settings for Airflow 2.11, where the scheduler parses the DAG files (no [dag_processor] section).
AIRFLOW_2_SETTINGS = {
    # LocalExecutor refuses SQLite (one writer at a time) unless told otherwise, as Airflow's own
    # tests do; a handful of short task processes stays within what SQLite's locking copes with.
    "_AIRFLOW__SKIP_DATABASE_EXECUTOR_COMPATIBILITY_CHECK": "1",
    "AIRFLOW__SCHEDULER__STANDALONE_DAG_PROCESSOR": "False",
    "AIRFLOW__SCHEDULER__DAG_DIR_LIST_INTERVAL": "5",
    "AIRFLOW__SCHEDULER__PARSING_PROCESSES": "1",
    "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": str(REPARSE_INTERVAL),
}


def airflow_env(home: Path, api_port: int, emulator_url: str) -> dict[str, str]:
    """The environment of every Airflow process; nothing ``AIRFLOW*`` is inherited from outside."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "_AIRFLOW"))}
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
            # Short intervals, so runs start, resume and finish within seconds.
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "AIRFLOW__SCHEDULER__JOB_HEARTBEAT_SEC": "1",
            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
            # Airflow's own check of deferral timeouts (every 15 s by default) is a backstop that
            # races the trigger's timeout event, due at the same instant. Keep it out of the session,
            # so a timeout the tests see is the trigger's own, with the deadline it carries.
            "AIRFLOW__SCHEDULER__TRIGGER_TIMEOUT_CHECK_INTERVAL": "3600",
            "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
            # A killed triggerer's triggers go to a new one once it missed heartbeats for this long.
            "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": str(HEALTH_CHECK_THRESHOLD),
            "AIRFLOW__LOGGING__COLORED_CONSOLE_LOG": "False",
            **(_airflow_3_settings(api_port) if AIRFLOW_V_3_0_PLUS else AIRFLOW_2_SETTINGS),
            **airflow_connections(emulator_url),
            # The timeout DAGs poll through an account of their own: a rate limit pauses every wait
            # of its account (by design), and the transient scenario provokes one meanwhile.
            "AIRFLOW_CONN_COZE_TIMEOUT_ACCOUNT": json.dumps(
                {"conn_type": "coze", "host": emulator_url, "password": TIMEOUT_ACCOUNT_TOKEN}
            ),
        }
    )
    return env


#: Every process, by name: its ``airflow`` sub-command. Log servers are off (logs are read from files).
#: Which of them a deployment runs is :attr:`Driver.processes`.
PROCESS_COMMANDS: dict[str, Callable[[int], list[str]]] = {
    "api-server": lambda port: ["api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
    "scheduler": lambda port: ["scheduler", "--skip-serve-logs"],
    "dag-processor": lambda port: ["dag-processor"],
    "triggerer": lambda port: ["triggerer", "--skip-serve-logs"],
}


class Driver(ABC):
    """How the tests start DAG runs and watch them: the part of a deployment that differs per release."""

    #: The processes the release needs (keys of :data:`PROCESS_COMMANDS`), in start order.
    processes: ClassVar[tuple[str, ...]]

    def __init__(self, airflow: RealAirflow) -> None:
        self.airflow = airflow

    @abstractmethod
    def not_ready(self) -> str | None:
        """What the deployment still lacks (a healthy job, a parsed DAG), or None once it is ready."""

    @abstractmethod
    def trigger(self, dag_id: str, run_id: str, conf: dict[str, Any]) -> None:
        """Create the DAG run ``run_id`` with ``conf``."""

    @abstractmethod
    def run_state(self, dag_id: str, run_id: str) -> str | None:
        """The run's state, None while it does not exist."""

    @abstractmethod
    def task_instances(self, dag_id: str, run_id: str) -> dict[str, dict[str, Any]]:
        """Task id → its task instance, with at least ``state`` and ``try_number``."""

    @abstractmethod
    def xcom(self, dag_id: str, run_id: str, task_id: str) -> Any:
        """The task's ``return_value`` XCom, deserialized."""


class RestDriver(Driver):
    """Airflow 3: everything through the api-server's REST API, as a user's tooling would do it."""

    processes = ("api-server", "scheduler", "dag-processor", "triggerer")

    def not_ready(self) -> str | None:
        health = self.airflow.api("GET", "/api/v2/monitor/health")
        unhealthy = [
            part
            for part in ("metadatabase", "scheduler", "triggerer", "dag_processor")
            if (health.get(part) or {}).get("status") != "healthy"
        ]
        dags = {d["dag_id"] for d in self.airflow.api("GET", "/api/v2/dags", params={"limit": 100})["dags"]}
        missing = sorted(set(E2E_DAG_IDS) - dags)
        return f"unhealthy: {unhealthy}, DAGs not parsed yet: {missing}" if unhealthy or missing else None

    def trigger(self, dag_id: str, run_id: str, conf: dict[str, Any]) -> None:
        self.airflow.api(
            "POST",
            f"/api/v2/dags/{dag_id}/dagRuns",
            json={"dag_run_id": run_id, "logical_date": None, "conf": conf},
        )

    def run_state(self, dag_id: str, run_id: str) -> str | None:
        return str(self.airflow.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")["state"])

    def task_instances(self, dag_id: str, run_id: str) -> dict[str, dict[str, Any]]:
        found = self.airflow.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        return {ti["task_id"]: ti for ti in found["task_instances"]}

    def xcom(self, dag_id: str, run_id: str, task_id: str) -> Any:
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value"
        return self.airflow.api("GET", path, params={"deserialize": "true", "stringify": "false"})["value"]


class MetadataDbDriver(Driver):
    """Airflow 2.11: runs started with the CLI, watched in the SQLite metadata database.

    Each query has a connection of its own, in autocommit mode, so it never holds a lock that the
    scheduler, triggerer or a task process would wait for beyond the query itself. ``query_only``
    rather than a read-only open: a process SIGKILLed mid-transaction (the triggerer-restart test)
    leaves a hot journal that only a writable connection may roll back.
    """

    processes = ("scheduler", "triggerer")

    def _query(self, sql: str, *params: Any) -> list[sqlite3.Row]:
        db_file = self.airflow.home / "airflow.db"
        with contextlib.closing(sqlite3.connect(db_file, timeout=10, isolation_level=None)) as db:
            db.execute("PRAGMA query_only = ON")
            db.row_factory = sqlite3.Row
            return db.execute(sql, params).fetchall()

    def not_ready(self) -> str | None:
        # What the 3.x health endpoint checks: a running job of each kind with a recent heartbeat
        # (2.11 stores naive UTC timestamps, which is what julianday('now') is).
        alive = self._query(
            "SELECT DISTINCT job_type FROM job WHERE state = 'running'"
            " AND (julianday('now') - julianday(latest_heartbeat)) * 86400 < ?",
            HEALTH_CHECK_THRESHOLD,
        )
        unhealthy = sorted({"SchedulerJob", "TriggererJob"} - {row["job_type"] for row in alive})
        # Triggerable: parsed, serialized (``dags trigger`` reads that) and unpaused.
        dags = self._query(
            "SELECT dag.dag_id FROM dag JOIN serialized_dag USING (dag_id) WHERE is_active AND NOT is_paused"
        )
        missing = sorted(set(E2E_DAG_IDS) - {row["dag_id"] for row in dags})
        return f"unhealthy: {unhealthy}, DAGs not parsed yet: {missing}" if unhealthy or missing else None

    def trigger(self, dag_id: str, run_id: str, conf: dict[str, Any]) -> None:
        # Keep the microseconds of the logical date: two runs of a DAG within a second must not clash.
        args = ["--run-id", run_id, "--conf", json.dumps(conf), "--no-replace-microseconds"]
        self.airflow.run_cli("dags", "trigger", dag_id, *args)

    def run_state(self, dag_id: str, run_id: str) -> str | None:
        rows = self._query("SELECT state FROM dag_run WHERE dag_id = ? AND run_id = ?", dag_id, run_id)
        return str(rows[0]["state"]) if rows else None

    def task_instances(self, dag_id: str, run_id: str) -> dict[str, dict[str, Any]]:
        rows = self._query(
            "SELECT task_id, state, try_number, start_date, end_date FROM task_instance"
            " WHERE dag_id = ? AND run_id = ? AND map_index = -1",
            dag_id,
            run_id,
        )
        return {row["task_id"]: dict(row) for row in rows}

    def xcom(self, dag_id: str, run_id: str, task_id: str) -> Any:
        rows = self._query(
            "SELECT value FROM xcom WHERE dag_id = ? AND run_id = ? AND task_id = ?"
            " AND map_index = -1 AND key = 'return_value'",
            dag_id,
            run_id,
            task_id,
        )
        if not rows:
            raise LookupError(f"no return_value XCom for {dag_id}.{task_id} in {run_id}")
        # 2.11 stores XComs as JSON (``enable_xcom_pickling`` is off by default).
        return json.loads(rows[0]["value"])


class RealAirflow:
    """A running Airflow deployment, its log files, the emulator it talks to, and its release's driver."""

    def __init__(self, home: Path, emulator: EmulatorServer) -> None:
        self.home = home
        self.emulator = emulator
        self.api_port = _free_port()
        self.api_url = f"http://127.0.0.1:{self.api_port}"  # Airflow 3 only (2.11 runs no API server)
        self.env = airflow_env(home, self.api_port, emulator.base_url)
        self.log_dir = home / "process-logs"
        self.log_dir.mkdir()
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.http = requests.Session()
        self.http.trust_env = False  # loopback only: never a proxy from the environment
        self.driver: Driver = RestDriver(self) if AIRFLOW_V_3_0_PLUS else MetadataDbDriver(self)
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
                start_new_session=True,  # its own session: stopping it stops its descendants too
            )

    def start_all(self) -> None:
        """Start every process the release needs."""
        for name in self.driver.processes:
            self.start(name)

    def kill(self, name: str, sig: signal.Signals = signal.SIGKILL) -> None:
        """Send ``sig`` to every process of the session of ``name`` and wait for its leader to exit."""
        proc = self.processes[name]
        self._signal_session(proc, sig)
        proc.wait(timeout=STOP_GRACE)

    def stop_all(self) -> None:
        """SIGTERM to every process, then SIGKILL to everything in their sessions after the grace period.

        SIGTERM goes to the leader alone, as a service manager sends it: it stops its children itself
        (signalled at once, the executor's and triggerer's helpers die under their leader's feet and
        it shuts down with errors, or waits for them until killed).
        """
        for proc in self.processes.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        for proc in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        for proc in self.processes.values():
            # Descendants may outlive their leader: kill the whole session in any case.
            self._signal_session(proc, signal.SIGKILL)
            if proc.poll() is None:
                proc.wait(timeout=STOP_GRACE)

    @staticmethod
    def _signal_session(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
        """Signal every process in the session ``proc`` leads, orphans included.

        A session, not the process group: Airflow moves task processes (2.11 and 3.x), 2.11's
        DAG-processor manager and 3.x's trigger runner into process groups of their own, and those
        stay in the session.
        """
        for pid in psutil.pids():
            with contextlib.suppress(ProcessLookupError, PermissionError):  # gone already
                if os.getsid(pid) == proc.pid:
                    os.kill(pid, sig)

    def check_alive(self) -> None:
        for name, proc in self.processes.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with status {proc.returncode}")

    def diagnostics(self) -> str:
        """The tail of every process log, for a failure report."""
        parts = []
        for name in dict.fromkeys([*self.driver.processes, *self.processes]):
            proc = self.processes.get(name)
            status = "not started" if proc is None else f"pid {proc.pid}, exit status {proc.poll()}"
            parts.append(f"----- {name} ({status}): {self.log_path(name)}\n{_tail(self.log_path(name))}")
        return "\n".join(parts)

    # --- readiness -------------------------------------------------------------------------------

    def wait_until_ready(self, timeout: float = STARTUP_TIMEOUT) -> None:
        """Until every job is healthy and Airflow stored every E2E DAG (:meth:`Driver.not_ready`)."""
        deadline = time.monotonic() + timeout
        last: str | None = "nothing yet"
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                last = self.driver.not_ready()
            except (requests.RequestException, ValueError, sqlite3.Error) as error:
                last = repr(error)
            if last is None:
                return
            time.sleep(1)
        raise TimeoutError(f"Airflow not ready after {timeout:.0f} s; last: {last}")

    # --- runs ------------------------------------------------------------------------------------

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        """One call to the REST API of the api-server (Airflow 3)."""
        response = self.http.request(method, self.api_url + path, timeout=30, **kwargs)
        if response.status_code >= 400:
            raise RuntimeError(f"{method} {path} → HTTP {response.status_code}: {response.text[:2000]}")
        return response.json()

    def trigger(self, dag_id: str, conf: dict[str, Any]) -> str:
        """Start a DAG run with ``conf``; return its run id.

        One at a time: side by side, Airflow 3's api-server (threads of one process) times out on
        SQLite's write lock, and on 2.11 CLI calls gain nothing on 2 cores (each is CPU-bound).
        """
        self._runs += 1
        run_id = f"e2e_{self._runs}_{int(time.time())}"
        self.driver.trigger(dag_id, run_id, conf)
        return run_id

    def run_state(self, dag_id: str, run_id: str) -> str | None:
        return self.driver.run_state(dag_id, run_id)

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 120.0) -> str:
        """Wait (bounded) until the run is ``success`` or ``failed``; return that state."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.run_state(dag_id, run_id)
            if state in TERMINAL_RUN_STATES:
                return str(state)
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{dag_id} {run_id} still {state} after {timeout:.0f} s; tasks: "
                    f"{self.task_instances(dag_id, run_id)}"
                )
            self.check_alive()
            time.sleep(0.5)

    def task_instances(self, dag_id: str, run_id: str) -> dict[str, dict[str, Any]]:
        """Task id → its task instance (``state``, ``try_number``, ...)."""
        return self.driver.task_instances(dag_id, run_id)

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
        return self.driver.xcom(dag_id, run_id, task_id)

    # --- logs ------------------------------------------------------------------------------------

    def task_log(self, dag_id: str, run_id: str, task_id: str) -> str:
        """Every log file of the task (all attempts, and the trigger's part), concatenated.

        The same on every release: the default ``log_filename_template`` has been
        ``dag_id=…/run_id=…/task_id=…/attempt=N.log`` since 2.x, and the triggerer writes its part
        next to it (``attempt=N.log.trigger.<job id>.log``).
        """
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
    """The release's Airflow processes, ready, on a fresh SQLite home; stopped after the module's tests."""
    home = tmp_path_factory.mktemp("airflow-e2e-home")
    with EmulatorServer(
        host="127.0.0.1", port=0, coze_tokens=(DEFAULT_COZE_TOKEN, TIMEOUT_ACCOUNT_TOKEN)
    ) as emulator:
        airflow = RealAirflow(home, emulator)
        request.config.stash[_REAL_AIRFLOW] = airflow
        try:
            try:
                airflow.run_cli("db", "migrate")
                airflow.start_all()
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

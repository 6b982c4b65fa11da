"""A running Airflow deployment: its processes, logs and emulator, driven the way its release allows."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import requests

from airflow_provider_taskstatus.compat import AIRFLOW_V_3_0_PLUS
from airflow_provider_taskstatus.emulator.server import (
    EmulatorServer,
)
from tests.real_airflow.drivers import Driver, MetadataDbDriver, RestDriver
from tests.real_airflow.settings import (
    PROCESS_COMMANDS,
    STARTUP_TIMEOUT,
    STOP_GRACE,
    TERMINAL_RUN_STATES,
    airflow_env,
    free_port,
    tail,
)


class RealAirflow:
    """A running Airflow deployment, its log files, the emulator it talks to, and its release's driver."""

    def __init__(self, home: Path, emulator: EmulatorServer) -> None:
        self.home = home
        self.emulator = emulator
        self.api_port = free_port()
        self.api_url = f"http://127.0.0.1:{self.api_port}"  # Airflow 3 only (2.11 runs no API server)
        self.env = airflow_env(home, self.api_port, emulator.base_url)
        self.log_dir = home / "process-logs"
        self.log_dir.mkdir()
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        #: The processes stopped or killed on purpose (:meth:`stop`, :meth:`kill`) and not started since.
        self.stopped: set[str] = set()
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
        self.stopped.discard(name)

    def start_all(self) -> None:
        """Start every process the release needs."""
        for name in self.driver.processes:
            self.start(name)

    def kill(self, name: str, sig: signal.Signals = signal.SIGKILL) -> None:
        """Send ``sig`` to every process of the session of ``name`` and wait for its leader to exit.

        After SIGKILL, wait until the whole session is gone: a killed child (3.x's trigger runner)
        may take a moment longer than its leader to die.
        """
        proc = self.processes[name]
        self.stopped.add(name)
        self._signal_session(proc, sig)
        proc.wait(timeout=STOP_GRACE)
        deadline = time.monotonic() + STOP_GRACE
        while sig == signal.SIGKILL and (left := self.session_pids(name)):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name}: processes {left} still alive {STOP_GRACE:.0f} s after SIGKILL")
            time.sleep(0.05)

    def stop(self, name: str) -> None:
        """Stop one process as :meth:`stop_all` does: SIGTERM to its leader, then SIGKILL to its session."""
        proc = self.processes[name]
        self.stopped.add(name)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=STOP_GRACE)
        self._signal_session(proc, signal.SIGKILL)
        proc.wait(timeout=STOP_GRACE)

    def session_pids(self, name: str) -> list[int]:
        """The live processes in the session of ``name`` (its leader and every descendant left)."""
        leader = self.processes[name].pid
        pids = []
        for pid in psutil.pids():
            with contextlib.suppress(ProcessLookupError, PermissionError, psutil.Error):  # gone already
                if os.getsid(pid) == leader and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    pids.append(pid)
        return pids

    def client_ports(self, name: str, server_port: int) -> set[int]:
        """The local ports of the TCP connections the session of ``name`` holds open to ``server_port``."""
        return set().union(*self.client_connections(name, server_port).values())

    def client_connections(self, name: str, server_port: int) -> dict[int, set[int]]:
        """Pid → the local ports of its TCP connections to ``server_port``, for each process of the
        session of ``name`` that holds one open (a task process polling the emulator, say)."""
        found: dict[int, set[int]] = {}
        for pid in self.session_pids(name):
            with contextlib.suppress(psutil.Error):
                for conn in psutil.Process(pid).net_connections(kind="tcp"):
                    if conn.raddr and conn.raddr.port == server_port:
                        found.setdefault(pid, set()).add(conn.laddr.port)
        return found

    def start_triggerer(self, name: str, timeout: float = STARTUP_TIMEOUT) -> int:
        """Start the triggerer process ``name``; return its job id once its job runs.

        The job table has no pid: the triggerer's job is the running one that was not there before,
        so no other triggerer may be starting meanwhile (two new jobs raise a RuntimeError).
        """
        deadline = time.monotonic() + timeout
        last: str = "nothing yet"
        before: set[int] | None = None
        while True:
            try:
                if before is None:  # the api-server may still be starting
                    before = self.driver.running_triggerer_ids()
                    self.start(name)
                new = self.driver.running_triggerer_ids() - before
            except (requests.RequestException, ValueError, sqlite3.Error) as error:
                last = repr(error)
            else:
                if len(new) > 1:
                    raise RuntimeError(f"{name}: more than one new triggerer job: {sorted(new)}")
                if new:
                    return new.pop()
                last = "no new running triggerer job"
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name}: no triggerer job after {timeout:.0f} s; last: {last}")
            self.check_alive()
            time.sleep(0.3)

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
        """Raise if a process exited that was not stopped or killed on purpose."""
        for name, proc in self.processes.items():
            if name not in self.stopped and proc.poll() is not None:
                raise RuntimeError(f"{name} exited with status {proc.returncode}")

    def diagnostics(self) -> str:
        """The tail of every process log, for a failure report."""
        parts = []
        for name in dict.fromkeys([*self.driver.processes, *self.processes]):
            proc = self.processes.get(name)
            status = "not started" if proc is None else f"pid {proc.pid}, exit status {proc.poll()}"
            parts.append(f"----- {name} ({status}): {self.log_path(name)}\n{tail(self.log_path(name))}")
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

    def task_log(self, dag_id: str, run_id: str, task_id: str, attempt: int | None = None) -> str:
        """Every log file of the task (all attempts, and the trigger's part), concatenated; with
        ``attempt``, those of that try alone.

        The same on every release: the default ``log_filename_template`` has been
        ``dag_id=…/run_id=…/task_id=…/attempt=N.log`` since 2.x, and the triggerer writes its part
        next to it (``attempt=N.log.trigger.<job id>.log``).
        """
        folder = self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
        pattern = "*" if attempt is None else f"attempt={attempt}.log*"
        files = sorted(p for p in folder.rglob(pattern) if p.is_file())
        return "\n".join(p.read_text(errors="replace") for p in files)

    def all_logs(self) -> dict[Path, str]:
        """Every log file Airflow and the processes wrote: task, trigger, DAG-processing, process output."""
        files = [p for folder in (self.home / "logs", self.log_dir) for p in folder.rglob("*") if p.is_file()]
        return {p: p.read_text(errors="replace") for p in files}

"""Run every example DAG against the local emulator with ``airflow dags test`` (what ``make demo`` runs).

It starts the emulator in-process on a free loopback port, prepares an Airflow home of its own in
``<repo>/.airflow`` (SQLite, migrated once), points the ``coze_default`` and ``truewatch_default``
connections at the emulator through ``AIRFLOW_CONN_*`` variables, runs each DAG, and prints what
happened. Exit status 0 when every run ended in the state it should, 1 otherwise.

The helpers (:func:`airflow_env`, :func:`ensure_db`, :func:`run_dag`) are also what
``tests/test_example_dags.py`` uses.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from types import FrameType
from typing import Any

from airflow_provider_taskstatus.emulator import EmulatorServer, airflow_connections

REPO = Path(__file__).resolve().parent.parent
DAGS_FOLDER = REPO / "example_dags"
DEFAULT_AIRFLOW_HOME = REPO / ".airflow"
#: Seconds one ``airflow dags test`` may take before it is killed (the DAGs' sensors allow 300 s).
RUN_TIMEOUT = 240.0
#: Marks a migrated database: the Airflow version that migrated it.
DB_STAMP = ".taskstatus-db-version"

#: Terminal colour codes: Airflow 3.0 colours its rich tracebacks even when not writing to a terminal.
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
#: The start of a log record (2.11's "[2026-…", 3.x's "2026-…"): not part of a wrapped message.
_LOG_RECORD = re.compile(r"^(\[|\d{4}-\d\d-\d\d)")
_STATE = re.compile(r"DagRun Finished: dag_id=(?P<dag_id>[^,]+),.*?, state=(?P<state>\w+)")
_RETURNED = re.compile(r"Done\. Returned value was: (.*?) *(?:\[[\w.]+\] loc=\S+)?$", re.MULTILINE)
_EXCEPTION = re.compile(r"^(?:[\w.]+\.)?\w*(?:Exception|Error|Timeout): (.+)$", re.MULTILINE)


@dataclass(frozen=True)
class DagRunSpec:
    """One run the demo makes, and the DagRun state it should end in."""

    dag_id: str
    conf: dict[str, Any] | None = None
    expected: str = "success"


DEMO_RUNS = (
    DagRunSpec("example_coze_copy"),
    DagRunSpec("example_coze_copy", {"copy_task_id": "demo-copy-failed"}, expected="failed"),
    DagRunSpec("example_truewatch_export"),
    DagRunSpec("example_truewatch_import"),
    DagRunSpec("example_coze_copy_operator"),
    DagRunSpec("example_coze_copy_mapped"),
    DagRunSpec("example_truewatch_export_import"),
)


@dataclass(frozen=True)
class DagResult:
    """The outcome of one ``airflow dags test``: the DagRun state and the combined output."""

    dag_id: str
    conf: dict[str, Any] | None
    #: ``success`` / ``failed`` as logged by Airflow; ``timeout`` or ``unknown`` when it logged none.
    state: str
    returncode: int
    seconds: float
    output: str

    @property
    def returned(self) -> list[str]:
        """What the DAG's Python tasks returned, as logged (``Done. Returned value was: …``).

        Airflow 2.11's ``dags test`` prints each task log line twice in a row (console and task
        handlers): a line repeating the one just before it is the same return value.
        """
        found: list[str] = []
        previous = None
        for line in self.output.splitlines():
            match = _RETURNED.search(line)
            if match and not (previous and previous.group(1) == match.group(1)):
                found.append(match.group(1))
            previous = match
        return found

    @property
    def failure(self) -> str | None:
        """The message of the last exception in the output (the sensor's, for a failed wait).

        Airflow 3.0 prints it in a rich traceback, wrapped over lines up to a blank one: joined back.
        """
        found = list(_EXCEPTION.finditer(self.output))
        if not found:
            return None
        message = found[-1].group(1)
        for line in self.output[found[-1].end() :].split("\n")[1:]:
            if not line.strip() or _LOG_RECORD.match(line):
                break
            message += line
        return message.strip()


def airflow_cmd(*args: str) -> list[str]:
    """The ``airflow`` CLI of the running interpreter's environment."""
    return [sys.executable, "-m", "airflow", *args]


def airflow_env(base_url: str, airflow_home: Path = DEFAULT_AIRFLOW_HOME) -> dict[str, str]:
    """An environment for an isolated Airflow home whose connections point at the emulator.

    Inherited ``AIRFLOW_*`` variables are dropped so that no outside configuration leaks in.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        {
            "AIRFLOW_HOME": str(airflow_home),
            # Explicit, because an airflow.cfg written earlier holds absolute paths of its own home.
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}",
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            **airflow_connections(base_url),
        }
    )
    return env


def _run(cmd: list[str], env: dict[str, str], timeout: float) -> tuple[int | None, str]:
    """Run ``cmd`` in its own process group; kill the group on timeout, Ctrl-C or any error.

    Returns the exit status (None after a timeout) and the combined stdout and stderr.
    """
    proc = subprocess.Popen(
        cmd,
        env=env,
        # Not the repository: `python -m` puts the working directory first on sys.path, and the
        # package must be the installed one (the test matrix installs it as users do).
        cwd=env.get("AIRFLOW_HOME", REPO),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=timeout)
        return proc.returncode, _ANSI.sub("", output)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        output, _ = proc.communicate()
        return None, _ANSI.sub("", output)
    finally:
        if proc.poll() is None:
            _kill_group(proc)


def _kill_group(proc: subprocess.Popen[str]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=5)
            return
        except subprocess.TimeoutExpired:
            continue


def ensure_db(env: dict[str, str]) -> bool:
    """Run ``airflow db migrate`` unless this home's database was already migrated by this Airflow.

    Returns whether it migrated. Raises RuntimeError, with Airflow's output, when migrating fails.
    """
    home = Path(env["AIRFLOW_HOME"])
    stamp = home / DB_STAMP
    airflow_version = version("apache-airflow")
    if (home / "airflow.db").exists() and stamp.exists() and stamp.read_text().strip() == airflow_version:
        return False
    home.mkdir(parents=True, exist_ok=True)
    returncode, output = _run(airflow_cmd("db", "migrate"), env, RUN_TIMEOUT)
    if returncode != 0:
        raise RuntimeError(f"airflow db migrate failed (exit {returncode}):\n{output}")
    stamp.write_text(airflow_version + "\n")
    return True


def run_dag(
    dag_id: str, env: dict[str, str], conf: dict[str, Any] | None = None, timeout: float = RUN_TIMEOUT
) -> DagResult:
    """``airflow dags test <dag_id> [-c <conf>]``; the state is read from Airflow's "DagRun Finished" log."""
    args = ["dags", "test", dag_id]
    if conf is not None:
        args += ["--conf", json.dumps(conf)]
    started = time.monotonic()
    returncode, output = _run(airflow_cmd(*args), env, timeout)
    states = [m["state"] for m in _STATE.finditer(output) if m["dag_id"] == dag_id]
    state = states[-1] if states else ("timeout" if returncode is None else "unknown")
    return DagResult(
        dag_id, conf, state, -1 if returncode is None else returncode, time.monotonic() - started, output
    )


def describe(spec: DagRunSpec) -> str:
    return f"{spec.dag_id} {json.dumps(spec.conf, ensure_ascii=False)}" if spec.conf else spec.dag_id


def report(runs: list[tuple[DagRunSpec, DagResult]]) -> str:
    """The summary table, then the failure message of each failed run."""
    rows = [("DAG", "conf", "state", "expected", "", "downstream got / failure")]
    for spec, result in runs:
        ok = "ok" if result.state == spec.expected else "UNEXPECTED"
        detail = result.returned[-1] if result.returned else (result.failure or "")
        rows.append(
            (
                spec.dag_id,
                json.dumps(spec.conf, ensure_ascii=False) if spec.conf else "-",
                result.state,
                spec.expected,
                ok,
                detail if result.state == "success" else "see below",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join([*(c.ljust(w) for c, w in zip(row, widths, strict=False)), row[-1]]) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in [*widths, len(rows[0][-1])]))
    for spec, result in runs:
        if result.state != "success":
            lines += [
                "",
                f"{describe(spec)} → {result.state}:",
                f"  {result.failure or 'no exception found'}",
            ]
    return "\n".join(lines)


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks: children and emulator stop


def main() -> int:
    signal.signal(signal.SIGTERM, _terminate)
    runs: list[tuple[DagRunSpec, DagResult]] = []
    log_dir = DEFAULT_AIRFLOW_HOME / "demo-logs"
    with EmulatorServer() as emulator:
        env = airflow_env(emulator.base_url)
        print(f"Emulator on {emulator.base_url}; Airflow home {DEFAULT_AIRFLOW_HOME}", flush=True)
        if ensure_db(env):
            print("Migrated the Airflow metadata database", flush=True)
        log_dir.mkdir(parents=True, exist_ok=True)
        for n, spec in enumerate(DEMO_RUNS, 1):
            print(f"[{n}/{len(DEMO_RUNS)}] airflow dags test {describe(spec)} … ", end="", flush=True)
            result = run_dag(spec.dag_id, env, spec.conf)
            log_file = log_dir / f"{n}-{spec.dag_id}.log"
            log_file.write_text(result.output)
            print(f"{result.state} in {result.seconds:.1f} s", flush=True)
            if result.state != spec.expected:
                tail = "\n".join(result.output.splitlines()[-30:])
                print(f"  expected {spec.expected}; full output in {log_file}; last lines:\n{tail}")
            runs.append((spec, result))
    print()
    print(report(runs))
    all_ok = all(result.state == spec.expected for spec, result in runs)
    print()
    print(
        "Every run ended as expected." if all_ok else "Some runs did not end as expected.",
        f"Full output: {log_dir}",
    )
    return 0 if all_ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\nInterrupted: stopped the emulator and the Airflow processes.", file=sys.stderr)
        sys.exit(130)

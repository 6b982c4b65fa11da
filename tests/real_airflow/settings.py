"""The environment and commands of a throw-away Airflow deployment, per release."""

from __future__ import annotations

import json
import os
import secrets
import socket
from collections.abc import Callable
from pathlib import Path

from cryptography.fernet import Fernet

from airflow_provider_taskstatus.compat import AIRFLOW_V_3_0_PLUS
from airflow_provider_taskstatus.emulator.server import (
    DEFAULT_COZE_TOKEN,
    airflow_connections,
)

DAGS_FOLDER = Path(__file__).resolve().parent.parent / "e2e" / "dags"
#: Every DAG in DAGS_FOLDER: the fixture waits until Airflow has stored all of them.
E2E_DAG_IDS = (
    "e2e_coze",
    "e2e_truewatch",
    "e2e_coze_timeout",
    "e2e_coze_timeout_soft_fail",
    "e2e_coze_timeout_30s",
    "e2e_coze_failover",
    "e2e_truewatch_budget",
    "e2e_durable_timeout",
    "e2e_durable_timeout_deferred",
    "e2e_durable_kill",
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


#: How many triggers the second triggerer (``"triggerer-2"``) holds at most; the first has Airflow's
#: default (1000). A cap lets a test split its triggers between the two deterministically.
SECOND_TRIGGERER_CAPACITY = 4

#: A second Coze account on the emulator (see ``AIRFLOW_CONN_COZE_TIMEOUT_ACCOUNT``).
TIMEOUT_ACCOUNT_TOKEN = "pat_e2e_timeout_account"

#: The web console of the ``coze_console`` connection (the emulator's, with this ``console_url``):
#: the operators' extra links point into it.
COZE_CONSOLE_URL = "https://coze.example"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
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
    # For the webserver the links test starts: its REST API open to every request (as 3.x's
    # SimpleAuthManager with all admins is), on loopback only.
    "AIRFLOW__API__AUTH_BACKENDS": "airflow.api.auth.backend.default",
    "AIRFLOW__WEBSERVER__SECRET_KEY": secrets.token_hex(16),
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
            # The durable-start DAGs copy through a connection with a console, for their extra link.
            "AIRFLOW_CONN_COZE_CONSOLE": json.dumps(
                {
                    "conn_type": "coze",
                    "host": emulator_url,
                    "password": DEFAULT_COZE_TOKEN,
                    "extra": {"console_url": COZE_CONSOLE_URL},
                }
            ),
        }
    )
    return env


#: Every process, by name: its ``airflow`` sub-command. Log servers are off (logs are read from files).
#: Which of them a deployment runs is :attr:`Driver.processes`; ``"triggerer-2"``, a second triggerer
#: with a capped capacity, is in none of them: only the failover test starts it (a 2-core machine has
#: no CPU to spare for an idle triggerer in every other test).
PROCESS_COMMANDS: dict[str, Callable[[int], list[str]]] = {
    "api-server": lambda port: ["api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
    "scheduler": lambda port: ["scheduler", "--skip-serve-logs"],
    "dag-processor": lambda port: ["dag-processor"],
    "triggerer": lambda port: ["triggerer", "--skip-serve-logs"],
    # A second triggerer with the deployment's capacity (``make scale`` sets it through the environment).
    "triggerer-b": lambda port: ["triggerer", "--skip-serve-logs"],
    # Airflow 2.11's webserver, on the port Airflow 3's api-server would have; in no driver's
    # list either: only the tests of extra links start it (links are resolved in the webserver).
    "webserver": lambda port: ["webserver", "--hostname", "127.0.0.1", "--port", str(port), "--workers", "1"],
    "triggerer-2": lambda port: [
        "triggerer",
        "--skip-serve-logs",
        "--capacity",
        str(SECOND_TRIGGERER_CAPACITY),
    ],
}

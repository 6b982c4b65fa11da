"""Test set-up: an isolated Airflow home, and connections that point at the emulator.

``taskstatus_emulator`` comes from the package's own pytest plugin, the same one DAG authors get;
``emulator`` (below) is it, reset for each test.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator

import pytest

# Before anything imports Airflow: never touch a user's ~/airflow.
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="taskstatus-airflow-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

from airflow_provider_taskstatus.emulator.server import (
    DEFAULT_COZE_TOKEN,
    DEFAULT_TRUEWATCH_KEY,
    EmulatorServer,
)
from tests.dag_runs import migrated_airflow_home  # noqa: F401  a fixture: defined there, found here

#: Every connection the tests use, by id: (conn_type, secret). Tests look for these secrets in output.
BAD_COZE_TOKEN = "pat_wrong_token_SECRET123"
BAD_TRUEWATCH_KEY = "tw_wrong_key_SECRET456"


def _set_connections(base_url: str) -> dict[str, str]:
    conns = {
        "coze_default": {"conn_type": "coze", "host": base_url, "password": DEFAULT_COZE_TOKEN},
        # Unpaced (0): the suite polls every few ms; "truewatch_documented" has the API's own budget.
        "truewatch_default": {
            "conn_type": "truewatch",
            "host": base_url,
            "password": DEFAULT_TRUEWATCH_KEY,
            "extra": {"requests_per_minute": 0},
        },
        "truewatch_documented": {
            "conn_type": "truewatch",
            "host": base_url,
            "password": DEFAULT_TRUEWATCH_KEY,
        },
        "coze_bad_token": {"conn_type": "coze", "host": base_url, "password": BAD_COZE_TOKEN},
        "truewatch_bad_key": {"conn_type": "truewatch", "host": base_url, "password": BAD_TRUEWATCH_KEY},
        "coze_no_token": {"conn_type": "coze", "host": base_url},
        "truewatch_bad_site": {
            "conn_type": "truewatch",
            "password": DEFAULT_TRUEWATCH_KEY,
            "extra": {"site": "mars-1"},
        },
        "truewatch_paced": {
            "conn_type": "truewatch",
            "host": base_url,
            "password": DEFAULT_TRUEWATCH_KEY,
            "extra": {"requests_per_minute": 600},
        },
        "coze_bad_rate": {
            "conn_type": "coze",
            "host": base_url,
            "password": "pat_x",
            "extra": {"requests_per_minute": "fast"},
        },
        # Nothing listens on port 9 (discard) on loopback: connection refused.
        "coze_unreachable": {"conn_type": "coze", "host": "http://127.0.0.1:9", "password": "pat_x"},
    }
    env = {f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(conn) for conn_id, conn in conns.items()}
    os.environ.update(env)
    return env


@pytest.fixture(scope="session", autouse=True)
def _connections(taskstatus_emulator: EmulatorServer) -> Iterator[None]:
    env = _set_connections(taskstatus_emulator.base_url)
    yield
    for key in env:
        os.environ.pop(key, None)


@pytest.fixture
def emulator(taskstatus_emulator_fresh: EmulatorServer) -> EmulatorServer:
    """The session emulator, reset to its seeded tasks and an empty request log."""
    return taskstatus_emulator_fresh


@pytest.fixture(autouse=True)
def _fresh_throttles() -> None:
    """Each test starts with no account's pace and no OAuth access token in this process."""
    from airflow_provider_taskstatus.transport.throttle import forget_throttles
    from airflow_provider_taskstatus.transport.tokens import TOKENS

    forget_throttles()
    TOKENS.clear()

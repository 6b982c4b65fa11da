"""What the Test Connection tests through Airflow's clients share: secrets to look for, what a message may be."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from packaging.version import Version

from airflow_provider_taskstatus.compat import AIRFLOW_VERSION
from airflow_provider_taskstatus.emulator.server import DEFAULT_COZE_TOKEN, DEFAULT_TRUEWATCH_KEY
from airflow_provider_taskstatus.hooks.coze import CozeHook
from airflow_provider_taskstatus.hooks.truewatch import TrueWatchHook
from tests.conftest import BAD_COZE_TOKEN, BAD_TRUEWATCH_KEY

if TYPE_CHECKING:
    from airflow.models.connection import Connection


RELEASE = Version(AIRFLOW_VERSION).release[:2]
HOOKS: dict[str, type[CozeHook | TrueWatchHook]] = {"coze": CozeHook, "truewatch": TrueWatchHook}
#: A coze.cn account's token: accepted by the "cn" emulator, unknown to the "com" one.
CN_TOKEN = "pat_cn_account_SECRET789"
SECRETS = (DEFAULT_COZE_TOKEN, DEFAULT_TRUEWATCH_KEY, BAD_COZE_TOKEN, BAD_TRUEWATCH_KEY, CN_TOKEN)
#: Seconds for all CLI runs together, and for ``db migrate`` plus the api-server start (2 loaded cores).
CLI_TIMEOUT = 120.0
API_START_TIMEOUT = 180.0
#: How every successful test message starts.
WORKS = "Connection works: "


def assert_user_facing(message: str) -> None:
    """What a user may be shown: one line, no traceback, no secret."""
    assert message.strip(), "empty message"
    assert "\n" not in message.strip(), f"not one line: {message!r}"
    assert "Traceback" not in message, message
    leaked = [secret for secret in SECRETS if secret in message]
    assert not leaked, f"secret in {message!r}"


def env_connection(
    monkeypatch: pytest.MonkeyPatch, conn_id: str, conn_type: str, **fields: Any
) -> Connection:
    """A connection object that the hook, which reads its connection by id, also finds.

    The REST API does the same: it exports the connection's URI as ``AIRFLOW_CONN_<ID>`` for the
    duration of the test, then calls ``Connection.test_connection()``.
    """
    from airflow.models.connection import Connection

    conn = Connection(conn_id=conn_id, conn_type=conn_type, **fields)
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", conn.get_uri())
    return conn

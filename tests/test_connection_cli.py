"""Test Connection through ``airflow connections test`` and ``Connection``, on every release.

Airflow builds a hook as ``HookClass(**{conn_name_attr: conn_id})`` (``Connection.get_hook()``) and
shows the message of its ``test_connection()`` as it is. Unit tests of the hook cannot see what the
clients add or lose on each release, so these go through them and check what the user reads: the
verdict, a one-line message that says what to fix, no traceback, never the secret.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests

from airflow_provider_taskstatus.emulator.server import (
    DEFAULT_COZE_TOKEN,
    DEFAULT_TRUEWATCH_KEY,
    EmulatorServer,
)
from airflow_provider_taskstatus.hooks.coze import CozeHook
from airflow_provider_taskstatus.hooks.truewatch import TrueWatchHook
from airflow_provider_taskstatus.models.truewatch import DEFAULT_SITE, SITES
from tests.conftest import BAD_COZE_TOKEN, BAD_TRUEWATCH_KEY

if TYPE_CHECKING:
    pass
from tests.connection_clients import (
    CLI_TIMEOUT,
    CN_TOKEN,
    HOOKS,
    RELEASE,
    WORKS,
    assert_user_facing,
    env_connection,
)

# -- airflow connections test -------------------------------------------------------------------


@dataclass(frozen=True)
class CliCase:
    conn_type: str
    secret: str
    ok: bool
    says: tuple[str, ...]


CLI_CASES = {
    # On success the CLI prints its own "Connection success!", not the hook's message (every release).
    "coze_good": CliCase("coze", DEFAULT_COZE_TOKEN, True, ("Connection success!",)),
    "coze_bad": CliCase(
        "coze", BAD_COZE_TOKEN, False, ("Connection failed!", "Coze API error 4100", "check the API token")
    ),
    "truewatch_good": CliCase("truewatch", DEFAULT_TRUEWATCH_KEY, True, ("Connection success!",)),
    "truewatch_bad": CliCase(
        "truewatch",
        BAD_TRUEWATCH_KEY,
        False,
        ("Connection failed!", "TrueWatch API error ft.InvalidAPIKey", "check the DF-API-KEY"),
    ),
}
#: ``airflow connections test`` exits 1 on a failed test from Airflow 3.3 on; before, 0 whatever the
#: outcome, so scripts on those releases must read the output.
CLI_FAILURE_STATUS = 1 if RELEASE >= (3, 3) else 0


@dataclass(frozen=True)
class CliRun:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture(scope="module")
def cli_runs(
    taskstatus_emulator: EmulatorServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, CliRun]]:
    """Every CLI case run at once (each start of the CLI costs seconds), each in its own Airflow home.

    No ``airflow db migrate``: an ``AIRFLOW_CONN_*`` connection is found before the metadata
    database is asked, on every release.
    """
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "_AIRFLOW"))}
    procs: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}
    try:
        for name, case in CLI_CASES.items():
            home = tmp_path_factory.mktemp(f"cli-{name}")
            conn = {
                "conn_type": case.conn_type,
                "host": taskstatus_emulator.base_url,
                "password": case.secret,
            }
            env = {
                **base,
                "AIRFLOW_HOME": str(home),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
                f"AIRFLOW_CONN_CLI_{name.upper()}": json.dumps(conn),
                "COLUMNS": "1000",  # Rich would wrap the message at 80 columns
                "NO_PROXY": "127.0.0.1,localhost",  # the emulator is on loopback: never through a proxy
                "no_proxy": "127.0.0.1,localhost",
            }
            # Output to files: pipes of processes waited for one after the other could fill up.
            with (home / "stdout").open("wb") as out, (home / "stderr").open("wb") as err:
                procs[name] = (
                    subprocess.Popen(
                        [sys.executable, "-m", "airflow", "connections", "test", f"cli_{name}"],
                        env=env,
                        cwd=home,
                        stdin=subprocess.DEVNULL,
                        stdout=out,
                        stderr=err,
                    ),
                    home,
                )
        deadline = time.monotonic() + CLI_TIMEOUT
        for proc, _ in procs.values():
            proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        yield {
            name: CliRun(
                proc.returncode,
                (home / "stdout").read_text(errors="replace"),
                (home / "stderr").read_text(errors="replace"),
            )
            for name, (proc, home) in procs.items()
        }
    finally:
        for proc, _ in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.mark.parametrize("name", list(CLI_CASES))
def test_cli_connections_test(cli_runs: dict[str, CliRun], name: str) -> None:
    case, run = CLI_CASES[name], cli_runs[name]
    output = run.stdout + run.stderr
    assert "Traceback" not in output, output
    assert case.secret not in output, "the secret reached the CLI's output"
    text = " ".join(run.stdout.split())
    for part in case.says:
        assert part in text, run.stdout
    assert run.returncode == (0 if case.ok else CLI_FAILURE_STATUS), output


# -- Connection.get_hook() / Connection.test_connection(), in this process -----------------------


@dataclass(frozen=True)
class Case:
    conn_type: str
    #: ``{emulator}``, ``{cn}`` and ``{com}`` name the emulators' base URLs.
    host: str | None
    password: str | None
    extra: dict[str, Any] | None
    ok: bool
    says: tuple[str, ...]


CASES = {
    "coze_token_works": Case(
        "coze",
        "{emulator}",
        DEFAULT_COZE_TOKEN,
        None,
        True,
        (WORKS + "Coze at http://127.0.0.1:", "API token"),
    ),
    "truewatch_key_works": Case(
        "truewatch", "{emulator}", DEFAULT_TRUEWATCH_KEY, None, True, (WORKS + "TrueWatch at", "API key")
    ),
    "coze_wrong_token": Case(
        "coze",
        "{emulator}",
        BAD_COZE_TOKEN,
        None,
        False,
        ("Coze API error 4100", "check the API token in the connection's password field"),
    ),
    "truewatch_wrong_key": Case(
        "truewatch",
        "{emulator}",
        BAD_TRUEWATCH_KEY,
        None,
        False,
        ("TrueWatch API error ft.InvalidAPIKey", "check the DF-API-KEY (the key's secret, not its id)"),
    ),
    "coze_token_in_its_region": Case("coze", "{cn}", CN_TOKEN, None, True, (WORKS + "Coze at",)),
    "coze_token_in_the_other_region": Case(
        "coze",
        "{com}",
        CN_TOKEN,
        None,
        False,
        ("Coze API error 4100", "the host matches the token's region", "api.coze.cn", "api.coze.com"),
    ),
    "coze_unreachable": Case(
        "coze",
        "http://127.0.0.1:9",  # nothing listens on the discard port: connection refused
        DEFAULT_COZE_TOKEN,
        None,
        False,
        ("http://127.0.0.1:9/", "Connection refused", "Check the host, and that this machine can reach it"),
    ),
    "truewatch_unknown_site": Case(
        "truewatch",
        None,
        DEFAULT_TRUEWATCH_KEY,
        {"site": "mars-1"},
        False,
        ("Unknown TrueWatch site 'mars-1': choose one of truewatch, truewatch-aws", "or set a host"),
    ),
    "truewatch_site_and_host": Case(
        "truewatch",
        "openapi.example.internal",
        DEFAULT_TRUEWATCH_KEY,
        {"site": "guance"},
        False,
        ("sets both host 'openapi.example.internal' and site 'guance'", "not both"),
    ),
    "coze_no_secret": Case(
        "coze",
        "{emulator}",
        None,
        None,
        False,
        ("has no secret: put the Coze API token in its password field",),
    ),
    "truewatch_no_secret": Case(
        "truewatch",
        "{emulator}",
        None,
        None,
        False,
        ("has no secret: put the TrueWatch API key (DF-API-KEY) in its password field",),
    ),
}


@pytest.fixture(scope="module")
def emulator_urls(taskstatus_emulator: EmulatorServer) -> Iterator[dict[str, str]]:
    """The session emulator, and two more standing for the coze.cn and coze.com regions."""
    with (
        EmulatorServer(host="127.0.0.1", port=0, coze_tokens=(CN_TOKEN,)) as cn,
        EmulatorServer(host="127.0.0.1", port=0, coze_tokens=("pat_com_account",)) as com,
    ):
        yield {"emulator": taskstatus_emulator.base_url, "cn": cn.base_url, "com": com.base_url}


@pytest.mark.parametrize("name", list(CASES))
def test_connection_test_connection(
    monkeypatch: pytest.MonkeyPatch, emulator_urls: dict[str, str], name: str
) -> None:
    case = CASES[name]
    conn = env_connection(
        monkeypatch,
        f"inproc_{name}",
        case.conn_type,
        host=case.host.format(**emulator_urls) if case.host else None,
        password=case.password,
        extra=json.dumps(case.extra) if case.extra is not None else None,
    )
    hook = conn.get_hook()
    assert type(hook) is HOOKS[case.conn_type]
    assert hook.conn_id == conn.conn_id
    ok, message = conn.test_connection()
    assert ok is case.ok, message
    for part in case.says:
        assert part in message
    assert_user_facing(message)


def test_site_null_is_the_default_site(monkeypatch: pytest.MonkeyPatch) -> None:
    """``{"site": null}`` is what a form sends for its empty choice: the default site, checked offline."""

    def no_request(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the endpoint must come from the connection alone")

    monkeypatch.setattr(requests.Session, "send", no_request)
    conn = env_connection(
        monkeypatch, "inproc_site_null", "truewatch", password=DEFAULT_TRUEWATCH_KEY, extra='{"site": null}'
    )
    hook = conn.get_hook()
    assert isinstance(hook, TrueWatchHook)
    assert hook.get_endpoint().base_url == f"https://{SITES[DEFAULT_SITE]}"


def test_missing_connection_says_to_create_it() -> None:
    ok, message = CozeHook(coze_conn_id="nope").test_connection()
    assert ok is False
    assert "Connection 'nope' is not defined: create a connection of type 'coze'" in message
    assert "AIRFLOW_CONN_NOPE" in message
    assert_user_facing(message)

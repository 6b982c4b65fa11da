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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


def _base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "_AIRFLOW"))}


def run_cli_tests(
    conns: dict[str, dict[str, Any]], tmp_path_factory: pytest.TempPathFactory, timeout: float = CLI_TIMEOUT
) -> dict[str, CliRun]:
    """``airflow connections test cli_<name>`` for each connection at once, each in its own Airflow home.

    No ``airflow db migrate``: an ``AIRFLOW_CONN_*`` connection is found before the metadata
    database is asked, on every release. The connection is the JSON form of the variable, as a user
    writes it (a PEM key inside keeps its line breaks as ``\\n`` escapes).
    """
    base = _base_env()
    procs: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}
    try:
        for name, conn in conns.items():
            home = tmp_path_factory.mktemp(f"cli-{name}")
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
        deadline = time.monotonic() + timeout
        for proc, _ in procs.values():
            proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        return {
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


@pytest.fixture(scope="module")
def cli_runs(
    taskstatus_emulator: EmulatorServer, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, CliRun]:
    """Every CLI case run at once (each start of the CLI costs seconds)."""
    conns = {
        name: {"conn_type": case.conn_type, "host": taskstatus_emulator.base_url, "password": case.secret}
        for name, case in CLI_CASES.items()
    }
    return run_cli_tests(conns, tmp_path_factory)


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


# -- airflow connections test: a Coze OAuth service app, and the network extras -------------------

#: The service app of the OAuth tests, and the public key ids (kids) of its key pairs.
OAUTH_APP_ID = "1180000000042"
OAUTH_KIDS = ("kid-works", "kid-one-line", "kid-revoked", "kid-unreadable", "kid-verify")
PROXY_PASSWORD = "Pr0xy-SECRET-771"


@dataclass(frozen=True)
class OAuthKeys:
    """RSA key pairs made at run time, one per kid, as the Coze console hands them out."""

    private: dict[str, Any]

    def pem(self, kid: str) -> str:
        """The private_key.pem as downloaded: PKCS#8, unencrypted, 64-character lines."""
        from cryptography.hazmat.primitives import serialization

        return (
            self.private[kid]
            .private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            .decode()
        )

    def public_pem(self, kid: str) -> str:
        from cryptography.hazmat.primitives import serialization

        return (
            self.private[kid]
            .public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )

    def register(self, emulator: EmulatorServer, app_id: str, *kids: str) -> None:
        emulator.add_oauth_app(app_id, {kid: self.public_pem(kid) for kid in kids})


def make_oauth_keys(*kids: str) -> OAuthKeys:
    from cryptography.hazmat.primitives.asymmetric import rsa

    return OAuthKeys({kid: rsa.generate_private_key(public_exponent=65537, key_size=2048) for kid in kids})


def one_line(pem: str) -> str:
    """The key as a one-line box keeps it: every line break dropped (an HTML password input does this)."""
    return pem.replace("\r", "").replace("\n", "")


def truncated(pem: str) -> str:
    """A key cut short (half its body lost in a copy): still framed as a PEM, unreadable."""
    lines = pem.strip().splitlines()
    body = lines[1:-1]
    return "\n".join([lines[0], *body[: len(body) // 2], lines[-1], ""])


def key_fragments(pem: str, size: int = 24) -> list[str]:
    """Pieces of the key's base64 body, any one of which in an output means the key leaked."""
    body = "".join(line.strip() for line in pem.strip().splitlines()[1:-1])
    return [body[i : i + size] for i in range(0, len(body) - size + 1, size)]


def assert_no_key(text: str, pem: str) -> None:
    leaked = [piece for piece in key_fragments(pem) if piece in text]
    assert not leaked, f"{len(leaked)} pieces of the private key are in the output"


@dataclass(frozen=True)
class OAuthCliCase:
    conn_type: str
    #: The password field from the generated keys (None: the type's emulator secret).
    password: Callable[[OAuthKeys], str] | None
    extra: dict[str, Any]
    ok: bool
    says: tuple[str, ...]


def _app(kid: str, **more: Any) -> dict[str, Any]:
    # As a form stores them: every value a string.
    return {"oauth_app_id": OAUTH_APP_ID, "oauth_public_key_id": kid, "oauth_duration_seconds": "600", **more}


MISSING_CA = "/nonexistent/taskstatus-tests/private-ca.pem"
BAD_PROXY = f"socks5://proxyuser:{PROXY_PASSWORD}@127.0.0.1:1080"

OAUTH_CLI_CASES = {
    "oauth_works": OAuthCliCase(
        "coze", lambda keys: keys.pem("kid-works"), _app("kid-works"), True, ("Connection success!",)
    ),
    "oauth_key_on_one_line": OAuthCliCase(
        "coze",
        lambda keys: one_line(keys.pem("kid-one-line")),
        _app("kid-one-line"),
        True,
        ("Connection success!",),
    ),
    "oauth_revoked_key": OAuthCliCase(
        "coze",
        lambda keys: keys.pem("kid-revoked"),
        _app("kid-revoked"),
        False,
        (
            "Connection failed!",
            "Step 2 of 3 (token exchange) failed:",
            f"Coze OAuth token exchange (app {OAUTH_APP_ID}, key kid-revoked) refused",
            "invalid_client (HTTP 401)",
            "oauth_public_key_id",
        ),
    ),
    "oauth_unreadable_key": OAuthCliCase(
        "coze",
        lambda keys: truncated(keys.pem("kid-unreadable")),
        _app("kid-unreadable"),
        False,
        (
            "Connection failed!",
            "Step 1 of 3 (private key) failed:",
            "the password field does not hold a readable PEM private key",
        ),
    ),
    "oauth_verify_missing": OAuthCliCase(
        "coze",
        lambda keys: keys.pem("kid-verify"),
        _app("kid-verify", verify=MISSING_CA),
        False,
        ("Connection failed!", f"extra verify names '{MISSING_CA}'", "does not exist on this machine"),
    ),
    "truewatch_proxy_bad_scheme": OAuthCliCase(
        "truewatch",
        None,
        {"proxy": BAD_PROXY},
        False,
        ("Connection failed!", "extra proxy must be an http:// proxy URL", "(scheme 'socks5')"),
    ),
    "coze_token_verify_missing": OAuthCliCase(
        "coze",
        None,
        {"verify": MISSING_CA},
        False,
        ("Connection failed!", f"extra verify names '{MISSING_CA}'"),
    ),
}


@dataclass(frozen=True)
class OAuthCliRuns:
    keys: OAuthKeys
    passwords: dict[str, str]
    runs: dict[str, CliRun]
    #: The emulator's record of every token exchange, as the CLI processes left it.
    exchanges: list[dict[str, Any]]


@pytest.fixture(scope="module")
def oauth_cli_runs(
    taskstatus_emulator: EmulatorServer, tmp_path_factory: pytest.TempPathFactory
) -> OAuthCliRuns:
    """The OAuth and network cases, each an ``AIRFLOW_CONN_*`` JSON with the key inside, run at once."""
    keys = make_oauth_keys(*OAUTH_KIDS)
    taskstatus_emulator.reset()
    keys.register(taskstatus_emulator, OAUTH_APP_ID, *OAUTH_KIDS)
    taskstatus_emulator.revoke_oauth_key("kid-revoked")
    secrets = {"coze": DEFAULT_COZE_TOKEN, "truewatch": DEFAULT_TRUEWATCH_KEY}
    passwords = {
        name: case.password(keys) if case.password else secrets[case.conn_type]
        for name, case in OAUTH_CLI_CASES.items()
    }
    conns = {
        name: {
            "conn_type": case.conn_type,
            "host": taskstatus_emulator.base_url,
            "password": passwords[name],
            "extra": case.extra,
        }
        for name, case in OAUTH_CLI_CASES.items()
    }
    runs = run_cli_tests(conns, tmp_path_factory, CLI_TIMEOUT * 2)
    return OAuthCliRuns(keys, passwords, runs, taskstatus_emulator.oauth_exchanges())


@pytest.mark.parametrize("name", list(OAUTH_CLI_CASES))
def test_cli_oauth_and_network_extras(oauth_cli_runs: OAuthCliRuns, name: str) -> None:
    case, run = OAUTH_CLI_CASES[name], oauth_cli_runs.runs[name]
    output = run.stdout + run.stderr
    assert "Traceback" not in output, output
    text = " ".join(run.stdout.split())
    for part in case.says:
        assert part in text, run.stdout
    assert run.returncode == (0 if case.ok else CLI_FAILURE_STATUS), output
    # Never the key (not one piece of its body), the token, nor the proxy's password.
    for kid in OAUTH_KIDS:
        assert_no_key(output, oauth_cli_runs.keys.pem(kid))
    assert oauth_cli_runs.passwords[name] not in output
    assert PROXY_PASSWORD not in output
    assert "czs_" not in output, "an access token reached the CLI's output"


def test_cli_oauth_exchanges_as_the_emulator_saw_them(oauth_cli_runs: OAuthCliRuns) -> None:
    """A success is a real exchange by the right key, with the lifetime from the form; each failed
    step stopped where its message says."""
    by_kid: dict[str, list[dict[str, Any]]] = {}
    for exchange in oauth_cli_runs.exchanges:
        by_kid.setdefault(exchange["kid"], []).append(exchange)
    for kid in ("kid-works", "kid-one-line"):
        assert [(e["app_id"], e["outcome"], e["duration_seconds"]) for e in by_kid.get(kid, [])] == [
            (OAUTH_APP_ID, "issued", 600)
        ], by_kid
    assert [e["outcome"] for e in by_kid.get("kid-revoked", [])] == ["invalid_client"], by_kid
    # Step 1 fails before any request; a bad verify before the key is even read.
    assert "kid-unreadable" not in by_kid and "kid-verify" not in by_kid, by_kid


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


@pytest.fixture(scope="module")
def inproc_keys() -> OAuthKeys:
    return make_oauth_keys("kid-inproc", "kid-inproc-revoked")


@pytest.mark.parametrize("shape", ["pem", "one_line", "escaped_newlines"])
def test_oauth_connection_test_connection(
    monkeypatch: pytest.MonkeyPatch, emulator: EmulatorServer, inproc_keys: OAuthKeys, shape: str
) -> None:
    """What the CLI does not print on success (its own "Connection success!"): the hook's message."""
    inproc_keys.register(emulator, OAUTH_APP_ID, "kid-inproc")
    pem = inproc_keys.pem("kid-inproc")
    password = {"pem": pem, "one_line": one_line(pem), "escaped_newlines": pem.replace("\n", "\\n")}[shape]
    conn = env_connection(
        monkeypatch,
        f"inproc_oauth_{shape}",
        "coze",
        host=emulator.base_url,
        password=password,
        extra=json.dumps(_app("kid-inproc")),
    )
    ok, message = conn.test_connection()
    assert ok is True, message
    assert message == (
        f"Connection works: Coze at {emulator.base_url} issued an access token to OAuth app "
        f"{OAUTH_APP_ID} (key kid-inproc) and accepted it."
    )
    assert_user_facing(message)
    assert_no_key(message, pem)


def test_oauth_connection_test_connection_revoked(
    monkeypatch: pytest.MonkeyPatch, emulator: EmulatorServer, inproc_keys: OAuthKeys
) -> None:
    inproc_keys.register(emulator, OAUTH_APP_ID, "kid-inproc-revoked")
    emulator.revoke_oauth_key("kid-inproc-revoked")
    pem = inproc_keys.pem("kid-inproc-revoked")
    conn = env_connection(
        monkeypatch,
        "inproc_oauth_revoked",
        "coze",
        host=emulator.base_url,
        password=pem,
        extra=json.dumps(_app("kid-inproc-revoked")),
    )
    ok, message = conn.test_connection()
    assert ok is False
    assert message.startswith("Step 2 of 3 (token exchange) failed: "), message
    assert "invalid_client" in message
    assert_user_facing(message)
    assert_no_key(message, pem)


def test_oauth_test_connection_after_the_key_is_revoked(
    monkeypatch: pytest.MonkeyPatch, emulator: EmulatorServer, inproc_keys: OAuthKeys
) -> None:
    """A user revokes a key pair in the Coze console and presses Test on the connection still using it."""
    inproc_keys.register(emulator, OAUTH_APP_ID, "kid-inproc")
    conn = env_connection(
        monkeypatch,
        "inproc_oauth_revoked_later",
        "coze",
        host=emulator.base_url,
        password=inproc_keys.pem("kid-inproc"),
        extra=json.dumps(_app("kid-inproc")),
    )
    assert conn.test_connection()[0] is True
    emulator.revoke_oauth_key("kid-inproc")
    ok, message = conn.test_connection()
    exchanges = [e["outcome"] for e in emulator.oauth_exchanges()]
    assert (ok, exchanges) == (False, ["issued", "invalid_client"]), (message, exchanges)
    assert message.startswith("Step 2 of 3 (token exchange) failed: "), message

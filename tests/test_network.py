"""The connection extras ``verify`` and ``proxy``, the way users meet them: a private CA in front of
the API, and a forward proxy on the way to it.

The emulator serves HTTPS with a certificate signed by a test CA (tests/certificates.py); a real
tinyproxy (tests/proxies.py) relays the requests, and its own log is checked against the emulator's:
every request the emulator answered went through the proxy. Connections come from
``AIRFLOW_CONN_<ID>`` variables, like users'; the proxy environment (``HTTP_PROXY`` ...) is cleared
for each test, so that a developer's own proxy settings change nothing here.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_provider_taskstatus.emulator import EmulatorServer
from airflow_provider_taskstatus.emulator.coze import COZE_PREFIX
from airflow_provider_taskstatus.emulator.server import DEFAULT_COZE_TOKEN, DEFAULT_TRUEWATCH_KEY
from airflow_provider_taskstatus.hooks.base import TaskStatusHook
from airflow_provider_taskstatus.hooks.coze import CozeHook
from airflow_provider_taskstatus.hooks.truewatch import TrueWatchHook
from airflow_provider_taskstatus.models.base import ApiError, ErrorKind, TaskStatusError
from airflow_provider_taskstatus.transport.policy import RetryPolicy
from airflow_provider_taskstatus.triggers.coze import CozeCopyTaskTrigger
from airflow_provider_taskstatus.triggers.truewatch import TrueWatchActionTrigger
from tests.certificates import PrivateCA, make_private_ca
from tests.proxies import (  # noqa: F401  the fixtures forward_proxies and forward_proxy
    ForwardProxy,
    ProxyFactory,
    forward_proxies_fixture,
    forward_proxy_fixture,
)

FAST = RetryPolicy(timeout=5, max_retries=2, backoff=0.01, max_backoff=0.05)
#: Letters, digits and -_. only: what tinyproxy's BasicAuth takes.
PROXY_USER, PROXY_PASSWORD = "airflow", "proxy-SECRET-pw_7731"
WRONG_PASSWORD = "wrong-SECRET-pw_0042"
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")

#: The seeded task each API's status call reads, and its start call: (method, args).
STATUS_TASK = {CozeHook: "demo-copy-success", TrueWatchHook: "demo-export-ok"}
START_CALL: dict[type[TaskStatusHook], tuple[str, tuple[Any, ...]]] = {
    CozeHook: ("start_copy", ("wf-1", "workflow", "7498204")),
    TrueWatchHook: ("start_export", ()),
}
HOOKS = [CozeHook, TrueWatchHook]
MODES = ["sync", "async"]


# -- set-up ----------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _no_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sets the proxy environment it means; a developer's own (or a CA bundle variable
    that trusts something else) must not leak in."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def private_ca(tmp_path_factory: pytest.TempPathFactory) -> PrivateCA:
    return make_private_ca(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def _https_server(private_ca: PrivateCA) -> Iterator[EmulatorServer]:
    with EmulatorServer(ssl_context=private_ca.server_context(), access_log=False) as server:
        yield server


@pytest.fixture
def https_emulator(_https_server: EmulatorServer) -> EmulatorServer:
    """An emulator behind a certificate of the private CA, reset to its seeded tasks."""
    _https_server.reset()
    return _https_server


def connect(
    monkeypatch: pytest.MonkeyPatch, hook_class: type[TaskStatusHook], host: str, **extra: Any
) -> str:
    """Define a connection of ``hook_class``'s type to ``host`` with ``extra``; return its id."""
    conn_type = hook_class.conn_type
    conn_id = f"{conn_type}_network"
    secret = DEFAULT_COZE_TOKEN if hook_class is CozeHook else DEFAULT_TRUEWATCH_KEY
    if hook_class is TrueWatchHook:
        extra = {"requests_per_minute": 0, **extra}  # unpaced, as in conftest: the API's 20 a minute is slow
    conn = {"conn_type": conn_type, "host": host, "password": secret, "extra": extra}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    return conn_id


async def status(hook: TaskStatusHook, mode: str, task_id: str) -> Any:
    if mode == "sync":
        return hook.get_task_status(task_id)
    return await hook.aget_task_status(task_id)


async def start(hook: TaskStatusHook, mode: str) -> Any:
    method, args = START_CALL[type(hook)]
    if mode == "sync":
        return getattr(hook, method)(*args)
    return await getattr(hook, "a" + method)(*args)


async def status_and_start(hook: TaskStatusHook, mode: str) -> None:
    """Two status polls and a start call: both request kinds, more than one request each way."""
    for _ in range(2):
        assert (await status(hook, mode, STATUS_TASK[type(hook)])).remote_status
    assert (await start(hook, mode)).task_id


def emulator_paths(emulator: EmulatorServer) -> list[str]:
    """The path and query of each request the emulator answered, oldest first."""
    return [
        e["raw_path"] + (f"?{e['query_string']}" if e["query_string"] else "") for e in emulator.requests()
    ]


def assert_every_request_went_through(proxy: ForwardProxy, emulator: EmulatorServer) -> None:
    """The proxy relayed exactly the requests the emulator logged, in order, to the emulator."""
    relayed = [r for r in proxy.proxied() if r.method != "CONNECT"]
    assert relayed, proxy.log()
    assert {r.address for r in relayed} == {f"127.0.0.1:{emulator.port}"}
    assert [r.path for r in relayed] == emulator_paths(emulator), proxy.log()
    assert not proxy.refused()


def verify_hint(message: str) -> str:
    """The message without OpenSSL's own "certificate verify failed": what is left must still
    name the connection's ``verify`` setting."""
    return message.replace("certificate verify failed", "")


# -- the test infrastructure itself ---------------------------------------------------------------


def test_forward_proxy_logs_each_plain_request(forward_proxy: ForwardProxy, emulator: EmulatorServer) -> None:
    """tinyproxy serves one request per client connection, so a kept-alive session's requests
    each get their own request line, query included."""
    url = f"{emulator.base_url}{COZE_PREFIX}demo-copy-success"
    with requests.Session() as session:
        session.proxies = {"http": forward_proxy.url()}
        session.headers["Authorization"] = f"Bearer {DEFAULT_COZE_TOKEN}"
        for query in ("", "?a=1", "?b=2"):
            assert session.get(url + query, timeout=5).status_code == 200
    found = forward_proxy.requests()
    assert [(r.method, r.target, r.outcome) for r in found] == [
        ("GET", url + query, "relayed") for query in ("", "?a=1", "?b=2")
    ]
    assert len(emulator.requests()) == 3
    assert [r.path for r in found] == emulator_paths(emulator)


def test_forward_proxy_tunnels_https(
    forward_proxy: ForwardProxy, https_emulator: EmulatorServer, private_ca: PrivateCA
) -> None:
    """A CONNECT tunnel shows as ``host:port`` only: the two requests inside it are not in the log."""
    url = f"{https_emulator.base_url}{COZE_PREFIX}demo-copy-success"
    with requests.Session() as session:
        session.proxies = {"https": forward_proxy.url()}
        session.headers["Authorization"] = f"Bearer {DEFAULT_COZE_TOKEN}"
        for _ in range(2):
            assert session.get(url, verify=str(private_ca.ca), timeout=5).status_code == 200
    assert forward_proxy.tunnels() == [f"127.0.0.1:{https_emulator.port}"]
    assert [r.method for r in forward_proxy.requests()] == ["CONNECT"]
    assert len(https_emulator.requests()) == 2


def test_forward_proxy_basic_auth(forward_proxies: ProxyFactory, emulator: EmulatorServer) -> None:
    """No credentials: 407; wrong ones: tinyproxy answers 401 (not 407); neither reaches the server."""
    proxy = forward_proxies(auth=(PROXY_USER, PROXY_PASSWORD))
    url = f"{emulator.base_url}{COZE_PREFIX}demo-copy-success"
    headers = {"Authorization": f"Bearer {DEFAULT_COZE_TOKEN}"}
    answers = [
        requests.get(url, headers=headers, proxies={"http": via}, timeout=5).status_code
        for via in (proxy.url(), proxy.url(credentials=True, password=WRONG_PASSWORD), proxy.url(True))
    ]
    assert answers == [407, 401, 200]
    assert [r.outcome for r in proxy.requests()] == ["refused", "refused", "relayed"]
    assert len(emulator.requests()) == 1
    assert PROXY_PASSWORD not in proxy.log() and WRONG_PASSWORD not in proxy.log()


def test_forward_proxy_stops_without_a_trace(forward_proxies: ProxyFactory) -> None:
    proxy = forward_proxies()
    process = proxy._process
    assert process is not None and proxy.running
    proxy.stop()
    assert process.poll() is not None and not proxy.running
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", proxy.port), timeout=1).close()


def test_private_ca_files(private_ca: PrivateCA, https_emulator: EmulatorServer) -> None:
    """The chain verifies against ca.pem only; by name (localhost) as well as by address."""
    url = f"https://localhost:{https_emulator.port}{COZE_PREFIX}x"
    assert requests.get(url, verify=str(private_ca.ca), timeout=5).status_code in (401, 404)
    for bundle in (private_ca.other_ca, True):
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(url, verify=bundle if bundle is True else str(bundle), timeout=5)


# -- verify -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("hook_class", HOOKS)
async def test_verify_with_the_private_ca_bundle(
    monkeypatch: pytest.MonkeyPatch,
    https_emulator: EmulatorServer,
    private_ca: PrivateCA,
    hook_class: type[TaskStatusHook],
    mode: str,
) -> None:
    conn_id = connect(monkeypatch, hook_class, https_emulator.base_url, verify=str(private_ca.ca))
    await status_and_start(hook_class(conn_id, request_policy=FAST), mode)
    assert len(https_emulator.requests()) == 3


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("hook_class", HOOKS)
async def test_default_trust_refuses_the_private_ca_and_says_to_set_verify(
    monkeypatch: pytest.MonkeyPatch,
    https_emulator: EmulatorServer,
    hook_class: type[TaskStatusHook],
    mode: str,
) -> None:
    conn_id = connect(monkeypatch, hook_class, https_emulator.base_url)
    with pytest.raises(ApiError) as caught:
        await status(hook_class(conn_id, request_policy=FAST), mode, STATUS_TASK[hook_class])
    message = str(caught.value)
    assert caught.value.kind is ErrorKind.TLS
    assert message.startswith(
        f"TLS handshake with {https_emulator.base_url} failed: certificate verify failed"
    )
    assert "verify" in verify_hint(message) and "path" in message, message
    assert https_emulator.requests() == []


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("hook_class", HOOKS)
async def test_a_bundle_of_another_ca_is_named_in_the_failure(
    monkeypatch: pytest.MonkeyPatch,
    https_emulator: EmulatorServer,
    private_ca: PrivateCA,
    hook_class: type[TaskStatusHook],
    mode: str,
) -> None:
    conn_id = connect(monkeypatch, hook_class, https_emulator.base_url, verify=str(private_ca.other_ca))
    with pytest.raises(ApiError) as caught:
        await status(hook_class(conn_id, request_policy=FAST), mode, STATUS_TASK[hook_class])
    message = str(caught.value)
    assert caught.value.kind is ErrorKind.TLS
    assert not caught.value.retryable
    assert "verify" in verify_hint(message) and str(private_ca.other_ca) in message, message
    assert "\n" not in message
    assert https_emulator.requests() == []


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")  # what verify=false means
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("verify", [False, "false", "False"])
async def test_verify_false_skips_the_check(
    monkeypatch: pytest.MonkeyPatch, https_emulator: EmulatorServer, verify: Any, mode: str
) -> None:
    conn_id = connect(monkeypatch, CozeHook, https_emulator.base_url, verify=verify)
    await status_and_start(CozeHook(conn_id, request_policy=FAST), mode)
    assert len(https_emulator.requests()) == 3


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("verify", [True, "true"])
async def test_verify_true_is_the_default_trust(
    monkeypatch: pytest.MonkeyPatch, https_emulator: EmulatorServer, verify: Any, mode: str
) -> None:
    conn_id = connect(monkeypatch, CozeHook, https_emulator.base_url, verify=verify)
    with pytest.raises(ApiError) as caught:
        await status(CozeHook(conn_id, request_policy=FAST), mode, "demo-copy-success")
    assert caught.value.kind is ErrorKind.TLS


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", ["missing file", "not a bundle", "a number"])
async def test_a_bad_verify_is_refused_naming_it(
    monkeypatch: pytest.MonkeyPatch, https_emulator: EmulatorServer, tmp_path: Path, case: str, mode: str
) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    value: Any = {
        "missing file": str(tmp_path / "no-such-ca.pem"),
        "not a bundle": str(garbage),
        "a number": 42,
    }
    conn_id = connect(monkeypatch, CozeHook, https_emulator.base_url, verify=value[case])
    with pytest.raises(TaskStatusError) as caught:
        await status(CozeHook(conn_id, request_policy=FAST), mode, "demo-copy-success")
    assert "verify" in verify_hint(str(caught.value)), str(caught.value)
    assert https_emulator.requests() == []


# -- proxy ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("hook_class", HOOKS)
async def test_the_connections_proxy_carries_every_request(
    monkeypatch: pytest.MonkeyPatch,
    forward_proxy: ForwardProxy,
    emulator: EmulatorServer,
    hook_class: type[TaskStatusHook],
    mode: str,
) -> None:
    conn_id = connect(monkeypatch, hook_class, emulator.base_url, proxy=forward_proxy.url())
    await status_and_start(hook_class(conn_id, request_policy=FAST), mode)
    assert len(emulator.requests()) == 3
    assert_every_request_went_through(forward_proxy, emulator)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("hook_class", HOOKS)
async def test_the_environments_proxy_carries_every_request(
    monkeypatch: pytest.MonkeyPatch,
    forward_proxy: ForwardProxy,
    emulator: EmulatorServer,
    hook_class: type[TaskStatusHook],
    mode: str,
) -> None:
    monkeypatch.setenv("HTTP_PROXY", forward_proxy.url())
    monkeypatch.setenv("HTTPS_PROXY", forward_proxy.url())
    conn_id = connect(monkeypatch, hook_class, emulator.base_url)
    await status_and_start(hook_class(conn_id, request_policy=FAST), mode)
    assert len(emulator.requests()) == 3
    assert_every_request_went_through(forward_proxy, emulator)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("no_proxy", ["127.0.0.1", "localhost,127.0.0.1", "*"])
async def test_no_proxy_sends_the_host_around_the_proxy(
    monkeypatch: pytest.MonkeyPatch,
    forward_proxy: ForwardProxy,
    emulator: EmulatorServer,
    no_proxy: str,
    mode: str,
) -> None:
    monkeypatch.setenv("HTTP_PROXY", forward_proxy.url())
    monkeypatch.setenv("NO_PROXY", no_proxy)
    conn_id = connect(monkeypatch, CozeHook, emulator.base_url)
    await status_and_start(CozeHook(conn_id, request_policy=FAST), mode)
    assert len(emulator.requests()) == 3
    assert forward_proxy.requests() == []


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("where", ["connection", "environment"])
@pytest.mark.parametrize("hook_class", HOOKS)
async def test_https_goes_through_a_tunnel(
    monkeypatch: pytest.MonkeyPatch,
    forward_proxy: ForwardProxy,
    https_emulator: EmulatorServer,
    private_ca: PrivateCA,
    hook_class: type[TaskStatusHook],
    where: str,
    mode: str,
) -> None:
    """The proxy sees only CONNECT to the emulator's port; the private CA is still checked inside."""
    extra: dict[str, Any] = {"verify": str(private_ca.ca)}
    if where == "connection":
        extra["proxy"] = forward_proxy.url()
    else:
        monkeypatch.setenv("HTTPS_PROXY", forward_proxy.url())
    conn_id = connect(monkeypatch, hook_class, https_emulator.base_url, **extra)
    await status_and_start(hook_class(conn_id, request_policy=FAST), mode)
    assert len(https_emulator.requests()) == 3
    tunnels = forward_proxy.tunnels()
    assert tunnels and set(tunnels) == {f"127.0.0.1:{https_emulator.port}"}, forward_proxy.log()
    assert {r.method for r in forward_proxy.requests()} == {"CONNECT"}
    assert not forward_proxy.refused()


@pytest.mark.parametrize("mode", MODES)
async def test_tls_is_checked_through_the_tunnel(
    monkeypatch: pytest.MonkeyPatch,
    forward_proxy: ForwardProxy,
    https_emulator: EmulatorServer,
    private_ca: PrivateCA,
    mode: str,
) -> None:
    """A tunnel is no way around ``verify``: another CA's bundle still fails the handshake."""
    extra = {"verify": str(private_ca.other_ca), "proxy": forward_proxy.url()}
    conn_id = connect(monkeypatch, CozeHook, https_emulator.base_url, **extra)
    with pytest.raises(ApiError) as caught:
        await status(CozeHook(conn_id, request_policy=FAST), mode, "demo-copy-success")
    assert caught.value.kind is ErrorKind.TLS
    assert str(private_ca.other_ca) in str(caught.value)
    assert forward_proxy.tunnels() == [f"127.0.0.1:{https_emulator.port}"], "one try, no retry"
    assert https_emulator.requests() == []


# -- proxy credentials --------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("where", ["connection", "environment"])
async def test_proxy_credentials_that_fit(
    monkeypatch: pytest.MonkeyPatch,
    forward_proxies: ProxyFactory,
    emulator: EmulatorServer,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    where: str,
    mode: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    proxy = forward_proxies(auth=(PROXY_USER, PROXY_PASSWORD))
    if where == "connection":
        conn_id = connect(monkeypatch, CozeHook, emulator.base_url, proxy=proxy.url(credentials=True))
    else:
        monkeypatch.setenv("HTTP_PROXY", proxy.url(credentials=True))
        conn_id = connect(monkeypatch, CozeHook, emulator.base_url)
    hook = CozeHook(conn_id, request_policy=FAST)
    await status_and_start(hook, mode)
    assert_every_request_went_through(proxy, emulator)
    out, err = capsys.readouterr()
    for shown in (repr(hook), caplog.text, out, err):
        assert PROXY_PASSWORD not in shown


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("case", "scheme"),
    [("missing", "http"), ("wrong", "http"), ("missing", "https"), ("wrong", "https")],
)
async def test_proxy_credentials_that_do_not_fit_fail_clearly_and_stay_secret(
    monkeypatch: pytest.MonkeyPatch,
    forward_proxies: ProxyFactory,
    emulator: EmulatorServer,
    https_emulator: EmulatorServer,
    private_ca: PrivateCA,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    case: str,
    scheme: str,
    mode: str,
) -> None:
    """No credentials: tinyproxy's 407. Wrong ones: its 401, which over plain HTTP looks like the
    API's own refusal; through a tunnel (HTTPS) both are the proxy refusing the CONNECT."""
    caplog.set_level(logging.DEBUG)
    proxy = forward_proxies(auth=(PROXY_USER, PROXY_PASSWORD))
    server = emulator if scheme == "http" else https_emulator
    url = proxy.url() if case == "missing" else proxy.url(credentials=True, password=WRONG_PASSWORD)
    conn_id = connect(monkeypatch, CozeHook, server.base_url, proxy=url, verify=str(private_ca.ca))
    hook = CozeHook(conn_id, request_policy=FAST)
    with pytest.raises(ApiError) as caught:
        await status(hook, mode, "demo-copy-success")
    message = str(caught.value)
    assert caught.value.kind is ErrorKind.AUTH, message
    assert not caught.value.retryable
    if not (case == "wrong" and scheme == "http"):
        assert "proxy" in message.lower(), message
    assert len(proxy.refused()) == 1, "refused once, not retried"
    assert server.requests() == []
    out, err = capsys.readouterr()
    for shown in (message, repr(caught.value), repr(hook), caplog.text, out, err):
        assert WRONG_PASSWORD not in shown and PROXY_PASSWORD not in shown


@pytest.mark.parametrize("mode", MODES)
async def test_a_bad_proxy_setting_is_refused_naming_it(
    monkeypatch: pytest.MonkeyPatch, emulator: EmulatorServer, mode: str
) -> None:
    conn_id = connect(
        monkeypatch, CozeHook, emulator.base_url, proxy=f"socks5://u:{PROXY_PASSWORD}@127.0.0.1:1080"
    )
    with pytest.raises(TaskStatusError) as caught:
        await status(CozeHook(conn_id, request_policy=FAST), mode, "demo-copy-success")
    assert "proxy" in str(caught.value)
    assert PROXY_PASSWORD not in str(caught.value)
    assert emulator.requests() == []


# -- triggers -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("trigger_class", "hook_class", "task_id"),
    [
        (CozeCopyTaskTrigger, CozeHook, "demo-copy-success"),
        (TrueWatchActionTrigger, TrueWatchHook, "demo-export-ok"),
    ],
)
async def test_a_triggers_polls_go_through_the_proxy(
    monkeypatch: pytest.MonkeyPatch,
    forward_proxies: ProxyFactory,
    emulator: EmulatorServer,
    trigger_class: type[CozeCopyTaskTrigger] | type[TrueWatchActionTrigger],
    hook_class: type[TaskStatusHook],
    task_id: str,
) -> None:
    """The triggerer's polls, each on its own: every one is in the proxy's log."""
    proxy = forward_proxies(auth=(PROXY_USER, PROXY_PASSWORD))
    conn_id = connect(monkeypatch, hook_class, emulator.base_url, proxy=proxy.url(credentials=True))
    policy = {**FAST.to_dict(), "max_consecutive_failures": 3}
    trigger = trigger_class(
        task_id, conn_id, deadline=time.time() + 20, poll_interval=0.05, request_policy=policy
    )
    [event] = [e.payload async for e in trigger.run()]
    assert event["status"] == "success", event
    assert len(emulator.requests(task_id=task_id)) >= 2
    assert_every_request_went_through(proxy, emulator)
    assert PROXY_PASSWORD not in repr(trigger) and PROXY_PASSWORD not in json.dumps(trigger.serialize())

"""Errors keep their cause, in one line: TLS failures fail at once, huge task ids are shortened."""

from __future__ import annotations

import json
import select
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_taskstatus.emulator import EmulatorServer
from airflow_provider_taskstatus.emulator.server import DEFAULT_COZE_TOKEN, DEFAULT_TRUEWATCH_KEY
from airflow_provider_taskstatus.hooks.base import TaskStatusHook
from airflow_provider_taskstatus.hooks.coze import CozeHook
from airflow_provider_taskstatus.hooks.truewatch import TrueWatchHook
from airflow_provider_taskstatus.models.base import ApiError, ErrorKind, shorten, validate_task_id
from airflow_provider_taskstatus.models.failures import failure_reason, request_error
from airflow_provider_taskstatus.transport.policy import RetryPolicy
from airflow_provider_taskstatus.triggers.coze import CozeCopyTaskTrigger
from airflow_provider_taskstatus.triggers.truewatch import TrueWatchActionTrigger

#: Retries enough that a retried TLS failure would show up as several connections.
RETRYING = RetryPolicy(timeout=5, max_retries=3, backoff=0.01, max_backoff=0.02)
LONG_ID = "x" * 5000


class Relay:
    """A loopback TCP relay that counts connections.

    A TLS failure happens before any HTTP request, so the emulator's request log cannot count the
    attempts; the connections through this relay can.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.listener.settimeout(0.05)  # closing a socket does not wake a blocked accept()
        self.connections = 0
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            self.connections += 1
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            threading.Thread(target=_pipe, args=(client, upstream), daemon=True).start()

    def close(self) -> None:
        self._closed.set()
        self._thread.join()
        self.listener.close()


def _pipe(a: socket.socket, b: socket.socket) -> None:
    with a, b:
        try:
            while True:
                ready, _, _ = select.select([a, b], [], [], 10)
                if not ready:
                    return
                for source in ready:
                    data = source.recv(65536)
                    if not data:
                        return
                    (b if source is a else a).sendall(data)
        except OSError:
            return


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from benchmarks.tls import make_self_signed  # the benchmark's certificate maker

    return make_self_signed(tmp_path_factory.mktemp("tls"))


def _tls_server(cert: Path, key: Path) -> EmulatorServer:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return EmulatorServer(ssl_context=context, access_log=False)


@pytest.fixture(scope="module")
def tls_emulator(tls_files: Any) -> Iterator[EmulatorServer]:
    with _tls_server(tls_files.cert, tls_files.key) as server:
        yield server


@pytest.fixture(scope="module")
def plain_emulator() -> Iterator[EmulatorServer]:
    with EmulatorServer(access_log=False) as server:
        yield server


@pytest.fixture
def relays(
    tls_emulator: EmulatorServer, plain_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, Relay]]:
    """``untrusted``: HTTPS with a self-signed certificate; ``plain``: an https:// URL on a plain-HTTP port."""
    found = {"untrusted": Relay(tls_emulator.port), "plain": Relay(plain_emulator.port)}
    for case, relay in found.items():
        for conn_type, secret in (("coze", DEFAULT_COZE_TOKEN), ("truewatch", DEFAULT_TRUEWATCH_KEY)):
            conn = {"conn_type": conn_type, "host": f"https://127.0.0.1:{relay.port}", "password": secret}
            monkeypatch.setenv(f"AIRFLOW_CONN_{conn_type.upper()}_TLS_{case.upper()}", json.dumps(conn))
    yield found
    for relay in found.values():
        relay.close()


def _expected(case: str, port: int) -> list[str]:
    start = f"TLS handshake with https://127.0.0.1:{port} failed: "
    if case == "untrusted":
        return [
            start + "certificate verify failed: self-signed certificate",
            "set the connection's extra verify to the path of that CA's bundle",
        ]
    return [
        start + "wrong version number; the host seems to speak plain HTTP",
        f"write http://127.0.0.1:{port} in the connection's host",
    ]


async def _status(hook: TaskStatusHook, mode: str, task_id: str) -> Any:
    if mode == "sync":
        return hook.get_task_status(task_id)
    return await hook.aget_task_status(task_id)


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("case", ["untrusted", "plain"])
@pytest.mark.parametrize("hook_class", [CozeHook, TrueWatchHook])
async def test_tls_failure_fails_at_once_and_says_why(
    relays: dict[str, Relay], mode: str, case: str, hook_class: type[TaskStatusHook]
) -> None:
    hook = hook_class(f"{hook_class.conn_type}_tls_{case}", request_policy=RETRYING)
    started = time.monotonic()
    with pytest.raises(ApiError) as caught:
        await _status(hook, mode, "demo-copy-success")
    message = str(caught.value)
    assert caught.value.kind is ErrorKind.TLS
    assert not caught.value.retryable
    assert "\n" not in message
    for part in _expected(case, relays[case].port):
        assert part in message, message
    assert message.startswith(_expected(case, relays[case].port)[0])
    assert relays[case].connections == 1, "a TLS failure is not retried"
    assert time.monotonic() - started < 2


def test_hostname_mismatch_with_a_trusted_ca(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tls_files: Any
) -> None:
    """A certificate the machine trusts, for another name (127.0.0.2): poke mode reads the CA from
    REQUESTS_CA_BUNDLE, so the sync path can show the mismatch itself."""
    from benchmarks.tls import make_self_signed

    other = make_self_signed(tmp_path, host="127.0.0.2")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(other.cert))
    with _tls_server(other.cert, other.key) as server:
        relay = Relay(server.port)
        try:
            conn = {"conn_type": "coze", "host": f"https://127.0.0.1:{relay.port}", "password": "pat_x"}
            monkeypatch.setenv("AIRFLOW_CONN_COZE_TLS_MISMATCH", json.dumps(conn))
            with pytest.raises(ApiError) as caught:
                CozeHook("coze_tls_mismatch", request_policy=RETRYING).get_task_status("t")
        finally:
            relay.close()
    assert caught.value.kind is ErrorKind.TLS
    assert str(caught.value).startswith(
        f"TLS handshake with https://127.0.0.1:{relay.port} failed: certificate verify failed: "
        "IP address mismatch, certificate is not valid for '127.0.0.1'"
    ), str(caught.value)
    assert relay.connections == 1


@pytest.mark.parametrize("case", ["untrusted", "plain"])
async def test_trigger_ends_with_an_error_event_after_one_poll(relays: dict[str, Relay], case: str) -> None:
    policy = {**RETRYING.to_dict(), "max_consecutive_failures": 5}
    for trigger_class, conn_type in ((CozeCopyTaskTrigger, "coze"), (TrueWatchActionTrigger, "truewatch")):
        relays[case].connections = 0
        trigger = trigger_class(
            "t",
            f"{conn_type}_tls_{case}",
            deadline=time.time() + 10,
            poll_interval=0.02,
            request_policy=policy,
        )
        [event] = [e.payload async for e in trigger.run()]
        assert event["status"] == "error"
        assert event["message"].startswith(_expected(case, relays[case].port)[0])
        assert relays[case].connections == 1, "one poll, no retry, no second poll"


@pytest.mark.parametrize("case", ["untrusted", "plain"])
def test_test_connection_shows_the_tls_reason(relays: dict[str, Relay], case: str) -> None:
    ok, message = CozeHook(f"coze_tls_{case}").test_connection()
    assert ok is False
    assert message.startswith(_expected(case, relays[case].port)[0])
    assert relays[case].connections == 1


# -- classification of causes, without a network ------------------------------------------------


def _wrapped(inner: BaseException) -> Exception:
    """How the libraries wrap a cause: a chain of exceptions, the real one innermost."""
    try:
        try:
            raise inner
        except BaseException as error:
            raise OSError("Cannot connect to host") from error
    except OSError as outer:
        return outer


@pytest.mark.parametrize(
    ("inner", "kind", "text"),
    [
        (
            ssl.SSLCertVerificationError(
                1,
                "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: Hostname mismatch, "
                "certificate is not valid for 'gw.example'. (_ssl.c:1006)",
            ),
            ErrorKind.TLS,
            "TLS handshake with https://gw.example:8443 failed: certificate verify failed: Hostname "
            "mismatch, certificate is not valid for 'gw.example'.",
        ),
        (
            ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)"),
            ErrorKind.TLS,
            "TLS handshake with https://gw.example:8443 failed: wrong version number; the host seems to "
            "speak plain HTTP: if that is intended (e.g. the local emulator), write http://gw.example:8443 "
            "in the connection's host",
        ),
        (
            ssl.SSLEOFError(8, "[SSL: UNEXPECTED_EOF_WHILE_READING] EOF occurred in violation of protocol"),
            ErrorKind.TRANSIENT,
            "Request to https://gw.example:8443/guance/v1/x failed: EOF occurred in violation of protocol",
        ),
        (
            ConnectionRefusedError(111, "Connection refused"),
            ErrorKind.TRANSIENT,
            "Request to https://gw.example:8443/guance/v1/x failed: Connection refused",
        ),
    ],
    ids=["hostname", "plain-http", "eof-is-transient", "refused"],
)
def test_request_errors_are_classified_by_their_cause(
    inner: BaseException, kind: ErrorKind, text: str
) -> None:
    error = request_error("https://gw.example:8443/guance/v1/x", _wrapped(inner))
    assert error.kind is kind
    assert str(error) == text


def test_a_library_tls_error_without_an_ssl_cause_is_still_tls() -> None:
    error = request_error("https://gw.example/v1/x", OSError("handshake failed"), tls=True)
    assert error.kind is ErrorKind.TLS
    assert str(error) == "TLS handshake with https://gw.example failed: OSError"
    assert failure_reason(_wrapped(ConnectionResetError(104, "x"))) == "Connection reset by peer"


# -- huge task ids ----------------------------------------------------------------------------


def test_shorten() -> None:
    assert shorten("abc") == "abc"
    assert shorten("a" * 80) == "a" * 80
    assert shorten("a" * 5000) == "a" * 80 + "… (5000 characters)"
    assert shorten("abcdef", limit=3) == "abc… (6 characters)"


def test_a_bad_huge_id_is_shortened_in_the_refusal() -> None:
    with pytest.raises(ValueError, match="contains control characters") as caught:
        validate_task_id(LONG_ID + "\x00")
    assert len(str(caught.value)) < 200
    assert "(5001 characters)" in str(caught.value)


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize(
    ("hook_class", "api", "step"),
    [(CozeHook, "coze", {"task_status": "in_progress"}), (TrueWatchHook, "truewatch", {"status": "running"})],
)
async def test_huge_ids_are_shortened_in_status_messages(
    emulator: EmulatorServer, mode: str, hook_class: type[TaskStatusHook], api: str, step: dict[str, str]
) -> None:
    emulator.set_task(api, LONG_ID, [step])
    status = await _status(hook_class(request_policy=RETRYING), mode, LONG_ID)
    assert "(5000 characters)" in status.message
    assert len(status.message) < 300
    assert len(emulator.requests(task_id=LONG_ID)) == 1, "the whole id was sent"


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_huge_ids_are_shortened_in_errors(emulator: EmulatorServer, mode: str) -> None:
    with pytest.raises(ApiError) as caught:  # the API's own message echoes the id
        await _status(TrueWatchHook(request_policy=RETRYING), mode, LONG_ID)
    assert caught.value.kind is ErrorKind.NOT_FOUND
    assert len(str(caught.value)) < 700
    unreachable = CozeHook("coze_unreachable", request_policy=RetryPolicy(max_retries=0))
    with pytest.raises(ApiError) as caught:  # the URL holds the id
        await _status(unreachable, mode, LONG_ID)
    message = str(caught.value)
    assert message.startswith("Request to http://127.0.0.1:9/v1/entities/copy_tasks/xxx")
    assert message.endswith("… (5042 characters) failed: Connection refused")


async def test_huge_ids_are_shortened_in_the_trigger_timeout(emulator: EmulatorServer) -> None:
    emulator.set_task("coze", LONG_ID, [{"task_status": "in_progress"}])
    trigger = CozeCopyTaskTrigger(LONG_ID, "coze_default", deadline=time.time() + 0.3, poll_interval=0.05)
    [event] = [e.payload async for e in trigger.run()]
    assert event["status"] == "timeout"
    assert event["message"].count("(5000 characters)") == 2, "the id, and the id in the last status"
    assert len(event["message"]) < 500
    assert len(repr(trigger)) < 200

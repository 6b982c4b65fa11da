"""Hosts as users write them: scheme case, ports, a gateway's path prefix; and what is refused, and why."""

from __future__ import annotations

import json
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from airflow_provider_taskstatus.emulator import EmulatorServer
from airflow_provider_taskstatus.emulator.server import DEFAULT_COZE_TOKEN, DEFAULT_TRUEWATCH_KEY
from airflow_provider_taskstatus.hooks.base import TaskStatusHook
from airflow_provider_taskstatus.hooks.coze import CozeHook
from airflow_provider_taskstatus.hooks.truewatch import TrueWatchHook
from airflow_provider_taskstatus.models.base import State, TaskStatusError
from airflow_provider_taskstatus.models.coze import COZE
from airflow_provider_taskstatus.models.hosts import normalize_base_url, origin
from airflow_provider_taskstatus.models.truewatch import TRUEWATCH
from airflow_provider_taskstatus.transport.policy import RetryPolicy

FAST = RetryPolicy(timeout=5, max_retries=0)


@pytest.mark.parametrize(
    ("host", "port", "base"),
    [
        ("HTTP://127.0.0.1:8765", None, "http://127.0.0.1:8765"),
        ("Https://API.Coze.COM", None, "https://api.coze.com"),
        ("  api.coze.com/  ", None, "https://api.coze.com"),
        ("https://gw.example/guance", None, "https://gw.example/guance"),
        ("gw.example/guance/", None, "https://gw.example/guance"),
        ("gw.example/guance", 8443, "https://gw.example:8443/guance"),
        ("gw.example/Tenant/Guance", None, "https://gw.example/Tenant/Guance"),  # a path keeps its case
        ("http://127.0.0.1:9000/x", 1234, "http://127.0.0.1:9000/x"),  # the host's own port wins
        ("[::1]:8765", None, "https://[::1]:8765"),
        ("[::1]", 8765, "https://[::1]:8765"),
    ],
)
def test_hosts_as_users_write_them(host: str, port: int | None, base: str) -> None:
    assert normalize_base_url(host, port) == base


@pytest.mark.parametrize(
    ("host", "message"),
    [
        ("ftp://gw.example", "has scheme 'ftp': use https://"),
        ("https:/gw.example", "malformed scheme: write it as 'https://host'"),
        ("https://gw.example/x?tenant=1", "query string or fragment: give only the host"),
        ("https://gw.example/#top", "query string or fragment"),
        ("https://user:pw@gw.example", "'https://***@gw.example' holds user info (user@ or user:password@)"),
        ("user:pw@gw example", "'***@gw example' contains a space"),
        ("gw example.com", "contains a space"),
        ("https://gw.example/a b", "contains a space"),
        ("https://", "names no host"),
        ("https:///guance", "names no host"),
        ("gw.example:http", "has port 'http': a port is a number from 1 to 65535"),
        ("gw.example:0", "has port '0'"),
        ("gw.example/a//b", "empty or dot segment"),
        ("gw.example/a/../b", "empty or dot segment"),
        ("", "The host is empty"),
    ],
)
def test_refusals_say_what_to_fix(host: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        normalize_base_url(host)


@pytest.mark.parametrize(
    ("api", "host", "tail"),
    [
        (COZE, "https://gw.example/coze/v1", "/v1"),
        (COZE, "https://api.coze.cn/v1/entities/copy_tasks", "/v1/entities/copy_tasks"),
        (TRUEWATCH, "https://gw.example/guance/api/v1", "/api/v1"),
        (
            TRUEWATCH,
            "gw.example/api/v1/workspace/resource/query_action_status",
            "/api/v1/workspace/resource/query_action_status",
        ),
    ],
)
def test_a_prefix_that_repeats_the_apis_own_path_is_refused(api: object, host: str, tail: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"ends with {tail!r}, the start of the API's own path")):
        api.base_url(host, None, {})  # type: ignore[attr-defined]


def test_models_append_their_path_to_the_prefix() -> None:
    base = TRUEWATCH.base_url("gw.example/guance", 8443, {})
    assert base == "https://gw.example:8443/guance"
    assert base + TRUEWATCH.status_path("t 1") == (
        "https://gw.example:8443/guance/api/v1/workspace/resource/query_action_status?taskId=t%201"
    )
    base = COZE.base_url("HTTPS://GW.example/coze/", None, {})
    assert base + COZE.status_path("c/1") == "https://gw.example/coze/v1/entities/copy_tasks/c%2F1"
    # A public site stays as it was.
    assert TRUEWATCH.base_url(None, None, {"site": "guance"}) == "https://openapi.guance.com"


def test_origin() -> None:
    assert origin("https://gw.example:8443/guance/api/v1?x=1") == "https://gw.example:8443"
    assert origin("http://127.0.0.1:9") == "http://127.0.0.1:9"


# -- one real request through a gateway that serves the APIs under a path prefix -----------------


class _Gateway(ThreadingHTTPServer):
    """A stdlib HTTP server that forwards ``/<prefix>/...`` to the emulator (and 404s anything else)."""

    daemon_threads = True

    def __init__(self, prefix: str, upstream: str) -> None:
        super().__init__(("127.0.0.1", 0), _Forward)
        self.prefix = prefix
        self.upstream = upstream
        self.paths: list[str] = []

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Forward(BaseHTTPRequestHandler):
    server: _Gateway

    def do_GET(self) -> None:
        self.server.paths.append(self.path)
        prefix = self.server.prefix
        if not self.path.startswith(prefix + "/"):
            self._answer(404, {}, b"no such route")
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() in ("authorization", "df-api-key")}
        request = urllib.request.Request(self.server.upstream + self.path[len(prefix) :], headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                self._answer(response.status, dict(response.headers), response.read())
        except urllib.error.HTTPError as error:
            self._answer(error.code, dict(error.headers), error.read())

    def _answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", headers.get("Content-Type", "text/plain"))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass


@pytest.fixture
def gateway(emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[_Gateway]:
    server = _Gateway("/private/guance", emulator.base_url)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    # Written the way a user might: upper-case scheme, trailing slash.
    host = server.base_url.replace("http://", "HTTP://") + "/private/guance/"
    for conn_id, conn_type, secret in (
        ("tw_gateway", "truewatch", DEFAULT_TRUEWATCH_KEY),
        ("coze_gateway", "coze", DEFAULT_COZE_TOKEN),
    ):
        conn = {"conn_type": conn_type, "host": host, "password": secret}
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize(
    ("hook_class", "conn_id", "api", "step", "path"),
    [
        (TrueWatchHook, "tw_gateway", "truewatch", {"status": "ok"}, "/api/v1/workspace/"),
        (CozeHook, "coze_gateway", "coze", {"task_status": "successful"}, "/v1/entities/"),
    ],
    ids=["truewatch", "coze"],
)
async def test_status_through_a_path_prefix(
    emulator: EmulatorServer,
    gateway: _Gateway,
    mode: str,
    hook_class: type[TaskStatusHook],
    conn_id: str,
    api: str,
    step: dict[str, str],
    path: str,
) -> None:
    emulator.set_task(api, "gw-task", [step])
    hook = hook_class(conn_id, request_policy=FAST)
    assert hook.get_endpoint().base_url == gateway.base_url + "/private/guance"
    if mode == "sync":
        status = hook.get_task_status("gw-task")
    else:
        status = await hook.aget_task_status("gw-task")
    assert status.state is State.SUCCEEDED
    [seen] = gateway.paths
    assert seen.startswith("/private/guance" + path), seen
    assert len(emulator.requests(api=api, task_id="gw-task")) == 1


def test_bad_host_in_a_connection_is_refused_before_any_request(
    emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = {"conn_type": "coze", "host": "https://me:secret@gw.example", "password": "pat_x"}
    monkeypatch.setenv("AIRFLOW_CONN_COZE_USERINFO", json.dumps(conn))
    with pytest.raises(TaskStatusError) as caught:
        CozeHook("coze_userinfo").get_task_status("x")
    assert str(caught.value).startswith(
        "Connection 'coze_userinfo': Host 'https://***@gw.example' holds user info"
    ), "the password written into the host is not repeated"
    assert emulator.requests() == []

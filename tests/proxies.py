"""A real forward proxy for the network tests: Debian's tinyproxy, and what its own log says it saw.

``scripts/install-proxy.sh`` (``make proxy``) installs it; without it the fixtures here skip, or fail
under ``CI=true``, where a missing proxy is a broken set-up.

What tinyproxy 1.11's log shows (``LogLevel Info``; read off real runs, see :class:`ForwardProxy`):

* One ``Connect (file descriptor N): 127.0.0.1`` and one ``Request (file descriptor N): GET
  http://host:port/path?query HTTP/1.1`` line per client connection, and tinyproxy serves exactly
  one request per client connection: it forwards it upstream with ``Connection: close``, relays the
  answer until the server closes, then closes the client too (a second request already sent on that
  connection is dropped unanswered). The relayed answer does not say ``Connection: close``: a
  pooled client learns of the close from the socket. Clients therefore open a connection per
  request, and **every** plain-HTTP request through the proxy has its own request line: method and
  absolute URL, query string included.
* ``CONNECT host:port`` for an HTTPS tunnel, and ``Closed connection between local client (fd:N)
  and remote client (fd:M)`` when a request or tunnel ends.
* ``opensock: Could not establish a connection to host:port`` (ERROR) when the server is down.

What it does not show:

* Refusals have no line of their own: a request refused for its credentials (``407 Proxy
  Authentication Required`` when none were sent, but ``401 Unauthorized`` for wrong ones: a
  tinyproxy quirk) leaves only its request line, with nothing relayed after it. This module infers
  them (:attr:`ProxiedRequest.outcome`).
* The answer's status, any header (neither the proxy credentials nor the API token are logged),
  the client's port.
* Anything inside a CONNECT tunnel: one pooled TLS connection may carry many requests, and the log
  shows only the tunnel (the emulator's own request log counts those).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest

TINYPROXY = Path("/usr/bin/tinyproxy")

_CONNECT = re.compile(r"Connect \(file descriptor (\d+)\)")
_REQUEST = re.compile(r"Request \(file descriptor (\d+)\): (\S+) (\S+)")
_UPSTREAM = re.compile(r'Established connection to host "[^"]*" using file descriptor (\d+)\.')
_CLOSED = re.compile(r"Closed connection between local client \(fd:(\d+)\)")
_UNREACHABLE = re.compile(r"Could not establish a connection to (\S+)")
_AUTH_WORD = re.compile(r"[A-Za-z0-9._-]+")  # what tinyproxy 1.11's config grammar accepts


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require_tinyproxy() -> None:
    """Skip on a developer's machine without tinyproxy; under ``CI`` that is a broken set-up: fail."""
    if TINYPROXY.is_file() and os.access(TINYPROXY, os.X_OK):
        return
    reason = f"{TINYPROXY} is missing: run scripts/install-proxy.sh as root (make proxy)"
    if in_ci():
        pytest.fail(f"{reason} (CI is set, so this is an error, not a skip)", pytrace=False)
    pytest.skip(reason)


@dataclass(frozen=True)
class ProxiedRequest:
    """One request line of the proxy's log, and what became of it.

    ``outcome``: ``relayed`` (the proxy passed it on and the exchange ended), ``refused`` (nothing
    was relayed: credentials missing or wrong), ``unreachable`` (the server could not be reached),
    ``open`` (still going: a CONNECT tunnel a client keeps in its pool).
    """

    method: str
    #: The absolute URL (``http://127.0.0.1:8080/v1/...``) or, for CONNECT, ``host:port``.
    target: str
    outcome: str

    @property
    def path(self) -> str:
        """Path and query of a plain-HTTP request, as the emulator logs them."""
        parts = urlsplit(self.target)
        return parts.path + (f"?{parts.query}" if parts.query else "")

    @property
    def address(self) -> str:
        """``host:port`` the request went to."""
        if self.method == "CONNECT":
            return self.target
        parts = urlsplit(self.target)
        return f"{parts.hostname}:{parts.port or 80}"


class ForwardProxy:
    """tinyproxy on a free loopback port, with a config of its own in ``directory``.

    ``auth``: ``(user, password)`` for ``BasicAuth``; clients must then send them (the proxy URL
    with credentials is :meth:`url` ``(credentials=True)``). Any CONNECT port is allowed.
    """

    def __init__(self, directory: Path | None = None, auth: tuple[str, str] | None = None) -> None:
        if auth is not None and not all(_AUTH_WORD.fullmatch(word) for word in auth):
            raise ValueError("tinyproxy's BasicAuth takes letters, digits, '.', '_' and '-' only")
        self.directory = Path(directory or tempfile.mkdtemp(prefix="taskstatus-proxy-"))
        self.auth = auth
        self.port = 0
        self.log_file = self.directory / "tinyproxy.log"
        self._process: subprocess.Popen[bytes] | None = None

    def url(self, credentials: bool = False, password: str | None = None) -> str:
        """``http://127.0.0.1:PORT``; with ``credentials``, ``http://user:password@...`` (the
        configured password, or ``password`` to send a wrong one)."""
        if not credentials:
            return f"http://127.0.0.1:{self.port}"
        if self.auth is None:
            raise ValueError("this proxy has no BasicAuth")
        user, secret = self.auth
        secret = secret if password is None else password
        return f"http://{quote(user, safe='')}:{quote(secret, safe='')}@127.0.0.1:{self.port}"

    # -- process ----------------------------------------------------------------------------------

    def start(self) -> ForwardProxy:
        """Start tinyproxy; return once it accepts connections. A port taken between choosing and
        binding it is retried with another."""
        require_tinyproxy()
        for _ in range(3):
            self.port = _free_port()
            config = self.directory / "tinyproxy.conf"
            config.write_text(self._config())
            self.log_file.write_text("")
            with open(self.directory / "tinyproxy.out", "wb") as out:
                self._process = subprocess.Popen(
                    [str(TINYPROXY), "-d", "-c", str(config)], stdout=out, stderr=subprocess.STDOUT
                )
            if self._wait_listening():
                return self
            self.stop()
        raise RuntimeError(f"tinyproxy did not start: {self._tail()}")

    def _config(self) -> str:
        lines = [
            f"Port {self.port}",
            "Listen 127.0.0.1",
            "Allow 127.0.0.1",
            "Timeout 30",
            "MaxClients 64",
            "LogLevel Info",  # Info, not Connect: the end of each exchange is an Info line
            f'LogFile "{self.log_file}"',
        ]
        if self.auth is not None:
            lines.append(f"BasicAuth {self.auth[0]} {self.auth[1]}")
        return "\n".join(lines) + "\n"

    def _wait_listening(self, timeout: float = 5) -> bool:
        assert self._process is not None
        give_up = time.monotonic() + timeout
        while time.monotonic() < give_up:
            if self._process.poll() is not None:
                return False  # e.g. the port was taken
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return True
            except OSError:
                time.sleep(0.02)
        return False

    def stop(self) -> None:
        """Terminate tinyproxy and wait for it: no process is left behind."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def __enter__(self) -> ForwardProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what it saw ------------------------------------------------------------------------------

    def log(self) -> str:
        """tinyproxy's own log, as written so far."""
        try:
            return self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def requests(self, settle: float = 2.0) -> list[ProxiedRequest]:
        """Every request line logged, oldest first, with its outcome. Waits (``settle`` seconds at
        most) for exchanges the client has already seen end to be logged as ended."""
        give_up = time.monotonic() + settle
        while True:
            found, pending = self._parse()
            if not pending or time.monotonic() >= give_up:
                return found
            time.sleep(0.02)

    def proxied(self, settle: float = 2.0) -> list[ProxiedRequest]:
        """The requests passed on to a server (CONNECT tunnels included, open or ended)."""
        return [r for r in self.requests(settle) if r.outcome in ("relayed", "open")]

    def refused(self, settle: float = 2.0) -> list[ProxiedRequest]:
        """The requests the proxy answered itself, relaying nothing (407/401: credentials)."""
        return [r for r in self.requests(settle) if r.outcome == "refused"]

    def tunnels(self, settle: float = 2.0) -> list[str]:
        """``host:port`` of each CONNECT tunnel opened."""
        return [r.target for r in self.proxied(settle) if r.method == "CONNECT"]

    def _parse(self) -> tuple[list[ProxiedRequest], bool]:
        """The requests and whether some outcome may still change (an exchange not yet logged as
        ended). tinyproxy logs no thread id: a request's lines are tied together by its client's
        file descriptor, which the kernel reuses only once the request's connection is closed."""
        lines = self.log().splitlines()
        open_fds = self._open_fds()
        found: list[ProxiedRequest] = []
        pending = False
        for index, line in enumerate(lines):
            match = _REQUEST.search(line)
            if match is None:
                continue
            fd, method, target = match.group(1), match.group(2), match.group(3)
            outcome = ""
            tunnel_up = False
            for later in lines[index + 1 :]:
                closed = _CLOSED.search(later)
                if closed and closed.group(1) == fd:
                    outcome = "relayed"
                    break
                unreachable = _UNREACHABLE.search(later)
                request = ProxiedRequest(method, target, "")
                if unreachable and unreachable.group(1) == request.address:
                    outcome = "unreachable"
                    break
                upstream = _UPSTREAM.search(later)
                if upstream:
                    tunnel_up = True
                    if upstream.group(1) == fd:  # fd reused: this request's connection had closed
                        outcome = "refused"
                        break
                connect = _CONNECT.search(later)
                if connect and connect.group(1) == fd:
                    outcome = "refused"
                    break
            if not outcome:
                if open_fds is not None and fd not in open_fds:
                    outcome = "refused"  # closed without relaying anything
                else:
                    outcome = "open"
                    # A plain request ends on its own; a CONNECT tunnel may stay up in a pool.
                    pending = pending or method != "CONNECT" or not tunnel_up
            found.append(ProxiedRequest(method, target, outcome))
        return found, pending

    def _open_fds(self) -> set[str] | None:
        """The proxy's open file descriptors; None once it has stopped (nothing more to learn)."""
        if self._process is None or self._process.poll() is not None:
            return None
        try:
            return set(os.listdir(f"/proc/{self._process.pid}/fd"))
        except OSError:
            return None

    def _tail(self) -> str:
        out = self.directory / "tinyproxy.out"
        text = (out.read_text(errors="replace") if out.exists() else "") + self.log()
        return text[-2000:] or "(no output)"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


# The fixtures' functions have names of their own, so that a test module imports them (which is
# what makes them its fixtures) without its parameters shadowing the import.

#: Starts a proxy for the test (``auth=(user, password)`` optional); all are stopped after it.
ProxyFactory = Callable[..., ForwardProxy]


@pytest.fixture(name="forward_proxies")
def forward_proxies_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyFactory]:
    """Start tinyproxies for one test: ``forward_proxies(auth=("user", "pw"))``. Skips without
    tinyproxy (fails under ``CI=true``)."""
    require_tinyproxy()
    started: list[ForwardProxy] = []

    def make(auth: tuple[str, str] | None = None) -> ForwardProxy:
        proxy = ForwardProxy(tmp_path_factory.mktemp("proxy"), auth=auth).start()
        started.append(proxy)
        return proxy

    yield make
    for proxy in started:
        proxy.stop()


@pytest.fixture(name="forward_proxy")
def forward_proxy_fixture(forward_proxies: ProxyFactory) -> ForwardProxy:
    """One tinyproxy without credentials, for one test."""
    return forward_proxies()

"""End to end: a production-style Coze connection on real Airflow processes.

The connection is what a company deployment would have: a Coze **OAuth service app** (private key in
the password field, app id and public key id in the extras), the API behind a TLS certificate of a
**private CA** (extra ``verify`` = the CA bundle) and reached only through a **forward proxy with
credentials** (extra ``proxy`` = ``http://user:password@host:port``). It is given to the processes
of a deployment of its own as ``AIRFLOW_CONN_COZE_PRODUCTION`` (JSON), the way the other E2E tests
pass theirs. The emulator serves HTTPS with the test CA's certificate and issues access tokens that
live :data:`LIFETIME` seconds; tinyproxy (``tests/proxies.py``) is the proxy.

One DAG run (``dags/e2e_oauth.py``): :data:`DEFERRED` deferrable sensors, each on its own copy task,
and one poke-mode sensor; every copy task is in progress for :data:`RUNS_FOR` seconds (about three
token lifetimes) from its first poll, then successful. What the test shows:

* every sensor succeeds on its first try, and no request is refused (no 4100: tokens are renewed
  before they expire, from the ``expires_in`` the server gave, not the lifetime asked for);
* the token exchanges, attributed to the process that made them (below), are what the per-process
  cache promises: one per deferrable task's first try (each runs in a fresh worker process, whose
  cache is empty), about one per token lifetime in the poke sensor's process, and about one per
  token lifetime in the triggerer for all its triggers together: not one per trigger or per poll;
* every request reached the emulator through the proxy: the proxy logged only ``CONNECT`` tunnels to
  the emulator's address, the emulator saw as many TCP connections as the proxy opened tunnels, and
  a watcher that listed the machine's TCP sockets twice a second never saw any process but the proxy
  hold a connection to the emulator's port;
* no log (task and trigger logs, process output, the proxy's own log) holds a line of the private
  key, an access token (the ones the emulator issued, captured as they were issued, or anything with
  their ``czs_`` prefix), a JWT, or the proxy's password.

**Attributing exchanges.** The emulator logs each request with its TCP connection (``conn``), and
each connection belongs to one client process (through the proxy, one tunnel per client
connection). A deferrable sensor's first poke is the first status request for its copy task (the
triggerer polls only after the deferral), so that request's connection is its worker process's;
the poke sensor's copy task is polled from its process alone; the triggerer's connections are those
of every later poll of the deferred copy tasks, and those that carried one token exchange and nothing
else. The sync transport (workers) sends an exchange on its session's kept-alive connection, the one
its poll then takes; the async transport sends each on a connection of its own, closed after it
(``transport/aio.py`` ``post``), and only the triggerer runs async code in this DAG. That last
attribution is by transport, not by a process id: the emulator sees only the proxy's side of a
tunnel. Exchanges are counted per class of connection, and every exchange must fall in one. With a
renewal margin of a tenth of the lifetime (2 s of 20), a process polling throughout a window of
``W`` seconds makes between ``ceil(W / (LIFETIME + 1))`` exchanges (a token lasts at most its
lifetime, rounded up to the second) and ``1 + ceil(W / (LIFETIME - 3))`` (renewed at the earliest
2 s before expiry, minus a second of rounding). Measured on 3.3 and 2.11 alike: 28 exchanges, 20 in
the workers, 4 in the poke sensor's process (a 61 s window) and 4 in the triggerer (64 s) for its 20
triggers and ~580 polls.

**What the proxy evidence does not show.** Inside a CONNECT tunnel, TLS hides the requests from the
proxy, so the proxy cannot list them; the count of tunnels against the emulator's connections, and
the socket watcher, are what tie the requests to the proxy. The watcher samples: a connection that
lives less than half a second between two samples (a worker's single poke) could escape it, which the
count of connections covers. The count must be equal: a tunnel that carried no request at all would
fail the test without anything being wrong (never seen: every tunnel is opened for a request).

About 2 to 3 minutes a release, a third of it the deployment's start.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import psutil
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from airflow_provider_taskstatus.compat import AIRFLOW_V_3_0_PLUS
from airflow_provider_taskstatus.emulator.server import DEFAULT_COZE_TOKEN, EmulatorServer
from tests.certificates import PrivateCA, make_private_ca
from tests.e2e.dags.e2e_oauth import CONN_ID, DAG_ID, DEFERRED, DEFERRED_TASKS, POKED_COPY, POKED_TASK
from tests.oauth_apps import JWT_PATTERN, body_lines, in_progress_for, private_pem, public_pem
from tests.proxies import ForwardProxy, require_tinyproxy
from tests.real_airflow import STARTUP_TIMEOUT, TIMEOUT_ACCOUNT_TOKEN, RealAirflow

pytestmark = pytest.mark.e2e

APP_ID = "7487153000000000001"
KID = "e2e-production-kid"
#: Seconds an access token lives: the emulator caps every token at this, whatever the app asks for.
LIFETIME = 20
#: What the connection asks for (Coze's default): the answer's ``expires_in`` is what counts.
ASKED_DURATION = 900
#: Seconds each copy task stays in progress from its first poll: about three token lifetimes.
RUNS_FOR = 60
PROXY_USER, PROXY_PASSWORD = "svc-airflow", "Pr0xy-e2e-s3cret"
DEFERRED_LINE = "Pausing task as DEFERRED"
#: Seconds between two looks at the machine's TCP sockets.
WATCH_EVERY = 0.5


@dataclass
class Production:
    """The deployment, its emulator (HTTPS, private CA), the proxy, and the app's private key."""

    airflow: RealAirflow
    emulator: EmulatorServer
    proxy: ForwardProxy
    ca: PrivateCA
    private_key: str


@pytest.fixture(scope="module")
def production(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Production]:
    """A deployment of its own (the ``real_airflow`` fixture's emulator speaks plain HTTP)."""
    require_tinyproxy()
    base = tmp_path_factory.mktemp("production")
    ca = make_private_ca(base / "ca")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_key = private_pem(key)
    home = base / "home"
    home.mkdir()
    proxy = ForwardProxy(tmp_path_factory.mktemp("proxy"), auth=(PROXY_USER, PROXY_PASSWORD)).start()
    try:
        with EmulatorServer(
            coze_tokens=(DEFAULT_COZE_TOKEN, TIMEOUT_ACCOUNT_TOKEN), ssl_context=ca.server_context()
        ) as emulator:
            emulator.add_oauth_app(APP_ID, {KID: public_pem(key)}, token_lifetime=LIFETIME)
            airflow = RealAirflow(home, emulator)
            airflow.env[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = json.dumps(
                {
                    "conn_type": "coze",
                    "host": emulator.base_url,
                    "password": private_key,
                    "extra": {
                        "oauth_app_id": APP_ID,
                        "oauth_public_key_id": KID,
                        "oauth_duration_seconds": ASKED_DURATION,
                        "verify": str(ca.ca),
                        "proxy": proxy.url(credentials=True),
                    },
                }
            )
            try:
                try:
                    airflow.run_cli("db", "migrate")
                    airflow.start_all()
                    airflow.wait_until_ready()
                    _wait_for_dag(airflow)
                except Exception as error:
                    raise RuntimeError(f"Airflow did not start: {error}\n{airflow.diagnostics()}") from error
                yield Production(airflow, emulator, proxy, ca, private_key)
            finally:
                airflow.stop_all()
    finally:
        proxy.stop()


def _wait_for_dag(airflow: RealAirflow, timeout: float = STARTUP_TIMEOUT) -> None:
    """Until the DAG can be triggered (the readiness check knows only the shared DAG ids)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if AIRFLOW_V_3_0_PLUS:
                airflow.api("GET", f"/api/v2/dags/{DAG_ID}")
                return
            rows = airflow.driver._query(  # type: ignore[attr-defined]  # MetadataDbDriver on 2.11
                "SELECT dag.dag_id FROM dag JOIN serialized_dag USING (dag_id)"
                " WHERE dag.dag_id = ? AND is_active AND NOT is_paused",
                DAG_ID,
            )
            if rows:
                return
        except RuntimeError:  # 404 until the dag-processor stored it
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{DAG_ID} not parsed after {timeout:.0f} s")
        airflow.check_alive()
        time.sleep(1)


@dataclass
class SocketWatch:
    """Lists the machine's TCP sockets every :data:`WATCH_EVERY` seconds in a thread: who holds a
    connection to the emulator's port (only the proxy may), who to the proxy's; and collects the
    access tokens the emulator has issued (it keeps them until they expire, longer than a period)."""

    emulator: EmulatorServer
    proxy_port: int
    samples: int = 0
    #: pid → command line, of every process seen holding a connection to the emulator's port.
    to_emulator: dict[int, str] = field(default_factory=dict)
    #: pids seen holding a connection to the proxy's port (the Airflow processes that made requests).
    to_proxy: set[int] = field(default_factory=set)
    proxy_pids: set[int] = field(default_factory=set)
    tokens: set[str] = field(default_factory=set)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> SocketWatch:
        self._thread = threading.Thread(target=self._run, name="socket-watch", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._look()

    def _run(self) -> None:
        while not self._stop.wait(WATCH_EVERY):
            self._look()

    def _look(self) -> None:
        # The emulator's own record of live tokens (private: it is never served, to anyone).
        self.tokens |= set(self.emulator.state.oauth._tokens)
        connections = psutil.net_connections(kind="tcp")
        self.samples += 1
        for conn in connections:
            if conn.status == psutil.CONN_LISTEN and conn.laddr.port == self.proxy_port and conn.pid:
                self.proxy_pids.add(conn.pid)
        for conn in connections:
            if not conn.raddr or conn.pid is None:
                continue
            if conn.raddr.port == self.emulator.port and conn.pid not in self.proxy_pids:
                self.to_emulator.setdefault(conn.pid, _cmdline(conn.pid))
            elif conn.raddr.port == self.proxy_port:
                self.to_proxy.add(conn.pid)


def _cmdline(pid: int) -> str:
    try:
        return " ".join(psutil.Process(pid).cmdline())
    except psutil.Error:
        return "(gone)"


@dataclass
class Exchanges:
    """The token exchanges, by the process that made them (see the module's docstring)."""

    workers: int
    poked: int
    triggerer: int
    unattributed: int
    #: Seconds from the class's first exchange to its last request.
    poked_window: float
    triggerer_window: float
    #: The emulator's connection serials of each class.
    conns: dict[str, set[int | None]] = field(repr=False)


def _attribute(log: list[dict[str, Any]]) -> Exchanges:
    status = [(i, e) for i, e in enumerate(log) if e["call"] == "status"]
    deferred_ids = set(DEFERRED_TASKS.values())
    first_poll: dict[str, int] = {}
    for i, e in status:
        first_poll.setdefault(e["task_id"], i)
    worker_polls = {first_poll[copy_id] for copy_id in deferred_ids if copy_id in first_poll}
    oauth = [e for e in log if e["call"] == "oauth"]
    polled = {e["conn"] for _, e in status}
    conns = {
        "workers": {log[i]["conn"] for i in worker_polls},
        "poked": {e["conn"] for _, e in status if e["task_id"] == POKED_COPY},
        # The trigger's polls, and the async exchanges: each on a connection of its own that carries
        # nothing else (transport/aio.py ``post``); only the triggerer runs the async transport here.
        "triggerer": {e["conn"] for i, e in status if e["task_id"] in deferred_ids and i not in worker_polls}
        | {e["conn"] for e in oauth if e["conn"] not in polled},
    }

    def window(name: str) -> float:
        times = [e["time"] for e in log if e["conn"] in conns[name]]
        exchanged = [e["time"] for e in oauth if e["conn"] in conns[name]]
        return max(times) - min(exchanged) if exchanged else 0.0

    every = set().union(*conns.values())
    return Exchanges(
        workers=sum(e["conn"] in conns["workers"] for e in oauth),
        poked=sum(e["conn"] in conns["poked"] for e in oauth),
        triggerer=sum(e["conn"] in conns["triggerer"] for e in oauth),
        unattributed=sum(e["conn"] not in every for e in oauth),
        poked_window=round(window("poked"), 1),
        triggerer_window=round(window("triggerer"), 1),
        conns=conns,
    )


def _per_lifetime(window: float) -> tuple[int, int]:
    """The fewest and most exchanges a process polling throughout ``window`` seconds makes."""
    return math.ceil(window / (LIFETIME + 1)), 1 + math.ceil(window / (LIFETIME - 3))


def test_oauth_app_behind_private_ca_and_proxy(production: Production, record_property: Any) -> None:
    airflow, emulator, proxy = production.airflow, production.emulator, production.proxy
    for copy_id in [*DEFERRED_TASKS.values(), POKED_COPY]:
        emulator.set_task("coze", copy_id, in_progress_for(RUNS_FOR))
    watch = SocketWatch(emulator, proxy.port).start()
    started = time.time()
    try:
        run_id = airflow.trigger(DAG_ID, {})
        state = airflow.wait_for_run(DAG_ID, run_id, timeout=240)
    finally:
        watch.stop()
    ended = time.time()

    tis = airflow.task_instances(DAG_ID, run_id)
    log = emulator.requests()
    exchanges = emulator.oauth_exchanges()
    tunnels = proxy.requests()
    connections = {e["conn"] for e in log}
    attributed = _attribute(log)
    figures = {
        "airflow": "3" if AIRFLOW_V_3_0_PLUS else "2.11",
        "tasks": len(tis),
        "run seconds": round(ended - started, 1),
        "requests": len(log),
        "status requests": sum(e["call"] == "status" for e in log),
        "exchanges": len(exchanges),
        "exchanges by process": attributed,
        "requests by process": {
            name: sum(e["conn"] in conns for e in log) for name, conns in attributed.conns.items()
        },
        "tokens captured": len(watch.tokens),
        "proxy CONNECT tunnels": len(tunnels),
        "emulator TCP connections": len(connections),
        "socket samples": watch.samples,
        "client pids seen on the proxy": len(watch.to_proxy),
    }
    for name, value in figures.items():
        record_property(name, str(value))
    print("\n" + "\n".join(f"{k}: {v}" for k, v in figures.items()))

    # Every sensor succeeded on its first try; the deferrable ones waited in the triggerer.
    states = {task_id: ti["state"] for task_id, ti in tis.items()}
    assert state == "success", states
    assert set(states) == {*DEFERRED_TASKS, POKED_TASK}
    assert set(states.values()) == {"success"}, states
    assert {ti["try_number"] for ti in tis.values()} == {1}, tis
    task_logs = {task_id: airflow.task_log(DAG_ID, run_id, task_id) for task_id in states}
    assert all(DEFERRED_LINE in task_logs[task_id] for task_id in DEFERRED_TASKS)
    assert DEFERRED_LINE not in task_logs[POKED_TASK]

    # Every request was accepted: each token was renewed before it expired (no 4100, no retry).
    assert {(e["http_status"], e["auth_valid"]) for e in log} == {(200, True)}, [
        (e["call"], e["http_status"]) for e in log if e["http_status"] != 200
    ]
    assert [e["outcome"] for e in exchanges] == ["issued"] * len(exchanges)
    # Each token lived the emulator's lifetime (``expires_in`` rounded up to the second), not the 900 s asked.
    assert all(LIFETIME <= e["expires_in"] - e["time"] <= LIFETIME + 1 for e in exchanges), exchanges
    assert all(e["duration_seconds"] == ASKED_DURATION for e in exchanges)
    assert sum(e["call"] == "oauth" for e in log) == len(exchanges)

    # One exchange per process and token lifetime, whatever the number of tasks or triggers. Each
    # first poke came from a connection (a process) of its own; no connection served two classes.
    workers, poked, triggerer = (attributed.conns[name] for name in ("workers", "poked", "triggerer"))
    assert len(workers) == DEFERRED, workers
    assert not (workers & poked or workers & triggerer or poked & triggerer), attributed.conns
    alone = [e["conn"] for e in log if e["conn"] in triggerer and e["call"] == "oauth"]
    assert len(alone) == len(set(alone)) == attributed.triggerer, "one exchange per connection of its own"
    assert {e["call"] for e in log if e["conn"] in alone} == {"oauth"}
    assert attributed.unattributed == 0, attributed
    assert attributed.workers == DEFERRED, attributed
    low, high = _per_lifetime(attributed.poked_window)
    assert low <= attributed.poked <= high, (attributed, low, high)
    low, high = _per_lifetime(attributed.triggerer_window)
    assert low <= attributed.triggerer <= high, (attributed, low, high)
    assert attributed.triggerer < DEFERRED  # shared: not one per trigger
    assert len(exchanges) == attributed.workers + attributed.poked + attributed.triggerer

    # Every request went through the proxy, in CONNECT tunnels to the emulator.
    emulator_address = f"127.0.0.1:{emulator.port}"
    assert {(t.method, t.target) for t in tunnels} == {("CONNECT", emulator_address)}, tunnels
    assert {t.outcome for t in tunnels} <= {"relayed", "open"}, tunnels  # none refused (credentials)
    assert len(connections) == len(tunnels), (len(connections), len(tunnels))
    assert watch.proxy_pids, "the watcher never found the proxy's listening socket"
    assert watch.to_emulator == {}, f"connected to the emulator, not through the proxy: {watch.to_emulator}"
    assert watch.to_proxy, "the watcher never saw a client of the proxy"

    # No secret in any log: the private key, the tokens, the JWTs, the proxy's password.
    logs = {str(path): text for path, text in airflow.all_logs().items()}
    logs["tinyproxy.log"] = proxy.log()
    assert any(f"task_id={POKED_TASK}" in path for path in logs)
    for task_id in DEFERRED_TASKS:  # the trigger's part of each deferred task's log is among them
        assert any(f"task_id={task_id}/" in path and ".trigger." in path for path in logs), task_id
    assert watch.tokens, "no access token captured"
    secrets = {
        **{f"private key line {n}": line for n, line in enumerate(body_lines(production.private_key))},
        **{f"access token {token[:8]}…": token for token in watch.tokens},
        "the proxy password": PROXY_PASSWORD,
    }
    leaks = [
        (path, name) for path, text in logs.items() for name, secret in secrets.items() if secret in text
    ]
    leaks += [(path, "czs_ token") for path, text in logs.items() if re.search(r"czs_[A-Za-z0-9_-]{8}", text)]
    leaks += [(path, f"JWT {jwt[:12]}…") for path, text in logs.items() for jwt in JWT_PATTERN.findall(text)]
    assert leaks == []

"""Run the emulator in a background thread, so synchronous code (tests, a DAG run) can talk to it."""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any

from aiohttp import web

from .app import create_app
from .binding import StartError, check_host, check_port
from .limits import RateLimits
from .oauth import OAuthApp
from .oauth_http import add_oauth_routes
from .packages import check_resources
from .plans import plans_from_spec
from .scripts import GLOBAL_FAULTS, Step
from .state import EmulatorState
from .validation import make_task

__all__ = [
    "DEFAULT_COZE_TOKEN",
    "DEFAULT_TRUEWATCH_KEY",
    "EmulatorServer",
    "StartError",
    "airflow_connections",
    "check_host",
    "check_port",
]

DEFAULT_COZE_TOKEN = "pat_emulator_token"
DEFAULT_TRUEWATCH_KEY = "tw_emulator_key"

#: aiohttp's default format minus the Referer and User-Agent; never includes a header with a credential.
ACCESS_LOG_FORMAT = '%a "%r" %s %b %Tfs'


def airflow_connections(
    base_url: str, coze_token: str = DEFAULT_COZE_TOKEN, truewatch_key: str = DEFAULT_TRUEWATCH_KEY
) -> dict[str, str]:
    """``AIRFLOW_CONN_*`` variables pointing ``coze_default`` and ``truewatch_default`` at an emulator."""
    return {
        "AIRFLOW_CONN_COZE_DEFAULT": json.dumps(
            {"conn_type": "coze", "host": base_url, "password": coze_token}
        ),
        "AIRFLOW_CONN_TRUEWATCH_DEFAULT": json.dumps(
            {"conn_type": "truewatch", "host": base_url, "password": truewatch_key}
        ),
    }


class EmulatorServer:
    """The Coze + TrueWatch emulator on its own event loop in a daemon thread.

    It accepts any credential in ``coze_tokens`` / ``truewatch_keys`` and binds to loopback only,
    unless ``allow_remote=True``: it has unauthenticated control endpoints (a ValueError says so).
    :meth:`start` raises :class:`StartError` (an OSError) if it cannot listen. With ``ssl_context`` (a
    server context with its certificate loaded) it serves HTTPS; ``access_log=False`` skips the
    per-request access log line (the benchmark's load would spend its time writing it).
    ``rate_limits`` turns on the services' request budgets (:mod:`.limits`); by default none.
    ``oauth_apps`` are OAuth service apps registered from the start and again after each
    :meth:`reset` (:meth:`add_oauth_app` adds one until the next reset; see :mod:`.oauth`).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        coze_tokens: Iterable[str] = (DEFAULT_COZE_TOKEN,),
        truewatch_keys: Iterable[str] = (DEFAULT_TRUEWATCH_KEY,),
        allow_remote: bool = False,
        ssl_context: ssl.SSLContext | None = None,
        access_log: bool = True,
        rate_limits: RateLimits | None = None,
        oauth_apps: Iterable[OAuthApp] = (),
    ) -> None:
        check_host(host, allow_remote)
        check_port(port)
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self.access_log = access_log
        self.state = EmulatorState(coze_tokens, truewatch_keys, rate_limits, oauth_apps)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://{host}:{self.port}"

    def start(self) -> EmulatorServer:
        """Start serving; return once the socket listens (``port`` is then the bound port)."""
        if self._thread is not None:
            raise RuntimeError("emulator already started")
        self._ready.clear()
        self._error = None
        self._thread = threading.Thread(target=self._run, name="taskstatus-emulator", daemon=True)
        self._thread.start()
        self._ready.wait()
        error, self._error = self._error, None
        if error is not None:
            self._thread.join()
            self._thread = None
            if isinstance(error, OSError):  # the user's to fix (busy port, unknown host): no traceback
                raise StartError(self.host, self.port, error) from None
            raise RuntimeError(f"emulator failed to start on {self.host}:{self.port}") from error
        return self

    def stop(self) -> None:
        """Stop serving and join the thread; a no-op if not running."""
        if self._thread is None:
            return
        if self._loop is not None and self._stop_event is not None:
            self._loop.call_soon_threadsafe(self._stop_event.set)
        self._thread.join()
        self._thread = None

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def set_task(
        self,
        api: str,
        task_id: str,
        steps: list[Step],
        entity_type: str | None = None,
        action: str | None = None,
    ) -> None:
        """Create or replace a scripted task (see :mod:`.scripts` for the step format).

        Raises ValueError (:class:`~.validation.SpecError`) on a key or value the format does not
        know, with the same message ``POST /_emulator/tasks`` answers.
        """
        self.state.add_task(make_task(api, task_id, steps, entity_type, action))

    def inject_faults(self, api: str, steps: list[Step]) -> None:
        """Answer the API's next requests with ``steps`` (counting ``repeat`` and ``seconds``), whatever the task.

        The tasks' own scripts pause meanwhile and resume where they were. Reset clears them.
        """
        self.state.inject_faults(make_task(api, GLOBAL_FAULTS, steps))

    def set_rate_limits(self, limits: RateLimits | None) -> None:
        """Enforce ``limits`` from now on (None: unlimited), counting from empty windows.

        :meth:`reset` goes back to the ``rate_limits`` the server was built with.
        """
        self.state.limiter.configure(limits)

    @property
    def rate_limits(self) -> RateLimits:
        """The request budgets in force."""
        return self.state.limiter.limits

    def task_changes(self, api: str, task_id: str) -> list[dict[str, Any]]:
        """When each step of a task started answering, oldest first (``task_id`` ``"*"``: global faults).

        Each entry is ``{"time": epoch seconds, "step": index, "status": the step's status or None,
        "answer": the step}``; e.g. the time the client first saw ``ok``:
        ``next(c["time"] for c in server.task_changes("truewatch", "t") if c["status"] == "ok")``.
        Raises KeyError for an unknown task.
        """
        changes = self.state.changes(api, task_id)
        if changes is None:
            raise KeyError(f"no {api} task {task_id!r}")
        return changes

    def plan_starts(self, api: str, plans: list[dict[str, Any]]) -> None:
        """Queue plans for the API's next start calls (see :mod:`.plans` for the format).

        Raises ValueError (:class:`~.validation.SpecError`) with the message ``POST /_emulator/starts``
        answers; nothing is queued then. Reset clears the plans.
        """
        self.state.starts.add_plans(api, plans_from_spec(api, plans))

    def started(self, api: str | None = None) -> list[dict[str, Any]]:
        """Every remote side effect of a start call since the last reset, oldest first.

        Each is ``{"api", "task_id" (None for a synchronous bot copy), "kind": "task" | "copy",
        "entity_id" (Coze) or "action" (TrueWatch), "time", "answered"}``; ``answered`` is False when
        the client was not told (the answer was lost, reset, truncated, an error, or it had gone).
        """
        return self.state.started(api)

    def start_count(self, api: str | None = None) -> int:
        """How many side effects the start calls of ``api`` (all if None) caused."""
        return self.state.start_count(api)

    def set_workspace_resources(self, resources: Mapping[str, Iterable[str]]) -> None:
        """Replace the TrueWatch workspace's resources (names by kind) that imports conflict with.

        :meth:`reset` restores the seed (``packages.SEED_RESOURCES``).
        """
        self.state.starts.set_resources(check_resources(resources))

    def workspace_resources(self) -> dict[str, list[str]]:
        """The TrueWatch workspace's resource names by kind, imports included."""
        return self.state.starts.resources()

    def add_oauth_app(
        self,
        app_id: str,
        public_keys: Mapping[str, str | bytes],
        token_lifetime: float | None = None,
        account_ids: Iterable[str] | None = None,
    ) -> None:
        """Register (or redefine) an OAuth service app until the next :meth:`reset` (see :mod:`.oauth`).

        ``public_keys``: kid -> PEM RSA public key; ``token_lifetime`` caps its tokens' lifetime
        (seconds, may be fractional); ``account_ids``: the accounts the enterprise variant accepts
        (None or empty: any). Raises ValueError on a bad PEM, or a kid that is another app's.
        """
        self.state.oauth.add_app(OAuthApp(app_id, public_keys, token_lifetime, account_ids))

    def revoke_oauth_key(self, kid: str) -> None:
        """Refuse later exchanges signed with ``kid`` (401 ``invalid_client``); its tokens keep working.

        KeyError if no app has the key.
        """
        self.state.oauth.revoke(kid)

    def expire_oauth_tokens(self) -> None:
        """Every access token issued so far answers 4100 from now on."""
        self.state.oauth.expire_tokens()

    def fail_next_oauth(
        self, error_code: str, http_status: int | None = None, times: int = 1, message: str | None = None
    ) -> None:
        """Answer the next ``times`` exchanges with ``error_code`` (e.g. ``internal_error``: 500).

        ``http_status`` defaults to the code's (``oauth.ERROR_STATUS``, 500 if unknown). Nothing is
        checked or spent by such an exchange: the same JWT may be sent again.
        """
        self.state.oauth.fail_next(error_code, http_status, times, message)

    def oauth_exchanges(self, outcome: str | None = None) -> list[dict[str, Any]]:
        """Every token exchange since the last reset, oldest first (``outcome``: ``"issued"`` or an error code).

        Each is ``{"time", "app_id", "kid", "account_id", "duration_seconds" (as asked, None if not),
        "outcome", "http_status", "expires_in" (issued), "message" (errors)}``: never the JWT or the token.
        """
        return self.state.oauth.exchanges(outcome)

    def oauth_exchange_count(self, outcome: str | None = None) -> int:
        return len(self.state.oauth.exchanges(outcome))

    def requests(
        self, api: str | None = None, task_id: str | None = None, call: str | None = None
    ) -> list[dict[str, Any]]:
        """The requests received so far, oldest first; ``call``: ``"status"``, ``"start"`` or ``"oauth"``."""
        return self.state.requests(api, task_id, call)

    def stats(self, since: float | None = None, until: float | None = None) -> dict[str, Any]:
        """Request, connection and rejection counts (see ``EmulatorState.stats``)."""
        return self.state.stats(since, until)

    def reset(self) -> None:
        """Restore the seeded demo tasks, workspace resources, initial rate limits and OAuth apps;
        clear the request log, windows, start plans, started tasks, OAuth tokens and exchanges."""
        self.state.reset()

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException as exc:  # reported to start() if it happens before listening
            self._error = exc
        finally:
            self._ready.set()
            self._loop.close()
            self._loop = None

    async def _serve(self) -> None:
        self._stop_event = asyncio.Event()
        # A short shutdown timeout: a test may leave a "delay" step sleeping when it stops the server.
        logging: dict[str, Any] = {"access_log_format": ACCESS_LOG_FORMAT}
        if not self.access_log:
            logging["access_log"] = None
        app = create_app(self.state)
        add_oauth_routes(app)  # Coze's token exchange and /_emulator/oauth
        runner = web.AppRunner(app, shutdown_timeout=1.0, **logging)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port, ssl_context=self.ssl_context).start()
            self.port = runner.addresses[0][1]
            self._ready.set()
            await self._stop_event.wait()
        finally:
            await runner.cleanup()

"""The hook every status API shares: connection → endpoint, then sync or async status calls."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from airflow.providers.common.compat.sdk import AirflowNotFoundException, BaseHook

from airflow_provider_taskstatus.compat import AIRFLOW_V_3_2_PLUS, aget_connection, amask_secret, mask_secret
from airflow_provider_taskstatus.connection_forms import ConnectionForm
from airflow_provider_taskstatus.models import connection
from airflow_provider_taskstatus.models.base import (
    ApiError,
    StatusApi,
    TaskStatus,
    TaskStatusError,
    validate_task_id,
)
from airflow_provider_taskstatus.models.coze_oauth import oauth_app
from airflow_provider_taskstatus.models.start import Started, StartRequest
from airflow_provider_taskstatus.transport.network import Route, route
from airflow_provider_taskstatus.transport.policy import RetryPolicy
from airflow_provider_taskstatus.transport.sync import SyncTransport
from airflow_provider_taskstatus.transport.throttle import AccountThrottle, account_key, budget, throttle_for
from airflow_provider_taskstatus.transport.tokens import Masking, OAuthCredentials, StaticCredentials

if TYPE_CHECKING:
    import requests

    from airflow_provider_taskstatus.transport.aio import Lease

T = TypeVar("T")

#: How run-time secrets (an OAuth JWT and access token) reach Airflow's masker.
MASKING = Masking(mask_secret, amask_secret)


@dataclass(frozen=True)
class Endpoint:
    base_url: str
    #: The token or key of the password field, or a Coze OAuth service app's access tokens.
    credentials: StaticCredentials | OAuthCredentials = field(repr=False)
    #: Shared by every hook of the same account in this process.
    throttle: AccountThrottle = field(repr=False)
    #: The service's web console, for the links in a task's page; None if unknown.
    console_url: str | None = None
    #: TLS verification and proxy of every request.
    route: Route = field(default_factory=Route)


class TaskStatusHook(BaseHook):
    """Reads the status of a remote task through one Airflow connection.

    Subclasses declare the API adapter and the connection metadata; they implement nothing.

    :param conn_id: the Airflow connection holding the endpoint and the secret (password field).
    :param request_policy: timeouts and retries of each request; the defaults suit most accounts.
    """

    api: ClassVar[StatusApi]
    conn_name_attr: ClassVar[str]
    default_conn_name: ClassVar[str]
    conn_type: ClassVar[str]
    hook_name: ClassVar[str]
    #: Connection form metadata, also published through ``get_provider_info``.
    form: ClassVar[ConnectionForm]

    def __init__(
        self, conn_id: str | None = None, request_policy: RetryPolicy | None = None, **kwargs: str
    ) -> None:
        super().__init__()
        # Airflow builds a hook as HookClass(**{conn_name_attr: conn_id}) (Connection.get_hook(), which
        # the UI's and REST's Test button and `airflow connections test` use): coze_conn_id=... here.
        named = kwargs.pop(self.conn_name_attr, None)
        if kwargs:
            raise TypeError(f"{type(self).__name__}() got unexpected keyword arguments: {', '.join(kwargs)}")
        if conn_id and named and conn_id != named:
            raise ValueError(
                f"{type(self).__name__}: conn_id={conn_id!r} and {self.conn_name_attr}={named!r} differ"
            )
        self.conn_id = conn_id or named or self.default_conn_name
        self.request_policy = request_policy or RetryPolicy()
        self._endpoint: Endpoint | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "form" in cls.__dict__ and not AIRFLOW_V_3_2_PLUS:
            # Airflow before 3.2 reads a form only from methods of the concrete hook class itself.
            form = cls.form
            cls.get_ui_field_behaviour = staticmethod(form.ui_field_behaviour)  # type: ignore[method-assign]
            cls.get_connection_form_widgets = staticmethod(form.connection_form_widgets)  # type: ignore[method-assign]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(conn_id={self.conn_id!r})"

    # -- connection -------------------------------------------------------------------------

    def _endpoint_from(self, conn: Any, extra: dict[str, Any]) -> Endpoint:
        if conn.conn_type and conn.conn_type != self.conn_type:
            # Before anything else: the other service's secret must never leave for this one's host.
            raise TaskStatusError(
                f"Connection {self.conn_id!r} is of type {conn.conn_type!r}, but {type(self).__name__} "
                f"needs a {self.conn_type!r} connection ({self.hook_name}): give the "
                f"{self.conn_name_attr} of one, or change this connection's type."
            )
        secret = conn.password
        if not secret:
            raise TaskStatusError(
                f"Connection {self.conn_id!r} has no secret: put the {self.api.name} "
                f"{self.form.secret_label} in its password field."
            )
        try:
            base_url = self.api.base_url(conn.host or None, conn.port or None, extra)
        except ValueError as error:
            raise TaskStatusError(f"Connection {self.conn_id!r}: {error}") from None
        app = oauth_app(self.conn_id, secret, extra) if self.api.oauth else None
        network = route(self.conn_id, base_url, connection.network(self.conn_id, extra))
        rate = budget(self.api.requests_per_minute, connection.requests_per_minute(self.conn_id, extra))
        throttle = throttle_for(account_key(self.api.name, base_url, app.cache_key if app else secret), rate)
        console = connection.console_url(self.conn_id, extra) or self.api.console_url(base_url)
        credentials: StaticCredentials | OAuthCredentials
        if app is None:
            credentials = StaticCredentials(self.api.auth_headers(secret))
        else:
            static = self.api.auth_headers("")
            credentials = OAuthCredentials(
                app, base_url, static, throttle, network, self.request_policy, MASKING
            )
        return Endpoint(base_url, credentials, throttle, console, network)

    @contextmanager
    def _lookup(self) -> Iterator[None]:
        """Turn Airflow's "isn't defined" into what to create, and where."""
        try:
            yield
        except AirflowNotFoundException:
            raise TaskStatusError(
                f"Connection {self.conn_id!r} is not defined: create a connection of type {self.conn_type!r} "
                f"(Admin → Connections, or the AIRFLOW_CONN_{self.conn_id.upper()} environment variable)."
            ) from None

    def get_endpoint(self) -> Endpoint:
        if self._endpoint is None:
            with self._lookup():
                conn = self.get_connection(self.conn_id)
            if conn.password:
                mask_secret(conn.password)
            endpoint = self._endpoint_from(conn, conn.extra_dejson)
            if endpoint.route.proxy_password:
                mask_secret(endpoint.route.proxy_password)
            self._endpoint = endpoint
        return self._endpoint

    async def aget_endpoint(self) -> Endpoint:
        if self._endpoint is None:
            with self._lookup():
                conn, extra = await aget_connection(self, self.conn_id)
            if conn.password:
                await amask_secret(conn.password)
            endpoint = self._endpoint_from(conn, extra)
            if endpoint.route.proxy_password:
                await amask_secret(endpoint.route.proxy_password)
            self._endpoint = endpoint
        return self._endpoint

    # -- status calls -----------------------------------------------------------------------

    @cached_property
    def _transport(self) -> SyncTransport:
        return SyncTransport(self.request_policy)

    def get_conn(self) -> requests.Session:
        """The ``requests.Session`` this hook reuses across calls."""
        return self._transport.session

    def get_task_status(self, task_id: str, *, deadline: float | None = None) -> TaskStatus:
        """The remote task's classified status; raises :class:`ApiError` when the API gives none.

        :param deadline: the end of the caller's wait, in epoch seconds (``time.time()``): no request,
            retry or pause runs past it; when it comes first, :class:`DeadlineError` (an ``ApiError``).
        """
        task_id = validate_task_id(task_id)
        endpoint = self.get_endpoint()
        url = endpoint.base_url + self.api.status_path(task_id)
        return self._authorized(
            endpoint,
            lambda headers: self._transport.get(
                url,
                headers,
                lambda response: self.api.interpret(response, task_id),
                endpoint.throttle,
                endpoint.route,
                deadline,
            ),
        )

    async def alease(self, task_id: str) -> Lease:
        """A lease on the event loop's pooled session for a wait on ``task_id``, to enter with ``async with``.

        Every poll meanwhile reuses its kept-alive connections, and coalescing learns how many
        waits in the loop share the task's request.
        """
        from airflow_provider_taskstatus.transport import aio  # aiohttp: kept out of DAG parsing

        task_id = validate_task_id(task_id)
        endpoint = await self.aget_endpoint()
        return aio.Lease((endpoint.throttle, endpoint.base_url + self.api.status_path(task_id)))

    async def aget_task_status(
        self, task_id: str, reuse_within: float = 0.0, *, deadline: float | None = None
    ) -> TaskStatus:
        """Async twin of :meth:`get_task_status`, for triggers.

        Concurrent calls for the same task and account in this event loop share one request; an
        answer younger than ``reuse_within`` seconds is reused without one. Each call keeps to its
        own ``deadline``, also while it waits on a request another call started.
        """
        from airflow_provider_taskstatus.transport import aio  # aiohttp: kept out of DAG parsing

        task_id = validate_task_id(task_id)
        endpoint = await self.aget_endpoint()
        url = endpoint.base_url + self.api.status_path(task_id)
        return await self._aauthorized(
            endpoint,
            lambda headers: aio.get(
                url,
                headers,
                lambda response: self.api.interpret(response, task_id),
                self.request_policy,
                endpoint.throttle,
                endpoint.route,
                reuse_within,
                deadline,
            ),
        )

    # -- start calls ------------------------------------------------------------------------

    def _start(self, request: StartRequest) -> Started:
        """Send a start call built by the API adapter; see ``Retrying`` for which failures are retried."""
        endpoint = self.get_endpoint()
        return self._authorized(
            endpoint,
            lambda headers: self._transport.post(
                endpoint.base_url + request.path,
                headers,
                request,
                lambda response: self.api.interpret_start(response, request),
                endpoint.throttle,
                endpoint.route,
            ),
        )

    async def _astart(self, request: StartRequest) -> Started:
        from airflow_provider_taskstatus.transport import aio  # aiohttp: kept out of DAG parsing

        endpoint = await self.aget_endpoint()
        return await self._aauthorized(
            endpoint,
            lambda headers: aio.post(
                endpoint.base_url + request.path,
                headers,
                request,
                lambda response: self.api.interpret_start(response, request),
                self.request_policy,
                endpoint.throttle,
                endpoint.route,
            ),
        )

    # -- credentials ------------------------------------------------------------------------

    def _authorized(self, endpoint: Endpoint, send: Callable[[Mapping[str, str]], T]) -> T:
        """``send`` with the endpoint's headers; once more with a renewed OAuth token if the API
        rejected the one it carried (a rejected request created nothing, so resending is safe)."""
        headers = endpoint.credentials.get(self._transport)
        try:
            return send(headers)
        except ApiError as error:
            if not endpoint.credentials.rejected(error, headers):
                raise
            self.log.info("%s rejected the OAuth access token (%s): renewing it", self.api.name, error.code)
        return send(endpoint.credentials.get(self._transport))

    async def _aauthorized(self, endpoint: Endpoint, send: Callable[[Mapping[str, str]], Awaitable[T]]) -> T:
        """Async twin of :meth:`_authorized`."""
        headers = await endpoint.credentials.aget()
        try:
            return await send(headers)
        except ApiError as error:
            if not endpoint.credentials.rejected(error, headers):
                raise
            self.log.info("%s rejected the OAuth access token (%s): renewing it", self.api.name, error.code)
        return await send(await endpoint.credentials.aget())

    def test_connection(self) -> tuple[bool, str]:
        """Tell a working secret from a bad one with one request and no retries; never raise.

        Airflow's Test button, REST and ``airflow connections test`` show the message as it is.
        """
        from airflow_provider_taskstatus.hooks.probe import test_connection

        return test_connection(self)

"""Test Connection: one request without retries, and one line that says what works or what to fix.

For a Coze OAuth service app it names the step that failed: the key, the exchange, the API call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_provider_taskstatus.models.base import ApiError, ErrorKind, TaskStatusError
from airflow_provider_taskstatus.models.coze_oauth import OAuthError, load_private_key
from airflow_provider_taskstatus.transport.policy import RetryPolicy
from airflow_provider_taskstatus.transport.tokens import OAuthCredentials

if TYPE_CHECKING:
    from airflow_provider_taskstatus.hooks.base import TaskStatusHook

#: Any id will do: a good token gets "not found", a bad one an auth error.
PROBE_TASK_ID = "airflow-connection-test"

#: What to check when Test Connection meets an error the API's own message does not explain.
HINTS = {
    ErrorKind.TRANSIENT: ". Check the host, and that this machine can reach it (proxy, firewall).",
    ErrorKind.RATE_LIMITED: ". The account is rate limited right now: test again in a minute.",
}


def test_connection(hook: TaskStatusHook) -> tuple[bool, str]:
    """``(works, message)`` for ``hook``'s connection; never raises."""
    probe = type(hook)(hook.conn_id, RetryPolicy(timeout=10, max_retries=0))
    steps = _Steps()
    try:
        endpoint = probe.get_endpoint()
        credentials = endpoint.credentials
        if isinstance(credentials, OAuthCredentials):
            steps.oauth = True
            steps.now = "private key"
            load_private_key(hook.conn_id, credentials.app.private_key)
            steps.now = "token exchange"
            credentials.get(probe._transport, fresh=True)  # the key as it is now, not a kept token
            steps.now = "API call"
        probe.get_task_status(PROBE_TASK_ID)
    except ApiError as error:
        if isinstance(error, OAuthError) or error.kind not in (ErrorKind.NOT_FOUND, ErrorKind.BAD_REQUEST):
            return False, steps.failed(f"{error}{HINTS.get(error.kind, '')}")
    except TaskStatusError as error:
        return False, steps.failed(str(error))
    where = f"{hook.api.name} at {endpoint.base_url}"
    if isinstance(credentials, OAuthCredentials):
        app = credentials.app
        return True, (
            f"Connection works: {where} issued an access token to OAuth app {app.app_id} "
            f"(key {app.key_id}) and accepted it."
        )
    return True, f"Connection works: {where} accepted the {hook.form.secret_label}."


class _Steps:
    """Where the test of an OAuth service app stands, for the message of a failure."""

    ORDER = ("private key", "token exchange", "API call")

    def __init__(self) -> None:
        self.oauth = False
        self.now = "connection"

    def failed(self, message: str) -> str:
        if not self.oauth or self.now not in self.ORDER:
            return message
        number = self.ORDER.index(self.now) + 1
        return f"Step {number} of {len(self.ORDER)} ({self.now}) failed: {message}"

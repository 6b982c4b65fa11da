"""Connection types and their UI forms, declared once as plain data.

Airflow reads forms in two ways: from 3.2 on, ``conn-fields`` and ``ui-field-behaviour`` in the
provider info (read while Airflow starts, so this module imports nothing from Airflow at the top);
before 3.2, ``get_ui_field_behaviour()`` and ``get_connection_form_widgets()`` (WTForms fields) on
the concrete hook class. :class:`ConnectionForm` renders both from the same declaration.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from airflow_provider_taskstatus.models.coze import DEFAULT_HOST, INTERNATIONAL_HOST
from airflow_provider_taskstatus.models.truewatch import DEFAULT_SITE, SITES


@dataclass(frozen=True)
class ExtraField:
    """One labelled setting kept in the connection's extra under :attr:`name`.

    ``choices`` (value → label) makes it a picker; ``None`` among them is "not set".
    """

    name: str
    label: str
    description: str
    type: str = "string"
    choices: dict[str | None, str] | None = None

    def json_schema(self) -> dict[str, Any]:
        """The field as Airflow 3.2+ reads it from ``conn-fields``: optional, labelled choices."""
        schema: dict[str, Any] = {"type": [self.type, "null"]}
        if self.choices is not None:
            schema["enum"] = list(self.choices)
            # The UI shows these labels instead of raw values; it looks None up as "null".
            schema["values_display"] = {
                "null" if value is None else value: label for value, label in self.choices.items()
            }
        if self.type == "number":
            schema["exclusiveMinimum"] = 0
        if self.type == "integer":
            schema["minimum"] = 1
        return {"label": self.label, "description": self.description, "schema": schema}

    def wtforms_field(self) -> Any:
        """The field as Airflow before 3.2 reads it: a WTForms field (mocked by Airflow 3.0-3.1's API)."""
        from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
        from flask_babel import lazy_gettext
        from wtforms import StringField
        from wtforms.validators import Optional, any_of

        validators: list[Any] = [Optional()]
        description = self.description
        if self.choices is not None:
            values = [value for value in self.choices if value is not None]
            validators.append(any_of(values))
            description = f"{description} One of: {', '.join(values)}."
        # A number stays a StringField: IntegerField would refuse "1.5", and the hook parses the text.
        return StringField(
            lazy_gettext(self.label),
            widget=BS3TextFieldWidget(),
            validators=validators,
            description=description,
        )


@dataclass(frozen=True)
class ConnectionForm:
    conn_type: str
    hook_name: str
    default_conn_name: str
    hook_class_name: str
    hidden_fields: tuple[str, ...]
    relabeling: dict[str, str]
    placeholders: dict[str, str]
    extra_fields: tuple[ExtraField, ...] = field(default=())
    #: What messages call the password field's usual secret, when its label names more than one.
    secret_name: str | None = None

    @property
    def secret_label(self) -> str:
        return self.secret_name or self.relabeling["password"]

    def ui_field_behaviour(self) -> dict[str, Any]:
        """``get_ui_field_behaviour()``'s answer, as Airflow before 3.2 reads it from the hook class."""
        return {
            "hidden_fields": list(self.hidden_fields),
            "relabeling": dict(self.relabeling),
            "placeholders": dict(self.placeholders),
        }

    def connection_form_widgets(self) -> dict[str, Any]:
        """``get_connection_form_widgets()``'s answer (Airflow before 3.2), keyed by the extra's key."""
        return {extra.name: extra.wtforms_field() for extra in self.extra_fields}

    def provider_info(self) -> dict[str, Any]:
        """The connection type's entry in provider info (forms read by Airflow 3.2+)."""
        return {
            "hook-class-name": self.hook_class_name,
            "hook-name": self.hook_name,
            "connection-type": self.conn_type,
            # The same behaviour, in provider.yaml's spelling of its first key.
            "ui-field-behaviour": {
                key.replace("_", "-"): value for key, value in self.ui_field_behaviour().items()
            },
            "conn-fields": {extra.name: extra.json_schema() for extra in self.extra_fields},
        }


def _console_url(example: str) -> ExtraField:
    return ExtraField(
        name="console_url",
        label="Console URL",
        description=(
            f"Optional. The web console the links in a task's page open (e.g. {example}). Empty: the "
            "public console that goes with the host or site, and no link for other hosts."
        ),
    )


def _requests_per_minute(budget: str) -> ExtraField:
    return ExtraField(
        name="requests_per_minute",
        label="Requests per minute",
        description=(
            f"Optional. This account's request budget in each process ({budget}). Empty: 90% of the "
            "API's documented budget, if it has one; 0: no pacing until the server answers a rate limit. "
            "Each process also slows down on rate limits, so several share one budget."
        ),
        type="number",
    )


def _network() -> tuple[ExtraField, ...]:
    """TLS and proxy: the same two settings on every connection type."""
    return (
        ExtraField(
            name="verify",
            label="Verify TLS (true, false or CA bundle path)",
            description=(
                "Optional. How the server's certificate is checked: true (default: the system's trust "
                "store), false (not checked: testing only), or the path of a CA bundle (PEM) for a private "
                "certificate authority; the file must exist on every worker and triggerer."
            ),
        ),
        ExtraField(
            name="proxy",
            label="Proxy URL",
            description=(
                "Optional. An HTTP proxy for every request of this connection, e.g. "
                "http://proxy.example:3128 or http://user:password@proxy.example:3128 (the password is "
                "masked in logs). Empty: the HTTPS_PROXY / HTTP_PROXY / NO_PROXY environment applies."
            ),
        ),
    )


COZE_FORM = ConnectionForm(
    conn_type="coze",
    hook_name="Coze",
    default_conn_name="coze_default",
    hook_class_name="airflow_provider_taskstatus.hooks.coze.CozeHook",
    hidden_fields=("schema", "login", "port"),
    relabeling={"host": "Host", "password": "API token or OAuth private key"},
    secret_name="API token",
    placeholders={
        "host": f"{DEFAULT_HOST} (default, coze.cn tokens) or {INTERNATIONAL_HOST} (coze.com tokens)",
        "password": "pat_… access token; or, with an OAuth app id, the app's private key (PEM)",
        "extra": '{"requests_per_minute": 60}',
    },
    extra_fields=(
        ExtraField(
            name="oauth_app_id",
            label="OAuth app id",
            description=(
                "Optional. The id of a Coze OAuth service application (JWT): set it to sign in as the app "
                "instead of with a token; the password field then holds the app's private key (PEM)."
            ),
        ),
        ExtraField(
            name="oauth_public_key_id",
            label="OAuth public key id",
            description="With an OAuth app id: the id (fingerprint) of the public key of the key pair.",
        ),
        ExtraField(
            name="oauth_duration_seconds",
            label="OAuth token lifetime (seconds)",
            description=(
                "Optional. How long each access token lives, 1 to 86399 (empty: 900). The provider "
                "exchanges a new one shortly before it expires, once per process and account."
            ),
            type="integer",
        ),
        ExtraField(
            name="oauth_account_id",
            label="OAuth enterprise account id",
            description="Optional. For an enterprise with several organisations: the account to act for.",
        ),
        _requests_per_minute("Coze limits each account per minute and per day, figures unpublished"),
        _console_url("https://www.coze.cn"),
        *_network(),
    ),
)

TRUEWATCH_FORM = ConnectionForm(
    conn_type="truewatch",
    hook_name="TrueWatch (Guance)",
    default_conn_name="truewatch_default",
    hook_class_name="airflow_provider_taskstatus.hooks.truewatch.TrueWatchHook",
    hidden_fields=("schema", "login", "port"),
    relabeling={"host": "Host (private deployment only)", "password": "API key (DF-API-KEY)"},
    placeholders={
        "host": "leave empty for a public site; e.g. openapi.example.internal or gw.example/guance",
        "password": "the API key's secret, not its id",
        "extra": '{"site": "guance", "requests_per_minute": 20}',
    },
    extra_fields=(
        ExtraField(
            name="site",
            label="Site",
            description=(
                f"The TrueWatch or Guance site of the workspace (empty: {DEFAULT_SITE}). "
                "Leave it empty when the host names a private deployment."
            ),
            choices={
                None: f"Default: {DEFAULT_SITE} ({SITES[DEFAULT_SITE]}), or the host above",
                **{site: f"{site} ({host})" for site, host in SITES.items()},
            },
        ),
        _requests_per_minute("TrueWatch allows 20 per minute per API key: empty paces at 18"),
        _console_url("https://console.guance.example.internal"),
        *_network(),
    ),
)

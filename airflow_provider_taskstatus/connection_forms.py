"""Connection types and their UI forms, as plain data.

Airflow reads these through ``get_provider_info`` while it is still starting up, so this module
imports nothing from Airflow; the hooks take their class attributes from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from airflow_provider_taskstatus.models.coze import DEFAULT_HOST, INTERNATIONAL_HOST
from airflow_provider_taskstatus.models.truewatch import DEFAULT_SITE, SITES


@dataclass(frozen=True)
class ConnectionForm:
    conn_type: str
    hook_name: str
    default_conn_name: str
    hook_class_name: str
    ui_field_behaviour: dict[str, Any]
    conn_fields: dict[str, Any] = field(default_factory=dict)

    def provider_info(self) -> dict[str, Any]:
        return {
            "hook-class-name": self.hook_class_name,
            "hook-name": self.hook_name,
            "connection-type": self.conn_type,
            "ui-field-behaviour": self.ui_field_behaviour,
            "conn-fields": self.conn_fields,
        }


COZE_FORM = ConnectionForm(
    conn_type="coze",
    hook_name="Coze",
    default_conn_name="coze_default",
    hook_class_name="airflow_provider_taskstatus.hooks.coze.CozeHook",
    ui_field_behaviour={
        "hidden-fields": ["schema", "login", "port", "extra"],
        "relabeling": {"host": "Host", "password": "API token"},
        "placeholders": {
            "host": f"{DEFAULT_HOST} (default) or {INTERNATIONAL_HOST}",
            "password": "pat_… personal, service or OAuth access token",
        },
    },
)

TRUEWATCH_FORM = ConnectionForm(
    conn_type="truewatch",
    hook_name="TrueWatch (Guance)",
    default_conn_name="truewatch_default",
    hook_class_name="airflow_provider_taskstatus.hooks.truewatch.TrueWatchHook",
    ui_field_behaviour={
        "hidden-fields": ["schema", "login", "port"],
        "relabeling": {"host": "Host (private deployment only)", "password": "API key (DF-API-KEY)"},
        "placeholders": {
            "host": "leave empty for a public site; e.g. openapi.example.internal",
            "password": "the API key's secret, not its id",
        },
    },
    conn_fields={
        "site": {
            "label": "Site",
            "description": (
                f"The TrueWatch or Guance site of the workspace (empty: {DEFAULT_SITE}). "
                "Leave it empty when the host names a private deployment."
            ),
            "schema": {"type": ["string", "null"], "enum": [*SITES, None]},
        }
    },
)

"""Provider metadata read by Airflow's ``ProvidersManager`` through the entry point."""

from __future__ import annotations

from typing import Any

from airflow_provider_taskstatus import __version__
from airflow_provider_taskstatus.connection_forms import COZE_FORM, TRUEWATCH_FORM


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-provider-taskstatus",
        "name": "Task status (Coze, TrueWatch)",
        "description": (
            "Start and wait for Coze copy tasks and TrueWatch (Guance) import/export tasks: hooks, "
            "deferrable operators and sensors."
        ),
        "versions": [__version__],
        "connection-types": [form.provider_info() for form in (COZE_FORM, TRUEWATCH_FORM)],
        "hooks": [
            {"integration-name": "Coze", "python-modules": ["airflow_provider_taskstatus.hooks.coze"]},
            {
                "integration-name": "TrueWatch",
                "python-modules": ["airflow_provider_taskstatus.hooks.truewatch"],
            },
        ],
        "operators": [
            {"integration-name": "Coze", "python-modules": ["airflow_provider_taskstatus.operators.coze"]},
            {
                "integration-name": "TrueWatch",
                "python-modules": ["airflow_provider_taskstatus.operators.truewatch"],
            },
        ],
        "extra-links": [
            "airflow_provider_taskstatus.operators.links.CozeWorkspaceLink",
            "airflow_provider_taskstatus.operators.links.TrueWatchConsoleLink",
        ],
        "sensors": [
            {"integration-name": "Coze", "python-modules": ["airflow_provider_taskstatus.sensors.coze"]},
            {
                "integration-name": "TrueWatch",
                "python-modules": ["airflow_provider_taskstatus.sensors.truewatch"],
            },
        ],
        "triggers": [
            {"integration-name": "Coze", "python-modules": ["airflow_provider_taskstatus.triggers.coze"]},
            {
                "integration-name": "TrueWatch",
                "python-modules": ["airflow_provider_taskstatus.triggers.truewatch"],
            },
        ],
        "integrations": [
            {
                "integration-name": "Coze",
                "external-doc-url": "https://www.coze.cn/open/docs",
                "tags": ["service"],
            },
            {
                "integration-name": "TrueWatch",
                "external-doc-url": "https://docs.truewatch.com",
                "tags": ["service"],
            },
        ],
    }

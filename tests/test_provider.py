"""Packaging: the provider is discovered by Airflow, its connection forms are declared, imports stay light."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import entry_points

from airflow_provider_taskstatus.get_provider_info import get_provider_info
from airflow_provider_taskstatus.models.truewatch import SITES


def test_entry_point_points_at_provider_info() -> None:
    [ep] = [
        ep
        for ep in entry_points(group="apache_airflow_provider")
        if ep.value.startswith("airflow_provider_taskstatus")
    ]
    assert ep.load() is get_provider_info
    assert get_provider_info()["package-name"] == "airflow-provider-taskstatus"


def test_connection_forms() -> None:
    forms = {c["connection-type"]: c for c in get_provider_info()["connection-types"]}
    assert set(forms) == {"coze", "truewatch"}
    assert forms["coze"]["ui-field-behaviour"]["relabeling"]["password"] == "API token"
    assert forms["truewatch"]["ui-field-behaviour"]["relabeling"]["password"] == "API key (DF-API-KEY)"
    site = forms["truewatch"]["conn-fields"]["site"]
    assert site["label"] == "Site"
    assert set(site["schema"]["enum"]) == {*SITES, None}
    json.dumps(forms)


def test_airflow_providers_manager_sees_both_hooks() -> None:
    from airflow.providers_manager import ProvidersManager
    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

    manager = ProvidersManager()
    assert "airflow-provider-taskstatus" in manager.providers
    hooks = ProvidersManagerTaskRuntime().hooks
    assert hooks["coze"] is not None and hooks["coze"].hook_class_name.endswith("CozeHook")
    assert hooks["truewatch"] is not None and hooks["truewatch"].hook_class_name.endswith("TrueWatchHook")
    assert manager.field_behaviours["truewatch"]["relabeling"]["host"] == "Host (private deployment only)"


def test_sensor_modules_import_light() -> None:
    """DAG files import sensors at every parse: no HTTP client and no trigger machinery then."""
    heavy = ("aiohttp", "yarl", "requests", "airflow.triggers.base")
    code = (
        "import sys, airflow_provider_taskstatus.sensors.coze, airflow_provider_taskstatus.sensors.truewatch;"
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"

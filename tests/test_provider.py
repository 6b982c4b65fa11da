"""Packaging: the provider is discovered by Airflow, its connection forms are declared, imports stay light."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import distribution, entry_points
from pathlib import Path

import pytest

from airflow_provider_taskstatus.compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_1_PLUS
from airflow_provider_taskstatus.get_provider_info import get_provider_info
from airflow_provider_taskstatus.models.truewatch import SITES
from tests.compat import runtime_hooks


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
    assert forms["coze"]["ui-field-behaviour"]["relabeling"]["password"] == "API token or OAuth private key"
    assert forms["truewatch"]["ui-field-behaviour"]["relabeling"]["password"] == "API key (DF-API-KEY)"
    site = forms["truewatch"]["conn-fields"]["site"]
    assert site["label"] == "Site"
    assert site["schema"]["enum"] == [None, *SITES]
    labels = site["schema"]["values_display"]
    assert set(labels) == {"null", *SITES}, "every choice, None included, has a label"
    assert all(label and label != "null" for label in labels.values())
    for form in forms.values():
        rate = form["conn-fields"]["requests_per_minute"]
        assert rate["label"] == "Requests per minute"
        assert rate["description"]
        assert rate["schema"]["type"] == ["number", "null"]
    json.dumps(forms)


def test_airflow_providers_manager_sees_both_hooks() -> None:
    from airflow.providers_manager import ProvidersManager

    assert "airflow-provider-taskstatus" in ProvidersManager().providers
    hooks = runtime_hooks()
    assert hooks["coze"] is not None and hooks["coze"].hook_class_name.endswith("CozeHook")
    assert hooks["truewatch"] is not None and hooks["truewatch"].hook_class_name.endswith("TrueWatchHook")


#: Prints what the connection form gets, as the UI gets it: Airflow 3's api-server builds its
#: ``hook_meta`` answer in a fresh process (3.0/3.1 mock WTForms when Flask-AppBuilder is missing).
FORMS_AS_THE_UI_GETS_THEM = """
import json
try:
    from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService
except ImportError:  # Airflow 2: the Flask UI reads the providers manager
    from airflow.providers_manager import ProvidersManager
    manager = ProvidersManager()
    forms = {
        t: {"relabeling": manager.field_behaviours[t]["relabeling"],
            "hidden": manager.field_behaviours[t]["hidden_fields"],
            "extra": sorted(w.field_name for k, w in manager.connection_form_widgets.items()
                            if k.startswith(f"extra__{t}__"))}
        for t in ("coze", "truewatch")
    }
else:
    forms = {}
    for meta in HookMetaService.hook_meta_data():
        if meta.connection_type in ("coze", "truewatch"):
            fields = meta.standard_fields
            forms[meta.connection_type] = None if fields is None else {
                "relabeling": {n: getattr(fields, n).title for n in ("host", "password") if getattr(fields, n).title},
                "hidden": sorted(n for n in ("host", "port", "login", "password") if getattr(fields, n).hidden),
                "extra": sorted(meta.extra_fields or {}),
            }
print("FORMS=" + json.dumps(forms))
"""


def test_forms_reach_the_ui() -> None:
    """Labels, hidden fields and both extra fields, as Airflow's UI receives them on this release."""
    run = subprocess.run(
        [sys.executable, "-c", FORMS_AS_THE_UI_GETS_THEM], capture_output=True, text=True, check=True
    )
    forms = json.loads(run.stdout.split("FORMS=")[-1])
    if AIRFLOW_V_3_0_PLUS and not AIRFLOW_V_3_1_PLUS:
        # Airflow 3.0 reads every hook's form through WTForms, and shows none without Flask-AppBuilder.
        assert forms == {"coze": None, "truewatch": None}
        pytest.skip("Airflow 3.0 shows hook forms only with Flask-AppBuilder (the FAB provider) installed")
    assert forms["coze"]["relabeling"]["password"] == "API token or OAuth private key"
    assert forms["truewatch"]["relabeling"]["host"] == "Host (private deployment only)"
    assert "port" in forms["coze"]["hidden"]
    network = ["proxy", "verify"]
    oauth = ["oauth_account_id", "oauth_app_id", "oauth_duration_seconds", "oauth_public_key_id"]
    assert forms["coze"]["extra"] == sorted(["console_url", "requests_per_minute", *oauth, *network])
    assert forms["truewatch"]["extra"] == sorted(["console_url", "requests_per_minute", "site", *network])


def test_sensor_modules_import_light() -> None:
    """DAG files import sensors and operators at every parse: nothing heavy beyond what Airflow's own
    sensor base loads."""
    heavy = ("aiohttp", "yarl", "requests", "airflow.triggers.base")
    baseline = "import sys; from airflow.providers.common.compat.sdk import BaseSensorOperator;"
    ours = (
        "import airflow_provider_taskstatus.sensors.coze, airflow_provider_taskstatus.sensors.truewatch, "
        "airflow_provider_taskstatus.operators.coze, airflow_provider_taskstatus.operators.truewatch;"
    )
    show = f"print(sorted(m for m in {heavy!r} if m in sys.modules))"

    def loaded(code: str) -> str:
        run = subprocess.run([sys.executable, "-c", code + show], capture_output=True, text=True, check=True)
        return run.stdout.strip().splitlines()[-1]

    assert loaded(baseline + ours) == loaded(baseline)


@pytest.mark.skipif(not os.environ.get("TASKSTATUS_TEST_INSTALLED"), reason="a development run, editable")
def test_matrix_runs_the_package_as_users_install_it() -> None:
    """`make test-<version>` must test the built package (its files, metadata and entry points)."""
    import airflow_provider_taskstatus

    location = Path(airflow_provider_taskstatus.__file__).resolve()
    assert "site-packages" in location.parts, location
    assert (location.parent / "py.typed").is_file()
    direct_url = distribution("airflow-provider-taskstatus").read_text("direct_url.json") or "{}"
    assert not json.loads(direct_url).get("dir_info", {}).get("editable"), "not an editable install"

"""The ``real_airflow`` fixture: the installed release's Airflow processes for the end-to-end tests.

The deployment itself is :class:`tests.real_airflow.RealAirflow`. The processes are stopped once the
module's tests are done, whatever happened; when a test fails, the tail of every process log is
attached to its report.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator

import pytest

from airflow_provider_taskstatus.emulator.server import DEFAULT_COZE_TOKEN, EmulatorServer
from tests.real_airflow import TIMEOUT_ACCOUNT_TOKEN, RealAirflow

_REAL_AIRFLOW = pytest.StashKey[RealAirflow]()


@pytest.fixture(scope="module")
def real_airflow(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[RealAirflow]:
    """The release's Airflow processes, ready, on a fresh SQLite home; stopped after the module's tests."""
    home = tmp_path_factory.mktemp("airflow-e2e-home")
    with EmulatorServer(
        host="127.0.0.1", port=0, coze_tokens=(DEFAULT_COZE_TOKEN, TIMEOUT_ACCOUNT_TOKEN)
    ) as emulator:
        airflow = RealAirflow(home, emulator)
        request.config.stash[_REAL_AIRFLOW] = airflow
        try:
            try:
                airflow.run_cli("db", "migrate")
                airflow.start_all()
                airflow.wait_until_ready()
            except Exception as error:
                raise RuntimeError(f"Airflow did not start: {error}\n{airflow.diagnostics()}") from error
            yield airflow
        finally:
            airflow.stop_all()
            del request.config.stash[_REAL_AIRFLOW]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach the tail of every Airflow process log to the report of a failed e2e test."""
    report = yield
    airflow = item.config.stash.get(_REAL_AIRFLOW, None)
    if report.failed and airflow is not None:
        report.sections.append(("Airflow process logs (tail)", airflow.diagnostics()))
    return report

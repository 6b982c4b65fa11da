"""A real browser on Airflow's own UI: an ``api-server``, our emulator, and headless Chromium.

``airflow_ui`` (module scope) builds a throw-away Airflow home (SQLite, SimpleAuthManager with every
user an admin, so no login; connection testing enabled), migrates it and starts only the
``api-server`` process of :class:`tests.real_airflow.RealAirflow`, next to an emulator of both APIs.
``browser`` (module scope) is Debian's Chromium (``/usr/bin/chromium``, see
``scripts/install-browser.sh``) driven by Playwright, with a fresh profile and Chromium's background
traffic switched off: the machine's network is closed. Every socket is on 127.0.0.1, and everything
started here is stopped at the end of the module, whatever happened.

Screenshots go to :data:`SCREENSHOT_DIR` (emptied at the start of a session, ignored by git); the
terminal summary prints where. When a test fails, the tail of the api-server log and the page's
JavaScript errors are attached to its report.

The tests skip on Airflow < 3.2 (the forms come from ``conn-fields`` since 3.2). Without
``/usr/bin/chromium`` or Playwright they skip, unless ``CI`` is set: there they fail.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from packaging.version import Version

from airflow_provider_taskstatus.emulator.server import (
    DEFAULT_COZE_TOKEN,
    DEFAULT_TRUEWATCH_KEY,
    EmulatorServer,
)
from tests.real_airflow import STARTUP_TIMEOUT, RealAirflow

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT_DIR = Path(__file__).resolve().parent / "screenshots"
#: Chromium flags: no sandbox (root in a container), no GPU, and none of the background connections
#: (QUIC, component updates, sync, ...) that a closed network refuses and would slow the page down.
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
#: The connection types the UI must offer once our provider is installed.
OUR_CONN_TYPES = ("coze", "truewatch")

_AIRFLOW_UI = pytest.StashKey["AirflowUI"]()
_PAGE_ERRORS = pytest.StashKey[list[str]]()
_SCREENSHOTS = pytest.StashKey[list[Path]]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "browser: drives Airflow's UI in headless Chromium (Playwright)")
    config.stash[_SCREENSHOTS] = []


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _skip_or_fail(reason: str) -> None:
    """Skip on a developer's machine; under ``CI`` a missing browser is a broken set-up: fail."""
    if _in_ci():
        pytest.fail(f"{reason} (CI is set, so this is an error, not a skip)", pytrace=False)
    pytest.skip(reason)


def require_browser_stack() -> None:
    """Skip (or, under CI, fail) unless this Airflow has 3.2+ forms, Chromium and Playwright."""
    import airflow

    if Version(airflow.__version__).release < (3, 2):
        pytest.skip(f"Airflow {airflow.__version__}: the connection forms tested here need Airflow >= 3.2")
    if not CHROMIUM.is_file():
        _skip_or_fail(f"{CHROMIUM} is missing: run scripts/install-browser.sh as root")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _skip_or_fail("the playwright package is not installed in this environment")


# --- Airflow -------------------------------------------------------------------------------------


class AirflowUI:
    """The api-server serving the UI, the emulator behind the connections, and a REST client."""

    def __init__(self, home: Path, emulator: EmulatorServer) -> None:
        self.airflow = RealAirflow(home, emulator)
        self.emulator = emulator
        env = self.airflow.env
        for name in [k for k in env if k.startswith("AIRFLOW_CONN_")]:
            del env[name]  # only the connections the tests create in the UI
        env["AIRFLOW__CORE__TEST_CONNECTION"] = "Enabled"
        env["AIRFLOW__API__EXPOSE_CONFIG"] = "False"
        self.url = self.airflow.api_url
        self.http = self.airflow.http

    @property
    def emulator_url(self) -> str:
        return self.emulator.base_url

    @property
    def emulator_port(self) -> int:
        return int(self.emulator.base_url.rsplit(":", 1)[1])

    def start(self) -> None:
        self.airflow.run_cli("db", "migrate")
        self.airflow.start("api-server")
        self.wait_until_ready()

    def wait_until_ready(self, timeout: float = STARTUP_TIMEOUT) -> None:
        """Until the UI's connection-type metadata lists both of our types."""
        deadline = time.monotonic() + timeout
        last = "nothing yet"
        while time.monotonic() < deadline:
            self.airflow.check_alive()
            try:
                response = self.http.get(f"{self.url}/ui/connections/hook_meta", timeout=10)
                if response.ok:
                    types = {hook["connection_type"] for hook in response.json()}
                    missing = sorted(set(OUR_CONN_TYPES) - types)
                    if not missing:
                        return
                    last = f"connection types missing from hook_meta: {missing}"
                else:
                    last = f"hook_meta → HTTP {response.status_code}"
            except (requests.RequestException, ValueError) as error:
                last = repr(error)
            time.sleep(0.5)
        raise TimeoutError(f"api-server not ready after {timeout:.0f} s; last: {last}")

    def stop(self) -> None:
        self.airflow.stop_all()

    def diagnostics(self, lines: int = 60) -> str:
        """The tail of the api-server's output."""
        path = self.airflow.log_path("api-server")
        proc = self.airflow.processes.get("api-server")
        status = "not started" if proc is None else f"pid {proc.pid}, exit status {proc.poll()}"
        try:
            tail = "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        except OSError as error:
            tail = f"<cannot read {path}: {error}>"
        return f"----- api-server ({status}): {path}\n{tail}"

    def connection(self, conn_id: str) -> dict[str, Any]:
        return dict(self.airflow.api("GET", f"/api/v2/connections/{conn_id}"))

    def set_port(self, conn_id: str, conn_type: str, port: int) -> None:
        """What a user can do outside the form, with the REST API: store a port on the connection."""
        self.airflow.api(
            "PATCH",
            f"/api/v2/connections/{conn_id}",
            params={"update_mask": "port"},
            json={"connection_id": conn_id, "conn_type": conn_type, "port": port},
        )


@pytest.fixture(scope="module")
def airflow_ui(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[AirflowUI]:
    """Airflow's api-server (UI + REST) on a fresh SQLite home, and the emulator; stopped afterwards."""
    require_browser_stack()
    home = tmp_path_factory.mktemp("airflow-browser-home")
    with EmulatorServer(
        host="127.0.0.1",
        port=0,
        coze_tokens=(DEFAULT_COZE_TOKEN,),
        truewatch_keys=(DEFAULT_TRUEWATCH_KEY,),
    ) as emulator:
        ui = AirflowUI(home, emulator)
        request.config.stash[_AIRFLOW_UI] = ui
        try:
            try:
                ui.start()
            except Exception as error:
                raise RuntimeError(
                    f"Airflow's api-server did not start: {error}\n{ui.diagnostics()}"
                ) from error
            yield ui
        finally:
            ui.stop()
            del request.config.stash[_AIRFLOW_UI]


# --- the browser -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser_context(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Headless Chromium with a fresh profile; closed (and its processes gone) after the module."""
    require_browser_stack()
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=list(CHROMIUM_ARGS),
            viewport={"width": 1400, "height": 1000},
            locale="en-US",
            timezone_id="UTC",
        )
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser_context: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A new tab; its uncaught JavaScript errors are kept for the failure report."""
    errors: list[str] = []
    request.node.stash[_PAGE_ERRORS] = errors
    tab = browser_context.new_page()
    tab.set_default_timeout(15_000)
    tab.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield tab
    finally:
        with contextlib.suppress(Exception):
            tab.close()


_SETTLE_ANIMATIONS_JS = """() => Promise.race([
    Promise.all(document.getAnimations()
        .filter((a) => a.effect && a.effect.getComputedTiming().endTime !== Infinity)
        .map((a) => a.finished.catch(() => null))),
    new Promise((resolve) => setTimeout(resolve, 3000)),
])"""


class Screenshots:
    """Numbered screenshots of one test, under :data:`SCREENSHOT_DIR`."""

    def __init__(self, page: Any, prefix: str, saved: list[Path]) -> None:
        self.page = page
        self.prefix = prefix
        self.saved = saved
        self.count = 0

    def __call__(self, step: str) -> Path:
        self.count += 1
        path = SCREENSHOT_DIR / f"{self.prefix}-{self.count:02d}-{step}.png"
        # Toasts slide and fade in: let finite animations end (bounded), so the picture is readable.
        self.page.evaluate(_SETTLE_ANIMATIONS_JS)
        self.page.screenshot(path=str(path))
        self.saved.append(path)
        return path


@pytest.fixture(scope="session")
def screenshot_dir(pytestconfig: pytest.Config) -> Path:
    """The screenshot folder, emptied of an earlier session's pictures."""
    if SCREENSHOT_DIR.is_dir():
        shutil.rmtree(SCREENSHOT_DIR)
    SCREENSHOT_DIR.mkdir(parents=True)
    return SCREENSHOT_DIR


@pytest.fixture
def shot(page: Any, screenshot_dir: Path, request: pytest.FixtureRequest) -> Screenshots:
    name = request.node.name.removeprefix("test_").replace("[", "-").replace("]", "")
    return Screenshots(page, name, request.config.stash[_SCREENSHOTS])


# --- reporting -----------------------------------------------------------------------------------


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach the api-server log tail and the page's JavaScript errors to a failed browser test."""
    report = yield
    if report.failed:
        ui = item.config.stash.get(_AIRFLOW_UI, None)
        if ui is not None:
            report.sections.append(("Airflow api-server log (tail)", ui.diagnostics()))
        errors = item.stash.get(_PAGE_ERRORS, None)
        if errors:
            report.sections.append(("JavaScript errors on the page", "\n".join(errors)))
    return report


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    saved = config.stash.get(_SCREENSHOTS, [])
    if saved:
        terminalreporter.write_sep("-", f"browser screenshots ({len(saved)}): {SCREENSHOT_DIR}")
        for path in saved:
            terminalreporter.write_line(f"  {path.name}")

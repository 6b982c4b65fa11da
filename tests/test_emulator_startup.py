"""Starting the emulator: errors a user can cause are one clear line, and the pytest plugin stays light.

The CLI runs as a real subprocess; a busy port is a real socket this test holds.
"""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from airflow_provider_taskstatus.emulator import EmulatorServer
from airflow_provider_taskstatus.emulator.server import StartError

PREFIX = "taskstatus-emulator: error: "


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "airflow_provider_taskstatus.emulator", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30)


def assert_one_line_error(proc: subprocess.CompletedProcess[str], message: str) -> None:
    assert "Traceback" not in proc.stderr
    assert proc.stderr == PREFIX + message + "\n"
    assert proc.stdout == ""
    assert proc.returncode == 2


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port held by a listening socket for the test's duration."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_cli_busy_port_is_one_line(busy_port: int) -> None:
    proc = run_cli("--port", str(busy_port))
    assert_one_line_error(
        proc,
        f"port {busy_port} on 127.0.0.1 is already in use: pick another with --port, or --port 0 for a free one",
    )


def test_cli_non_loopback_host_names_the_flag() -> None:
    proc = run_cli("--host", "0.0.0.0", "--port", "0")
    assert_one_line_error(
        proc,
        "refusing to bind the emulator to non-loopback host '0.0.0.0': its control endpoints have no "
        "authentication, so anyone who can reach it can script its answers; pass --allow-remote to do it anyway",
    )
    assert "allow_remote" not in proc.stderr


def test_cli_missing_tls_cert_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    proc = run_cli("--port", "0", "--tls-cert", str(missing), "--tls-key", str(missing))
    assert_one_line_error(proc, f"--tls-cert {missing}: no such file")


def test_cli_tls_files_that_are_not_pem(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_text("not a certificate\n")
    key.write_text("not a key\n")
    proc = run_cli("--port", "0", "--tls-cert", str(cert), "--tls-key", str(key))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1
    assert proc.stderr.startswith(f"{PREFIX}cannot load --tls-cert {cert} with --tls-key {key}")


def test_cli_port_out_of_range() -> None:
    proc = run_cli("--port", "70000")
    assert_one_line_error(proc, "--port must be between 0 and 65535 (0 picks a free port), got 70000")


def test_python_busy_port_is_one_clear_oserror(busy_port: int) -> None:
    server = EmulatorServer(port=busy_port)
    with pytest.raises(OSError) as caught:  # noqa: PT011  # the exact message is asserted below
        server.start()
    exc = caught.value
    assert isinstance(exc, StartError)
    assert str(exc) == (
        f"port {busy_port} on 127.0.0.1 is already in use: pick another port, or port=0 for a free one"
    )
    assert exc.errno == errno.EADDRINUSE
    assert exc.__cause__ is None
    assert exc.__suppress_context__, "no 'during handling ... another exception' chain"
    server.port = 0  # the same object starts once the user picks a free port
    with server:
        assert requests.get(server.base_url + "/_emulator/health", timeout=5).json() == {"ok": True}


@pytest.mark.parametrize("port", [-1, 65536, "8765"])
def test_python_port_out_of_range(port: object) -> None:
    with pytest.raises(ValueError, match=r"^port must be between 0 and 65535 \(0 picks a free port\), got "):
        EmulatorServer(port=port)  # type: ignore[arg-type]


def test_importing_the_pytest_plugin_does_not_import_aiohttp() -> None:
    code = textwrap.dedent(
        """
        import sys
        import airflow_provider_taskstatus.emulator.pytest_plugin as plugin
        assert callable(plugin.taskstatus_emulator) and callable(plugin.taskstatus_emulator_fresh)
        print("aiohttp" in sys.modules)
        from airflow_provider_taskstatus.emulator import DEFAULT_COZE_TOKEN, EmulatorServer
        print("aiohttp" in sys.modules, EmulatorServer.__name__, DEFAULT_COZE_TOKEN)
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["False", "True EmulatorServer pat_emulator_token"]


def test_plugin_fixtures_in_a_pytest_session_that_does_not_use_them(tmp_path: Path) -> None:
    """Our plugin alone: a test without the fixtures runs without aiohttp; one with them gets a server."""
    (tmp_path / "test_user.py").write_text(
        textwrap.dedent(
            """
            import sys
            import urllib.request

            def test_light():
                assert "aiohttp" not in sys.modules

            def test_uses_the_fixture(taskstatus_emulator_fresh):
                url = taskstatus_emulator_fresh.base_url + "/_emulator/health"
                assert urllib.request.urlopen(url, timeout=5).status == 200
            """
        )
    )
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p"]
    cmd += ["airflow_provider_taskstatus.emulator.pytest_plugin", "test_user.py"]
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 passed" in proc.stdout

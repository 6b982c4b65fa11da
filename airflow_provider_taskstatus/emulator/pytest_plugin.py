"""Pytest fixtures for the emulator, registered through the package's ``pytest11`` entry point.

``taskstatus_emulator`` is one server for the session; ``taskstatus_emulator_fresh`` the same,
reset before the test. The server module is imported inside the fixtures (and the package imports
it lazily) so that merely having the provider installed does not import aiohttp into every pytest
session.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .server import EmulatorServer


@pytest.fixture(scope="session")
def taskstatus_emulator() -> Iterator[EmulatorServer]:
    """One emulator on a free loopback port for the whole session."""
    from .server import EmulatorServer

    with EmulatorServer() as server:
        yield server


@pytest.fixture
def taskstatus_emulator_fresh(taskstatus_emulator: EmulatorServer) -> EmulatorServer:
    """The session emulator, reset to the seeded tasks and an empty request log."""
    taskstatus_emulator.reset()
    return taskstatus_emulator

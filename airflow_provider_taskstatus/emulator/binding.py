"""Where the emulator may listen: loopback only unless allowed, a valid port, one-line bind errors."""

from __future__ import annotations

import errno
import ipaddress
import os
import socket


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_host(host: str, allow_remote: bool, cli: bool = False) -> None:
    """Refuse a non-loopback ``host`` unless allowed, naming the switch the caller has (flag or kwarg)."""
    if allow_remote or _is_loopback(host):
        return
    switch = "--allow-remote" if cli else "allow_remote=True"
    raise ValueError(
        f"refusing to bind the emulator to non-loopback host {host!r}: its control endpoints have no "
        f"authentication, so anyone who can reach it can script its answers; pass {switch} to do it anyway"
    )


def check_port(port: object, cli: bool = False) -> None:
    """Refuse a port outside 0-65535 up front: the bind would fail with a less helpful OverflowError."""
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        name = "--port" if cli else "port"
        raise ValueError(f"{name} must be between 0 and 65535 (0 picks a free port), got {port!r}")


class StartError(OSError):
    """The emulator could not listen. ``str()`` is one line: where, why, and what to do about it."""

    def __init__(self, host: str, port: int, cause: OSError) -> None:
        if isinstance(cause, socket.gaierror) or not cause.errno or cause.errno < 0:
            reason = cause.strerror or str(cause)  # a resolver error's own text; its errno is no errno
        else:
            reason = os.strerror(cause.errno)  # asyncio's text repeats the address
        super().__init__(cause.errno, reason)
        self.host, self.port = host, port

    def describe(self, cli: bool = False) -> str:
        """The message, naming the CLI's flags when ``cli`` and the keyword arguments otherwise."""
        if self.errno == errno.EADDRINUSE:
            what = "pick another with --port, or --port 0" if cli else "pick another port, or port=0"
            return f"port {self.port} on {self.host} is already in use: {what} for a free one"
        return f"cannot listen on {self.host}:{self.port}: {self.strerror}"

    def __str__(self) -> str:
        return self.describe()

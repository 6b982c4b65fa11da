"""``taskstatus-emulator``: serve the Coze + TrueWatch emulator until interrupted.

A startup problem the user can fix (busy port, missing certificate file, non-loopback host) is one
line on stderr naming the flag to change, and exit status 2: never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import ssl
import sys
import threading
from collections.abc import Sequence
from types import FrameType
from typing import NoReturn

from .scripts import COZE, TRUEWATCH, demo_tasks
from .server import (
    DEFAULT_COZE_TOKEN,
    DEFAULT_TRUEWATCH_KEY,
    EmulatorServer,
    StartError,
    check_host,
    check_port,
)

PROG = "taskstatus-emulator"
#: argparse's exit status for a usage error; startup errors use it too.
USAGE_ERROR = 2


def fail(message: str) -> NoReturn:
    """One line on stderr, in argparse's format, and exit 2."""
    print(f"{PROG}: error: {message}", file=sys.stderr)
    raise SystemExit(USAGE_ERROR)


def _ssl_context(cert: str, key: str) -> ssl.SSLContext:
    for flag, path in (("--tls-cert", cert), ("--tls-key", key)):
        if not os.path.isfile(path):
            fail(f"{flag} {path}: no such file")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        fail(f"cannot load --tls-cert {cert} with --tls-key {key} (PEM certificate and its key?): {exc}")
    return context


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Offline emulator of the Coze and TrueWatch task status APIs."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument(
        "--coze-token",
        action="append",
        metavar="TOKEN",
        help=f"accepted Bearer token (default {DEFAULT_COZE_TOKEN})",
    )
    parser.add_argument(
        "--truewatch-key",
        action="append",
        metavar="KEY",
        help=f"accepted DF-API-KEY (default {DEFAULT_TRUEWATCH_KEY})",
    )
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a non-loopback --host (the control endpoints have no auth)",
    )
    parser.add_argument("--tls-cert", metavar="PEM", help="serve HTTPS with this certificate (chain)")
    parser.add_argument("--tls-key", metavar="PEM", help="the private key of --tls-cert")
    parser.add_argument("--quiet", action="store_true", help="no access log line per request")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if (args.tls_cert is None) != (args.tls_key is None):
        fail("--tls-cert and --tls-key go together")
    try:
        check_host(args.host, args.allow_remote, cli=True)
        check_port(args.port, cli=True)
    except ValueError as exc:
        fail(str(exc))
    ssl_context = None if args.tls_cert is None else _ssl_context(args.tls_cert, args.tls_key)
    server = EmulatorServer(
        args.host,
        args.port,
        coze_tokens=args.coze_token or [DEFAULT_COZE_TOKEN],
        truewatch_keys=args.truewatch_key or [DEFAULT_TRUEWATCH_KEY],
        allow_remote=args.allow_remote,
        ssl_context=ssl_context,
        access_log=not args.quiet,
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    stopped = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopped.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        server.start()
    except StartError as exc:
        fail(exc.describe(cli=True))
    try:
        ids = {api: ", ".join(t.task_id for t in demo_tasks() if t.api == api) for api in (COZE, TRUEWATCH)}
        print(f"{PROG} on {server.base_url} | coze: {ids[COZE]} | truewatch: {ids[TRUEWATCH]}", flush=True)
        while not stopped.wait(0.5):
            pass
    finally:
        server.stop()

"""``taskstatus-emulator``: serve the Coze + TrueWatch emulator until interrupted."""

from __future__ import annotations

import argparse
import logging
import signal
import ssl
import threading
from collections.abc import Sequence
from types import FrameType

from .scripts import COZE, TRUEWATCH, demo_tasks
from .server import DEFAULT_COZE_TOKEN, DEFAULT_TRUEWATCH_KEY, EmulatorServer


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="taskstatus-emulator", description="Offline emulator of the Coze and TrueWatch task status APIs."
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
    args = parser.parse_args(argv)
    if (args.tls_cert is None) != (args.tls_key is None):
        parser.error("--tls-cert and --tls-key go together")
    ssl_context = None
    if args.tls_cert is not None:
        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            ssl_context.load_cert_chain(args.tls_cert, args.tls_key)
        except (OSError, ssl.SSLError) as exc:
            parser.error(f"cannot load --tls-cert/--tls-key: {exc}")
    try:
        server = EmulatorServer(
            args.host,
            args.port,
            coze_tokens=args.coze_token or [DEFAULT_COZE_TOKEN],
            truewatch_keys=args.truewatch_key or [DEFAULT_TRUEWATCH_KEY],
            allow_remote=args.allow_remote,
            ssl_context=ssl_context,
            access_log=not args.quiet,
        )
    except ValueError as exc:
        parser.error(str(exc))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    stopped = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopped.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    with server:
        ids = {api: ", ".join(t.task_id for t in demo_tasks() if t.api == api) for api in (COZE, TRUEWATCH)}
        print(
            f"taskstatus-emulator on {server.base_url} | coze: {ids[COZE]} | truewatch: {ids[TRUEWATCH]}",
            flush=True,
        )
        while not stopped.wait(0.5):
            pass

"""``taskstatus-emulator``: serve the Coze + TrueWatch emulator until interrupted."""

from __future__ import annotations

import argparse
import logging
import signal
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
    args = parser.parse_args(argv)
    try:
        server = EmulatorServer(
            args.host,
            args.port,
            coze_tokens=args.coze_token or [DEFAULT_COZE_TOKEN],
            truewatch_keys=args.truewatch_key or [DEFAULT_TRUEWATCH_KEY],
            allow_remote=args.allow_remote,
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

"""``taskstatus-emulator``: serve the Coze + TrueWatch emulator until interrupted.

The banner names the seeded tasks; the start calls (``POST /v1/entities/copy_tasks``, TrueWatch's
``…/export/task/create`` and ``…/upload``) need no seed: each creates its own task.

``--oauth-app APP_ID:KID:PUBLIC_KEY_PEM_FILE`` (repeatable; one app may have several keys) registers
an OAuth service app for Coze's JWT token exchange (:mod:`.oauth`); it survives ``/_emulator/reset``.

A startup problem the user can fix (busy port, missing certificate or key file, non-loopback host)
is one line on stderr naming the flag to change, and exit status 2: never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import signal
import ssl
import sys
import threading
from collections.abc import Sequence
from types import FrameType
from typing import NoReturn

from .limits import RateLimits
from .oauth_checks import OAuthApp, load_public_key
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


def _oauth_app(text: str) -> tuple[str, str, str]:
    """argparse type: ``APP_ID:KID:PUBLIC_KEY_PEM_FILE`` (the file's path may hold more colons)."""
    app_id, kid, path = ([*text.split(":", 2), "", ""])[:3]
    if not (app_id and kid and path):
        raise argparse.ArgumentTypeError(f"must be APP_ID:KID:PUBLIC_KEY_PEM_FILE, got {text!r}")
    return app_id, kid, path


def oauth_apps(args: argparse.Namespace) -> list[OAuthApp]:
    """The OAuth apps ``--oauth-app`` asks for, their keys read and checked (a bad one: :func:`fail`)."""
    if args.oauth_token_lifetime is not None and not args.oauth_app:
        fail("--oauth-token-lifetime needs --oauth-app")
    keys: dict[str, dict[str, bytes]] = {}
    owners: dict[str, str] = {}
    for app_id, kid, path in args.oauth_app or []:
        if owners.setdefault(kid, app_id) != app_id:
            fail(f"--oauth-app {app_id}:{kid}:…: kid {kid} already belongs to app {owners[kid]}")
        if not os.path.isfile(path):
            fail(f"--oauth-app {path}: no such file")
        try:
            with open(path, "rb") as file:
                pem = file.read()
            load_public_key(kid, pem)
        except OSError as exc:
            fail(f"cannot read --oauth-app {path}: {exc}")
        except ValueError as exc:
            fail(f"cannot load --oauth-app {path} (a PEM RSA public key?): {exc}")
        keys.setdefault(app_id, {})[kid] = pem
    return [OAuthApp(app_id, pems, args.oauth_token_lifetime) for app_id, pems in keys.items()]


def _count(text: str) -> int:
    """argparse type: a non-negative integer (0 refuses every request)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {text!r}")
    return value


def _seconds(text: str) -> float:
    """argparse type: a positive, finite number of seconds."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return value


def _mapping(text: str) -> tuple[str, str]:
    """argparse type: ``KEY=WORKSPACE``."""
    key, sep, workspace = text.rpartition("=")
    if not sep or not key or not workspace:
        raise argparse.ArgumentTypeError(f"must be KEY=WORKSPACE, got {text!r}")
    return key, workspace


def rate_limits(args: argparse.Namespace) -> RateLimits:
    """The budgets the rate-limit flags ask for (all unlimited without them)."""
    return RateLimits(
        truewatch_per_key=args.truewatch_rate_limit,
        truewatch_per_workspace=args.truewatch_workspace_rate_limit,
        coze_per_token=args.coze_rate_limit,
        window=args.rate_window,
        workspaces=dict(args.truewatch_workspace or []),
    )


def _add_limit_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "request budgets", "refuse requests over a rate, as the services do (default: unlimited)"
    )
    add = group.add_argument
    add(
        "--truewatch-rate-limit",
        type=_count,
        metavar="N",
        help="requests per window per DF-API-KEY (real: 20)",
    )
    add(
        "--truewatch-workspace-rate-limit",
        type=_count,
        metavar="N",
        help="requests per window per workspace (real: 200)",
    )
    add(
        "--truewatch-workspace",
        type=_mapping,
        action="append",
        metavar="KEY=WORKSPACE",
        help="put a key in a workspace (default: all keys share one)",
    )
    add("--coze-rate-limit", type=_count, metavar="N", help="requests per window per Coze token")
    add("--rate-window", type=_seconds, default=60.0, metavar="SECONDS", help="the window (default 60)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Offline emulator of the Coze and TrueWatch task APIs: the calls that start a "
        "remote task and the ones that poll its status.",
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
    parser.add_argument(
        "--oauth-app",
        type=_oauth_app,
        action="append",
        metavar="APP_ID:KID:PUBLIC_KEY_PEM_FILE",
        help="an OAuth service app whose JWTs (signed with the key KID) the token exchange takes",
    )
    parser.add_argument(
        "--oauth-token-lifetime",
        type=_seconds,
        metavar="SECONDS",
        help="cap the OAuth access tokens' lifetime (default: the duration_seconds asked, 900)",
    )
    _add_limit_flags(parser)
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
    apps = oauth_apps(args)
    server = EmulatorServer(
        args.host,
        args.port,
        coze_tokens=args.coze_token or [DEFAULT_COZE_TOKEN],
        truewatch_keys=args.truewatch_key or [DEFAULT_TRUEWATCH_KEY],
        allow_remote=args.allow_remote,
        ssl_context=ssl_context,
        access_log=not args.quiet,
        rate_limits=rate_limits(args),
        oauth_apps=apps,
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
        banner = f"{PROG} on {server.base_url} | coze: {ids[COZE]} | truewatch: {ids[TRUEWATCH]}"
        if not server.rate_limits.unlimited:
            banner += f" | limits: {server.rate_limits.describe()}"
        if apps:
            banner += " | oauth apps: " + ", ".join(f"{a.app_id} ({', '.join(a.keys)})" for a in apps)
        print(banner, flush=True)
        while not stopped.wait(0.5):
            pass
    finally:
        server.stop()

"""The OAuth token exchange's HTTP side: Coze's token endpoints and the ``/_emulator/oauth`` controls.

:mod:`.oauth` says what the exchange answers; here the requests are read, logged (``call``
``oauth``, never the credential) and answered. The control endpoints follow :mod:`.control`'s
rules (strict keys, HTTP 400 ``{"error", "known_keys"}``):

* ``POST /_emulator/oauth/apps``: ``{"app_id", "public_keys": {kid: PEM}, "token_lifetime"?,
  "account_ids"?}`` register (or redefine) an app until the next reset (201 ``{"app_id", "kids"}``);
* ``POST /_emulator/oauth/keys/revoke``: ``{"kid"}`` (404 if no app has it);
* ``POST /_emulator/oauth/tokens/expire``: no body or ``{}`` (``{"expired": live tokens ended}``);
* ``POST /_emulator/oauth/faults``: ``{"error_code", "http_status"?, "times"?, "error_message"?}``
  (201 ``{"pending"}``);
* ``GET /_emulator/oauth/exchanges[?outcome=]``: the exchanges, oldest first.
"""

from __future__ import annotations

from aiohttp import web

from .control import check_query, json_body, refusal
from .oauth import OAuthApp
from .oauth_checks import ACCOUNT_TOKEN_PATH, TOKEN_PATH
from .responses import OAUTH, Entry, coze_logid, encoded
from .scripts import COZE
from .state import STATE
from .validation import SpecError, check_keys


async def oauth_token(request: web.Request) -> web.Response:
    """``POST …/oauth2/token`` and ``…/oauth2/account/{account_id}/token``: exchange a JWT."""
    entry = Entry.begin(request, COZE, OAUTH)
    book = request.app[STATE].oauth
    answer = book.exchange(
        request.headers.get("Authorization", ""),
        request.host,
        await request.text(),
        request.match_info.get("account_id"),
    )
    entry.auth_valid = answer[0] == 200
    resp = encoded(answer, {"x-tt-logid": coze_logid()}, {})
    entry.finish(request, resp.status)
    return resp


async def control_oauth_app(request: web.Request) -> web.Response:
    """``POST /_emulator/oauth/apps``: register (or redefine) an OAuth service app until the next reset."""
    try:
        app = OAuthApp.from_json(await json_body(request))
        request.app[STATE].oauth.add_app(app)
    except ValueError as exc:
        return refusal(exc)
    return web.json_response({"app_id": app.app_id, "kids": sorted(app.keys)}, status=201)


async def control_oauth_revoke(request: web.Request) -> web.Response:
    """``POST /_emulator/oauth/keys/revoke``: ``{"kid"}`` refuse later exchanges signed with it (404: unknown)."""
    try:
        body = await json_body(request)
        if not isinstance(body, dict):
            raise SpecError("body must be a JSON object")
        check_keys(body, ("kid",), "revoke")
        kid = body.get("kid")
        if not isinstance(kid, str) or not kid:
            raise SpecError("kid must be a non-empty string")
    except ValueError as exc:
        return refusal(exc)
    try:
        request.app[STATE].oauth.revoke(kid)
    except KeyError as exc:
        return web.json_response({"error": exc.args[0]}, status=404)
    return web.json_response({"kid": kid, "revoked": True})


async def control_oauth_expire(request: web.Request) -> web.Response:
    """``POST /_emulator/oauth/tokens/expire``: every token issued so far stops working (``expired``: how
    many were live). No body, or ``{}``."""
    try:
        body = await json_body(request, default={})
        if not isinstance(body, dict):
            raise SpecError("body must be empty or {}")
        check_keys(body, (), "expire")
    except ValueError as exc:
        return refusal(exc)
    return web.json_response({"expired": request.app[STATE].oauth.expire_tokens()})


async def control_oauth_faults(request: web.Request) -> web.Response:
    """``POST /_emulator/oauth/faults``: answer the next exchanges with an error (``pending``: how many)."""
    try:
        body = await json_body(request)
        if not isinstance(body, dict):
            raise SpecError("body must be a JSON object")
        check_keys(body, ("error_code", "http_status", "times", "error_message"), "oauth faults")
        pending = request.app[STATE].oauth.fail_next(
            body.get("error_code", ""),
            body.get("http_status"),
            body.get("times", 1),
            body.get("error_message"),
        )
    except ValueError as exc:
        return refusal(exc)
    return web.json_response({"pending": pending}, status=201)


async def control_oauth_exchanges(request: web.Request) -> web.Response:
    """``GET /_emulator/oauth/exchanges[?outcome=]``: the token exchanges, oldest first."""
    try:
        check_query(request, ("outcome",))
    except ValueError as exc:
        return refusal(exc)
    return web.json_response(request.app[STATE].oauth.exchanges(request.query.get("outcome")))


def add_oauth_routes(app: web.Application) -> None:
    """The token exchange (both variants) and its control endpoints."""
    app.router.add_post(TOKEN_PATH, oauth_token)
    app.router.add_post(ACCOUNT_TOKEN_PATH, oauth_token)
    app.router.add_post("/_emulator/oauth/apps", control_oauth_app)
    app.router.add_post("/_emulator/oauth/keys/revoke", control_oauth_revoke)
    app.router.add_post("/_emulator/oauth/tokens/expire", control_oauth_expire)
    app.router.add_post("/_emulator/oauth/faults", control_oauth_faults)
    app.router.add_get("/_emulator/oauth/exchanges", control_oauth_exchanges)

"""Base URLs from hosts as users write them: any scheme case, an optional port and path prefix.

A private deployment may sit behind a gateway under a path (``https://gw.example/guance``); the
API's own path is appended to whatever prefix the host names.
"""

from __future__ import annotations

import re

SCHEMES = ("http", "https")

#: "https:/host", "https//host", "https:host": a scheme written almost right.
_MANGLED_SCHEME = re.compile(r"^(?:https?:/?(?!/)|https?//)", re.IGNORECASE)


def normalize_base_url(host: str, port: int | None = None, api_path: str = "") -> str:
    """``api.coze.com`` / ``HTTPS://api.coze.com`` / ``gw.example/guance/`` → a base URL.

    HTTPS unless the host names its scheme (in any case); a port may come from the host or from
    the connection; a path prefix is kept, without its trailing slash. Scheme and host come out in
    lower case (both are case-insensitive), the path as given. ``api_path`` is the API's own path:
    a prefix ending in part of it would double it in every request, so it is refused.
    ``ValueError`` says what to fix.
    """
    shown = _masked(host)
    text = host.strip()
    if not text:
        raise ValueError("The host is empty: give a host name, e.g. 'api.coze.com'.")
    if any(c.isspace() for c in text):
        raise ValueError(f"Host {shown!r} contains a space: give a host name such as 'gw.example'.")
    scheme, sep, rest = text.partition("://")
    if sep:
        scheme = scheme.lower()
    elif _MANGLED_SCHEME.match(text):
        raise ValueError(f"Host {shown!r} has a malformed scheme: write it as 'https://host'.")
    else:
        scheme, rest = "https", text
    if scheme not in SCHEMES:
        raise ValueError(
            f"Host {shown!r} has scheme {scheme!r}: use https:// (or http:// for a local emulator)."
        )
    if "?" in rest or "#" in rest:
        raise ValueError(
            f"Host {shown!r} has a query string or fragment: give only the host and an optional path "
            "prefix, e.g. 'https://gw.example/guance'."
        )
    authority, _, path = rest.partition("/")
    if "@" in authority:
        raise ValueError(
            f"Host {shown!r} holds user info (user@ or user:password@): remove it; the secret belongs "
            "in the connection's password field."
        )
    authority = _checked_authority(shown, authority.lower(), port)
    return f"{scheme}://{authority}{_checked_path(shown, path, api_path)}"


def _checked_authority(host: str, authority: str, port: int | None) -> str:
    """``host[:port]``, with the connection's port when the host names none."""
    if ":" not in authority.rsplit("]", 1)[-1]:  # no port (an IPv6 literal keeps its colons in brackets)
        if not authority.strip("[]"):
            raise ValueError(f"Host {host!r} names no host: give one, e.g. 'api.coze.com'.")
        return f"{authority}:{port}" if port else authority
    name, _, given = authority.rpartition(":")
    if not name.strip("[]"):
        raise ValueError(f"Host {host!r} names no host: give one, e.g. 'api.coze.com'.")
    if not given.isdigit() or not 0 < int(given) < 65536:
        raise ValueError(f"Host {host!r} has port {given!r}: a port is a number from 1 to 65535.")
    return authority


def _checked_path(host: str, path: str, api_path: str) -> str:
    """``/prefix`` (or nothing), refusing empty and dot segments and a piece of the API's own path."""
    path = path.strip("/")
    if not path:
        return ""
    segments = path.split("/")
    if any(segment in ("", ".", "..") for segment in segments):
        raise ValueError(f"Host {host!r} has an empty or dot segment in its path: write it as '/a/b'.")
    api = api_path.strip("/").split("/") if api_path else []
    for size in range(min(len(segments), len(api)), 0, -1):
        if segments[-size:] == api[:size]:
            tail = "/" + "/".join(segments[-size:])
            raise ValueError(
                f"Host {host!r} ends with {tail!r}, the start of the API's own path: give only the "
                "host and any prefix before it, e.g. 'https://gw.example/guance'."
            )
    return "/" + path


def _masked(host: str) -> str:
    """The host for a message, any user info masked: a password written there must not reach a log."""
    scheme, sep, rest = host.partition("://")
    if not sep:
        scheme, rest = "", host
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        authority = "***@" + authority.rpartition("@")[2]
    return f"{scheme}{sep}{authority}{slash}{path}"


def origin(url: str) -> str:
    """``scheme://host[:port]`` of a URL: what a TLS error or a connection pool is about."""
    host_end = url.find("/", url.find("//") + 2)
    return url if host_end < 0 else url[:host_end]

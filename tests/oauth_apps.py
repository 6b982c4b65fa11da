"""What the Coze OAuth service app tests share: RSA keys made at run time, the connection, secret scans.

The keys are made once per module (each module's ``keys`` fixture calls :func:`make_keys`); the app is
registered with the session emulator, which each test resets, so a test registers it again.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from airflow_provider_taskstatus.emulator import EmulatorServer
from airflow_provider_taskstatus.transport.tokens import TOKENS

APP_ID = "app-1"
KID = "kid-1"
CONN_ID = "coze_oauth"
#: A JWT as it travels: three base64url parts, the first a JSON header (``{"`` → ``eyJ``).
JWT_PATTERN = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
#: What the tests' sensors and triggers poll with: no retry within a poll, short pauses.
FAST_POLICY = {
    "timeout": 5.0,
    "max_retries": 0,
    "backoff": 0.01,
    "max_backoff": 0.05,
    "max_consecutive_failures": 3,
}


def private_pem(key: Any, password: bytes | None = None) -> str:
    encryption = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    ).decode()


def public_pem(key: rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@dataclass(frozen=True)
class Keys:
    #: The app's key pair (private PEM, public PEM).
    private: str
    public: str
    #: Another RSA key: signs JWTs the app's public key does not verify.
    stranger: str
    #: The app's key, encrypted with a passphrase.
    encrypted: str
    #: An EC key: a readable PEM, but not RSA.
    ec: str

    @property
    def secrets(self) -> list[str]:
        """The private keys' base64 body lines: none may appear in any output."""
        return [
            line for pem in (self.private, self.stranger, self.encrypted, self.ec) for line in body_lines(pem)
        ]


def body_lines(pem: str) -> list[str]:
    return [line for line in pem.strip().splitlines() if line and not line.startswith("-----")]


def make_keys() -> Keys:
    """Fresh keys (2048-bit RSA takes a moment: one set per test module)."""
    main = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return Keys(
        private_pem(main),
        public_pem(main),
        private_pem(stranger),
        private_pem(main, b"passphrase"),
        private_pem(ec.generate_private_key(ec.SECP256R1())),
    )


def register_app(emulator: EmulatorServer, keys: Keys, token_lifetime: float | None = None) -> None:
    emulator.add_oauth_app(APP_ID, {KID: keys.public}, token_lifetime=token_lifetime)


def set_connection(
    monkeypatch: pytest.MonkeyPatch,
    base_url: str,
    password: str | None,
    conn_id: str = CONN_ID,
    **extra: Any,
) -> str:
    """An OAuth connection (``AIRFLOW_CONN_<ID>``, JSON) for this test; its extras default to app-1/kid-1."""
    extra = {"oauth_app_id": APP_ID, "oauth_public_key_id": KID, "oauth_duration_seconds": 900, **extra}
    conn: dict[str, Any] = {
        "conn_type": "coze",
        "host": base_url,
        "extra": {k: v for k, v in extra.items() if v is not None},
    }
    if password is not None:
        conn["password"] = password
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    return conn_id


def issued_tokens() -> list[str]:
    """The access tokens this process holds now (the emulator never records them)."""
    return [token.value for token in TOKENS._tokens.values()]


def exchange_count() -> int:
    """Exchanges this process made, every account together."""
    return sum(TOKENS.exchanges.values())


def leaks(text: str, secrets: Iterable[str]) -> list[str]:
    """The secrets (shortened) found in ``text``, and any JWT."""
    found = [f"{s[:12]}…" for s in secrets if s and s in text]
    found += [f"JWT {m[:16]}…" for m in JWT_PATTERN.findall(text)]
    return found


def in_progress_for(seconds: float) -> list[dict[str, Any]]:
    """A copy task that is in progress for ``seconds`` from its first poll, then successful."""
    return [{"task_status": "in_progress", "seconds": seconds}, {"task_status": "successful"}]


def wait_until(deadline: float) -> float:
    """Seconds from now to ``deadline`` (never negative)."""
    return max(0.0, deadline - time.time())

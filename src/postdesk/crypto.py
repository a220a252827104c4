"""Encryption at rest for the secrets we must keep (DKIM private keys).

Fernet (AES-128-CBC + HMAC-SHA256, from `cryptography`). The keys come from
POSTDESK_ENCRYPTION_KEYS (comma-separated Fernet keys, the first encrypts, all decrypt, so a
key can be rotated), or else from POSTDESK_DATA_DIR/encryption.key, generated once (0600).
They are deliberately not derived from DJANGO_SECRET_KEY: rotating the session secret must not
make every DKIM key unreadable.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class DecryptionFailed(Exception):
    """The stored secret cannot be read with the configured keys."""


def _key_file() -> Path:
    return Path(settings.DATA_DIR) / "encryption.key"


@cache
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(k.encode()) for k in keys])


def _keys() -> tuple[str, ...]:
    configured = os.environ.get("POSTDESK_ENCRYPTION_KEYS", "")
    keys = tuple(k.strip() for k in configured.split(",") if k.strip())
    if keys:
        return keys
    path = _key_file()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(Fernet.generate_key().decode())
    return (path.read_text().strip(),)


def encrypt(plaintext: bytes) -> str:
    return _fernet(_keys()).encrypt(plaintext).decode("ascii")


def decrypt(token: str) -> bytes:
    try:
        return _fernet(_keys()).decrypt(token.encode("ascii"))
    except InvalidToken:
        raise DecryptionFailed("the encryption key does not match this secret") from None

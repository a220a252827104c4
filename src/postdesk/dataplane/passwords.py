"""Mailbox password hashes as the mail servers verify them: Dovecot's `{ARGON2ID}` scheme.

Part of the data-plane contract: Dovecot reads the hash from the `dataplane_*` views and
verifies it itself, and the ActiveSync/MAPI gate verifies the same hash. The policy a
password must meet is mail's (mail.passwords).
"""

from __future__ import annotations

import argon2
from django.conf import settings

SCHEME_PREFIX = "{ARGON2ID}"


def _hasher() -> argon2.PasswordHasher:
    return argon2.PasswordHasher(
        time_cost=settings.POSTDESK_ARGON2_TIME_COST,
        memory_cost=settings.POSTDESK_ARGON2_MEMORY_KIB,
        parallelism=1,  # libsodium, which Dovecot verifies with, supports only 1
        hash_len=32,
        salt_len=16,
        type=argon2.Type.ID,
    )


def hash_password(password: str) -> str:
    """The Dovecot-compatible hash: "{ARGON2ID}$argon2id$v=19$m=…,t=…,p=1$salt$hash"."""
    return SCHEME_PREFIX + _hasher().hash(password)


def verify_password(password: str, stored_hash: str) -> bool:
    """Whether `password` matches `stored_hash`; False for a hash of another scheme."""
    if not stored_hash.startswith(SCHEME_PREFIX):
        return False
    try:
        return _hasher().verify(stored_hash[len(SCHEME_PREFIX) :], password)
    except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
        return False

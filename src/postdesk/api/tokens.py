"""The token format, pure: `pd_<prefix>_<secret>`.

The prefix (8 lower-case letters and digits) is public: it finds the row and names the token
in lists. The secret is 32 random bytes (256 bits) in URL-safe base64; only its SHA-256 is
stored.

Why SHA-256 and not Argon2 (which mailbox and login passwords use): a slow hash protects
secrets that people choose, whose few bits of entropy make guessing from a stolen hash
feasible. A 256-bit random secret cannot be guessed from its hash at any hashing speed, so
slowness buys nothing here, while Argon2 would cost tens of milliseconds and tens of MiB on
every API request, and make a flood of bogus tokens an easy way to exhaust the server.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
from dataclasses import dataclass

MARKER = "pd"
PREFIX_LENGTH = 8
SECRET_BYTES = 32
_PREFIX_ALPHABET = string.ascii_lowercase + string.digits
_TOKEN_RE = re.compile(r"pd_([a-z0-9]{8})_([A-Za-z0-9_-]{43})")


@dataclass(frozen=True)
class NewToken:
    prefix: str
    secret: str

    @property
    def plaintext(self) -> str:
        return f"{MARKER}_{self.prefix}_{self.secret}"


def generate() -> NewToken:
    prefix = "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(PREFIX_LENGTH))
    return NewToken(prefix=prefix, secret=secrets.token_urlsafe(SECRET_BYTES))


def parse(token: str) -> tuple[str, str] | None:
    """(prefix, secret) of a well-formed token, else None."""
    match = _TOKEN_RE.fullmatch(token.strip())
    return (match.group(1), match.group(2)) if match else None


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)

"""DKIM keys and the state of their DNS record: pure functions, no database, no network.

States of a domain's DKIM, as the dashboard shows them:
- disabled: no signing key; messages leave unsigned;
- pending:  we sign, but the record is not (yet) in the DNS: receivers cannot verify;
- active:   the record is published and its public key is ours;
- mismatch: a record is published at our selector, but with another key (or unreadable):
            receivers would reject our signatures; never reported as active;
- unknown:  the DNS could not answer now; retried.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from enum import StrEnum

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.utils.translation import gettext as _

from .answers import FetchTxt, TemporaryDnsFailure

KEY_BITS = 2048
_SELECTOR = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


class DkimState(StrEnum):
    DISABLED = "disabled"
    PENDING = "pending"
    ACTIVE = "active"
    MISMATCH = "mismatch"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class KeyPair:
    private_pem: bytes
    public_key: str  # base64 DER SubjectPublicKeyInfo: the record's p= value


def generate_key_pair() -> KeyPair:
    private = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    private_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_der = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return KeyPair(private_pem, base64.b64encode(public_der).decode("ascii"))


def is_valid_selector(selector: str) -> bool:
    return bool(_SELECTOR.match(selector))


def record_host(selector: str, domain: str) -> str:
    return f"{selector}._domainkey.{domain}"


def record_value(public_key: str) -> str:
    return f"v=DKIM1; k=rsa; p={public_key}"


def parse_tags(text: str) -> dict[str, str]:
    """A DKIM tag list (RFC 6376 §3.2) as a dict; whitespace inside values is dropped."""
    tags: dict[str, str] = {}
    for part in text.split(";"):
        name, sep, value = part.partition("=")
        if sep:
            tags[name.strip().lower()] = re.sub(r"\s+", "", value)
    return tags


@dataclass(frozen=True)
class DkimResult:
    state: str
    host: str
    value: str  # the record the customer must publish (empty when disabled)
    message: str
    found: list[str]


def check_dkim(
    domain: str, selector: str | None, public_key: str | None, fetch_txt: FetchTxt
) -> DkimResult:
    """Compare what is published at the selector with our key."""
    if not selector or not public_key:
        return DkimResult(
            DkimState.DISABLED,
            "",
            "",
            _("DKIM is disabled: your messages are sent without a signature."),
            [],
        )
    host = record_host(selector, domain)
    value = record_value(public_key)
    try:
        found = [t for t in fetch_txt(host) if t.strip()]
    except TemporaryDnsFailure:
        return DkimResult(
            DkimState.UNKNOWN,
            host,
            value,
            _("The DNS did not answer in time. We will check again shortly."),
            [],
        )
    if not found:
        return DkimResult(
            DkimState.PENDING,
            host,
            value,
            _(
                "DKIM is enabled, but its record was not found in your DNS yet. Publish its "
                "TXT record at your registrar; after a change, propagation can take up to 48 "
                "hours."
            ),
            found,
        )
    published = [parse_tags(t).get("p", "") for t in found]
    if len(found) == 1 and published[0] == public_key:
        return DkimResult(
            DkimState.ACTIVE,
            host,
            value,
            _("DKIM is active: your messages are signed and the record is in your DNS."),
            found,
        )
    return DkimResult(
        DkimState.MISMATCH,
        host,
        value,
        _(
            "A DKIM record is published at %(host)s, but it does not contain our key, so "
            "receivers cannot verify your messages. Replace it with our record."
        )
        % {"host": host},
        found,
    )

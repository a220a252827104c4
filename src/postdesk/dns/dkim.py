"""DKIM keys and the state of their DNS record: pure functions, no database, no network.

States of a domain's DKIM, as the dashboard shows them:
- disabled: no signing key; messages leave unsigned;
- pending:  we sign, but the record is not (yet) in the DNS: receivers cannot verify;
- active:   the record is published and a receiver would verify our signatures with it;
- testing:  the record holds our key but says `t=y` (RFC 6376 §3.6.1): receivers must treat
            our signed mail as unsigned; the advice is the record without the flag;
- mismatch: a record is published at our selector that a receiver cannot verify our
            signatures with: another key, a revoked one (`p=` empty), an unreadable one, a key
            type other than ours (`k=`), hashes without sha256 (`h=`), a service type other
            than email (`s=`), a version other than DKIM1, an RSA key under 1024 bits (RFC
            8301 forbids verifying with it), or several records; never reported as active;
- unknown:  the DNS could not answer now; retried.

The record is judged as a verifier reads it (RFC 6376 §3.6.1), not by comparing text, so the
ways registrars reformat a record (spaces, split strings, tags in another order) never count.
An RSA key of 1024 to 2047 bits still verifies, but is weak (RFC 8301 wants 2048 for signing):
`active` with a warning to rotate. (An Ed25519 key signing alongside would make up for it, but
Postdesk signs with RSA only, so there is none to count.)

A domain in the middle of a rotation has two keys in use: the signing one (the state) and the
prepared one, checked alike (`prepared`); a prepared record not yet verifiable is a warning,
since switching to it before it is published would have receivers reject our signatures.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, replace
from enum import StrEnum

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.utils.translation import gettext as _

from .answers import FetchTxt, TemporaryDnsFailure

KEY_BITS = 2048
# RFC 8301 §3.2: verifiers must not accept RSA keys shorter than this.
MIN_VERIFIABLE_BITS = 1024
_SELECTOR = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


class DkimState(StrEnum):
    DISABLED = "disabled"
    PENDING = "pending"
    ACTIVE = "active"
    MISMATCH = "mismatch"
    TESTING = "testing"
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
    selector: str = ""
    bits: int | None = None  # the published RSA key's size, when readable
    warning: str = ""  # does not block active: a weak key, a prepared key not published
    prepared: DkimResult | None = None  # the rotation's new key, checked alike

    def as_dict(self) -> dict[str, object]:
        return {
            "selector": self.selector,
            "state": self.state,
            "host": self.host,
            "value": self.value,
            "found": self.found,
            "bits": self.bits,
            "message": self.message,
        }


@dataclass(frozen=True)
class _PublishedKey:
    """What a verifier makes of the record at our selector, for our RSA-SHA256 signatures."""

    fault: str  # "" (verifies), or why it does not: a _FAULTS key
    testing: bool = False
    bits: int | None = None


def _public_key(p: str) -> object | None:
    try:
        return serialization.load_der_public_key(base64.b64decode(p, validate=True))
    except ValueError:  # not base64, not DER, or an unsupported key
        return None


def _judge(text: str, public_key: str) -> _PublishedKey:
    """RFC 6376 §3.6.1's reading of one key record, for a signature made with `public_key`."""
    tags = parse_tags(text)
    if text.strip().startswith("v=") and tags.get("v") != "DKIM1":
        return _PublishedKey("version")
    p = tags.get("p")
    if p is None:
        return _PublishedKey("unreadable")
    if not p:
        return _PublishedKey("revoked")
    if tags.get("k", "rsa").lower() != "rsa":
        # Ours is RSA; an Ed25519 record (RFC 8463) cannot verify an RSA signature.
        return _PublishedKey("other_type")
    key = _public_key(p)
    if not isinstance(key, rsa.RSAPublicKey):
        return _PublishedKey("unreadable")
    bits = key.key_size
    hashes = [h.strip().lower() for h in tags["h"].split(":")] if "h" in tags else ["sha256"]
    services = [t.strip().lower() for t in tags.get("s", "*").split(":")]
    flags = [t.strip().lower() for t in tags.get("t", "").split(":")]
    if p != public_key:
        return _PublishedKey("other_key", bits=bits)
    if "sha256" not in hashes:
        return _PublishedKey("hash", bits=bits)
    if not {"*", "email"} & set(services):
        return _PublishedKey("service", bits=bits)
    if bits < MIN_VERIFIABLE_BITS:
        return _PublishedKey("too_short", bits=bits)
    return _PublishedKey("", testing="y" in flags, bits=bits)


def _fault_message(fault: str, host: str, bits: int | None) -> str:
    messages = {
        "version": _(
            "The DKIM record at %(host)s does not start with “v=DKIM1”, so receivers ignore "
            "it and cannot verify your messages. Replace it with our record."
        ),
        "unreadable": _(
            "The DKIM record at %(host)s has no readable key (“p=”), so receivers cannot "
            "verify your messages. Replace it with our record."
        ),
        "revoked": _(
            "The DKIM record at %(host)s has an empty key (“p=”), which tells receivers the "
            "key is revoked: they reject our signatures. Replace it with our record."
        ),
        "other_type": _(
            "The DKIM record at %(host)s announces another type of key (“k=”) than the RSA "
            "key we sign with, so receivers cannot verify your messages. Replace it with our "
            "record."
        ),
        "hash": _(
            "The DKIM record at %(host)s does not allow SHA-256 (“h=”), which our signatures "
            "use, so receivers reject them. Replace it with our record."
        ),
        "service": _(
            "The DKIM record at %(host)s is not for email (“s=”), so receivers reject our "
            "signatures. Replace it with our record."
        ),
        "too_short": _(
            "The key published at %(host)s is only %(bits)d bits long: receivers refuse to "
            "verify signatures with keys under 1024 bits. Prepare a new key and publish it."
        ),
    }
    default = _(
        "A DKIM record is published at %(host)s, but it does not contain our key, so "
        "receivers cannot verify your messages. Replace it with our record."
    )
    return messages.get(fault, default) % {"host": host, "bits": bits or 0}


def check_dkim(
    domain: str,
    selector: str | None,
    public_key: str | None,
    fetch_txt: FetchTxt,
    *,
    prepared: tuple[str, str] | None = None,
) -> DkimResult:
    """Judge what is published at the selector as a verifier would, for our key; and at the
    prepared key's selector during a rotation (`prepared`: its selector and public key)."""
    if not selector or not public_key:
        return DkimResult(
            DkimState.DISABLED,
            "",
            "",
            _("DKIM is disabled: your messages are sent without a signature."),
            [],
        )
    result = _check_key(domain, selector, public_key, fetch_txt)
    if prepared is None:
        return result
    new = _check_key(domain, *prepared, fetch_txt)
    warnings = [result.warning]
    if new.state not in (DkimState.ACTIVE, DkimState.UNKNOWN):
        warnings.append(
            _(
                "The new key prepared for a rotation is not usable yet at %(host)s: publish "
                "its record before switching to it, or receivers will reject your signatures."
            )
            % {"host": new.host}
        )
    return replace(result, prepared=new, warning=" ".join(w for w in warnings if w))


def _check_key(domain: str, selector: str, public_key: str, fetch_txt: FetchTxt) -> DkimResult:
    host = record_host(selector, domain)
    value = record_value(public_key)

    def result(state: str, message: str, found: list[str], **extra: object) -> DkimResult:
        return DkimResult(state, host, value, message, found, selector, **extra)

    try:
        found = [t for t in fetch_txt(host) if t.strip()]
    except TemporaryDnsFailure:
        return result(
            DkimState.UNKNOWN,
            _("The DNS did not answer in time. We will check again shortly."),
            [],
        )
    if not found:
        return result(
            DkimState.PENDING,
            _(
                "DKIM is enabled, but its record was not found in your DNS yet. Publish its "
                "TXT record at your registrar; after a change, propagation can take up to 48 "
                "hours."
            ),
            found,
        )
    if len(found) > 1:
        # RFC 6376 §3.6.2.2 leaves a verifier free to pick any one: ours may not be the one.
        return result(
            DkimState.MISMATCH,
            _(
                "%(count)d DKIM records are published at %(host)s: receivers may pick any one "
                "of them and fail to verify your messages. Keep only our record."
            )
            % {"count": len(found), "host": host},
            found,
        )
    judged = _judge(found[0], public_key)
    if judged.fault:
        return result(
            DkimState.MISMATCH,
            _fault_message(judged.fault, host, judged.bits),
            found,
            bits=judged.bits,
        )
    if judged.testing:
        return result(
            DkimState.TESTING,
            _(
                "Your DKIM record at %(host)s is marked as a test (“t=y”): receivers treat "
                "your messages as if they were not signed. Replace it with our record, which "
                "has no test flag."
            )
            % {"host": host},
            found,
            bits=judged.bits,
        )
    warning = ""
    if judged.bits is not None and judged.bits < KEY_BITS:
        warning = _(
            "The key published at %(host)s is only %(bits)d bits long: receivers still verify "
            "it, but 2048 bits is the norm today. Prepare a new key and switch to it."
        ) % {"host": host, "bits": judged.bits}
    return result(
        DkimState.ACTIVE,
        _("DKIM is active: your messages are signed and the record is in your DNS."),
        found,
        bits=judged.bits,
        warning=warning,
    )

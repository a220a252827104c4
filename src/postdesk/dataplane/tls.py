"""TLS for the mail stack: the certificate every daemon presents, and the one profile they share.

Postfix (STARTTLS on the inbound and submission ports, implicit TLS on submissions), Dovecot
(STARTTLS on IMAP, implicit TLS on IMAPS) and the gate's nginx present the same certificate
and follow Mozilla's "intermediate" server profile: TLS 1.2 and 1.3 only, forward-secret AEAD
ciphers, the client's cipher order (every cipher in the list is strong, so the client may pick
what its hardware runs fastest). The operator gives the certificate (the chain in the cert
file, as certbot's fullchain.pem) and its key; without them a self-signed certificate for the
stack's host name is made, so a demo encrypts from the first message.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import ip_address
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

# https://ssl-config.mozilla.org/guidelines/5.7.json, "intermediate": the TLS 1.2 ciphers
# (TLS 1.3's suites are all acceptable and OpenSSL's defaults are kept).
MOZILLA_INTERMEDIATE_CIPHERS = ":".join(
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
        "DHE-RSA-AES128-GCM-SHA256",
        "DHE-RSA-AES256-GCM-SHA384",
        "DHE-RSA-CHACHA20-POLY1305",
    )
)
MINIMUM_PROTOCOL = "TLSv1.2"

# Debian's dovecot-core ships RFC 7919's ffdhe2048 group (Mozilla's choice for the DHE
# ciphers); without a group, Dovecot and nginx simply do not offer DHE.
FFDHE_GROUP = Path("/usr/share/dovecot/dh.pem")

SELF_SIGNED_DAYS = 365


class CertificateError(Exception):
    """The certificate or key cannot be used; the message says why."""


@dataclass(frozen=True)
class Certificate:
    cert: Path  # PEM: the server certificate first, then its chain
    key: Path  # PEM, unencrypted (the daemons start unattended)


def self_signed(hostname: str, directory: Path, addresses: Sequence[str] = ()) -> Certificate:
    """A self-signed certificate for `hostname` (and the IP `addresses`, for clients that
    connect by address) in `directory`, made once and kept after.

    Kept across restarts so a client that accepted it once is not asked again; made anew when
    the names it holds are no longer the stack's.
    """
    directory.mkdir(parents=True, exist_ok=True)
    made = Certificate(cert=directory / "cert.pem", key=directory / "key.pem")
    wanted = [x509.DNSName(hostname), *(x509.IPAddress(ip_address(a)) for a in addresses)]
    if made.cert.exists() and made.key.exists() and set(wanted) <= set(_alt_names(made.cert)):
        return made
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=SELF_SIGNED_DAYS))
        .add_extension(x509.SubjectAlternativeName(wanted), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    # The key is written 0600 from its first byte: no moment where another user could read it.
    descriptor = os.open(made.key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as key_file:
        key_file.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    made.cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    made.cert.chmod(0o644)
    return made


def checked(cert: Path, key: Path) -> Certificate:
    """The pair, once it is known that the daemons can use it: readable PEM, an unencrypted
    key, and the key that belongs to the first certificate of the file.

    Checked before any daemon is given it: Postfix would otherwise start and fail each TLS
    handshake (logging only), and a reload with a mismatched renewal would take TLS down."""
    try:
        chain = x509.load_pem_x509_certificates(cert.read_bytes())
    except FileNotFoundError:
        raise CertificateError(f"no certificate file at {cert}") from None
    except ValueError:
        raise CertificateError(f"{cert} holds no PEM certificate") from None
    try:
        private_key = serialization.load_pem_private_key(key.read_bytes(), password=None)
    except FileNotFoundError:
        raise CertificateError(f"no key file at {key}") from None
    except TypeError:
        raise CertificateError(
            f"{key} is encrypted: the mail servers start unattended and need it unencrypted"
        ) from None
    except ValueError:
        raise CertificateError(f"{key} holds no PEM private key") from None
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    if private_key.public_key().public_bytes(serialization.Encoding.PEM, public) != chain[
        0
    ].public_key().public_bytes(serialization.Encoding.PEM, public):
        raise CertificateError(f"{key} is not the key of the first certificate in {cert}")
    # Absolute, not resolved: certbot's live/ names are links to the newest files, so a daemon
    # reloaded after a renewal must be given the link, not the file it pointed to at render.
    return Certificate(cert=cert.absolute(), key=key.absolute())


def _alt_names(cert: Path) -> list[x509.GeneralName]:
    try:
        certificate = x509.load_pem_x509_certificate(cert.read_bytes())
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except (ValueError, x509.ExtensionNotFound):
        return []
    return list(names.value)

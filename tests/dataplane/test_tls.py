"""TLS on every port a mail client reaches, as the client sees it: Python's `ssl` trusting only
a CA made for this run (tests/dataplane/conftest.py), verifying the chain and the host name.

Dovecot counts a client connecting from the server's own address as secure and lets it log in
without TLS; the clear-text refusals are therefore checked from 127.0.0.2 (another loopback
address, so another host to Dovecot), as a client on the network would connect.
"""

from __future__ import annotations

import imaplib
import smtplib
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request
import warnings
from pathlib import Path

import pytest

from postdesk.dataplane import stack, tls
from postdesk.dataplane.render import StackConfig, render_stack
from postdesk.mail.services import mailbox_create
from tests.cli import assert_fails, run_postdesk
from tests.conftest import GOOD_PASSWORD
from tests.dataplane.conftest import STACK_HOSTNAME, issue

pytestmark = pytest.mark.mailstack

ELSEWHERE = "127.0.0.2"  # a client that is not on the server's own address


class ImapFromElsewhere(imaplib.IMAP4):
    def _create_socket(self, timeout):
        return socket.create_connection(
            (self.host, self.port), timeout, source_address=(ELSEWHERE, 0)
        )


def peer_serial(sock: ssl.SSLSocket) -> int:
    return int(sock.getpeercert()["serialNumber"], 16)


def serial_of(cert_path: Path) -> int:
    return tls.x509.load_pem_x509_certificate(cert_path.read_bytes()).serial_number


def test_the_inbound_port_offers_starttls_with_a_verified_chain(mail):
    with smtplib.SMTP("127.0.0.1", mail.ports["smtp"], timeout=20) as smtp:
        smtp.ehlo()
        assert smtp.has_extn("starttls")
        assert not smtp.has_extn("auth")  # nobody logs in on the inbound port
        smtp.starttls(context=mail.tls)  # raises unless the chain and 127.0.0.1 verify
        assert smtp.sock.version() in {"TLSv1.2", "TLSv1.3"}


def test_submission_refuses_auth_before_starttls(mail, operator, domain):
    mailbox_create(actor=operator, domain=domain, username="marie", password=GOOD_PASSWORD)
    with smtplib.SMTP("127.0.0.1", mail.ports["submission"], timeout=20) as smtp:
        smtp.ehlo()
        assert smtp.has_extn("starttls")
        assert not smtp.has_extn("auth")
        # A client that tries anyway gets a refusal, and no mail is taken either.
        code, text = smtp.docmd("AUTH", "PLAIN AG1hcmllQGV4YW1wbGUuY29tAHNlY3JldA==")
        assert code == 530 and b"STARTTLS" in text
        code, _ = smtp.docmd("MAIL", "FROM:<marie@example.com>")
        assert code == 530
        smtp.starttls(context=mail.tls)
        smtp.ehlo()
        assert smtp.has_extn("auth")
        smtp.login("marie@example.com", GOOD_PASSWORD)


def test_submissions_is_implicit_tls_and_delivers(mail, operator, domain):
    mailbox_create(actor=operator, domain=domain, username="marie", password=GOOD_PASSWORD)
    with smtplib.SMTP_SSL(
        "127.0.0.1", mail.ports["submissions"], timeout=20, context=mail.tls
    ) as smtp:
        smtp.login("marie@example.com", GOOD_PASSWORD)
        smtp.sendmail(
            "marie@example.com", ["marie@example.com"], "Subject: Over TLS\r\n\r\nHello\r\n"
        )
    assert mail.subjects("marie@example.com", GOOD_PASSWORD) == ["Over TLS"]


def test_imap_refuses_login_in_clear_and_accepts_it_after_starttls(mail, operator, domain):
    mailbox_create(actor=operator, domain=domain, username="marie", password=GOOD_PASSWORD)
    client = ImapFromElsewhere("127.0.0.1", mail.ports["imap"], timeout=20)
    try:
        assert "STARTTLS" in client.capabilities
        assert "LOGINDISABLED" in client.capabilities
        with pytest.raises(imaplib.IMAP4.error):
            client.login("marie@example.com", GOOD_PASSWORD)
        # AUTHENTICATE too: the mechanisms are not even offered before TLS.
        assert not any(c.startswith("AUTH=") for c in client.capabilities)
        client.starttls(ssl_context=mail.tls)
        assert client.login("marie@example.com", GOOD_PASSWORD)[0] == "OK"
    finally:
        client.shutdown()


def test_imaps_is_implicit_tls(mail, operator, domain):
    mailbox_create(actor=operator, domain=domain, username="marie", password=GOOD_PASSWORD)
    client = imaplib.IMAP4_SSL("127.0.0.1", mail.ports["imaps"], ssl_context=mail.tls, timeout=20)
    try:
        assert client.login("marie@example.com", GOOD_PASSWORD)[0] == "OK"
    finally:
        client.logout()


@pytest.mark.parametrize("port", ["submissions", "imaps", "gate"])
def test_the_certificate_names_the_host_and_nothing_else_verifies(mail, test_ca, port):
    address = ("127.0.0.1", mail.ports[port])
    with (
        socket.create_connection(address, timeout=20) as raw,
        mail.tls.wrap_socket(raw, server_hostname=STACK_HOSTNAME) as sock,
    ):
        assert sock.version() in {"TLSv1.2", "TLSv1.3"}
    with (
        socket.create_connection(address, timeout=20) as raw,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        mail.tls.wrap_socket(raw, server_hostname="mail.elsewhere.example")
    # A client that trusts the system's CAs only does not trust a certificate of another CA.
    with (
        socket.create_connection(address, timeout=20) as raw,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        ssl.create_default_context().wrap_socket(raw, server_hostname=STACK_HOSTNAME)


@pytest.mark.parametrize("port", ["submissions", "imaps", "gate"])
def test_weak_protocols_and_ciphers_are_refused(mail, port):
    """Mozilla's intermediate profile: no TLS 1.1, no CBC cipher. (The test CA issues an ECDSA
    certificate, so the ciphers compared here are ECDSA's.)"""
    tls_1_1 = client_context_unchecked()
    tls_1_1.set_ciphers("ALL:@SECLEVEL=0")
    with warnings.catch_warnings():  # Python deprecates the old versions we must offer here
        warnings.simplefilter("ignore", DeprecationWarning)
        tls_1_1.minimum_version = ssl.TLSVersion.TLSv1
        tls_1_1.maximum_version = ssl.TLSVersion.TLSv1_1
    cbc = client_context_unchecked()
    cbc.maximum_version = ssl.TLSVersion.TLSv1_2
    cbc.set_ciphers("ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0")
    for refused in (tls_1_1, cbc):
        with (
            socket.create_connection(("127.0.0.1", mail.ports[port]), timeout=20) as raw,
            pytest.raises((ssl.SSLError, ConnectionResetError)),
        ):
            refused.wrap_socket(raw, server_hostname=STACK_HOSTNAME)
    # The same client with a TLS 1.2 cipher of the profile gets through: the refusal was the
    # cipher, not the client.
    good = client_context_unchecked()
    good.maximum_version = ssl.TLSVersion.TLSv1_2
    good.set_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256")
    with (
        socket.create_connection(("127.0.0.1", mail.ports[port]), timeout=20) as raw,
        good.wrap_socket(raw, server_hostname=STACK_HOSTNAME) as sock,
    ):
        assert sock.cipher()[0] == "ECDHE-ECDSA-AES128-GCM-SHA256"


def client_context_unchecked() -> ssl.SSLContext:
    # Verification is what the other tests check; here only the handshake's terms matter.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def test_the_gate_speaks_only_https(mail):
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(
            f"http://127.0.0.1:{mail.ports['gate']}/Microsoft-Server-ActiveSync", timeout=20
        )
    assert refused.value.code == 400  # nginx: "plain HTTP request was sent to HTTPS port"


def test_a_renewed_certificate_is_served_after_reload_and_no_connection_is_refused(
    mail, mail_stack, test_ca
):
    cert_path, _key_path = Path(mail_stack["tls_cert"]), Path(mail_stack["tls_key"])
    old_serial = serial_of(cert_path)
    failures: list[BaseException] = []
    handshakes = 0
    stop = threading.Event()

    def keep_connecting() -> None:
        nonlocal handshakes
        while not stop.is_set():
            try:
                with smtplib.SMTP("127.0.0.1", mail.ports["smtp"], timeout=20) as smtp:
                    smtp.starttls(context=mail.tls)
                    smtp.noop()
                handshakes += 1
            except (OSError, smtplib.SMTPException) as error:
                failures.append(error)

    client = threading.Thread(target=keep_connecting)
    client.start()
    try:
        issue(test_ca, cert_path.parent)  # certbot's renewal: new files at the same paths
        new_serial = serial_of(cert_path)
        assert new_serial != old_serial
        stack.reload(Path(mail_stack["dir"]))
    finally:
        stop.set()
        client.join(timeout=30)
    assert failures == [] and handshakes > 0

    # New connections get the new certificate once each daemon's old processes have finished
    # their session (Postfix lets an idle smtpd serve one more client): within seconds.
    for port in ("submission", "imaps", "gate"):
        assert served_eventually(mail, port, new_serial), f"{port} still serves the old one"


def served_eventually(mail, port: str, serial: int, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if serial_served(mail, port) == serial:
            return True
        time.sleep(0.2)
    return False


def serial_served(mail, port: str) -> int:
    if port == "submission":
        with smtplib.SMTP("127.0.0.1", mail.ports[port], timeout=20) as smtp:
            smtp.starttls(context=mail.tls)
            return peer_serial(smtp.sock)
    with (
        socket.create_connection(("127.0.0.1", mail.ports[port]), timeout=20) as raw,
        mail.tls.wrap_socket(raw, server_hostname=STACK_HOSTNAME) as sock,
    ):
        return peer_serial(sock)


def test_a_renewal_with_the_wrong_key_is_refused_and_the_running_one_kept(
    mail, mail_stack, test_ca, tmp_path
):
    cert_path, key_path = Path(mail_stack["tls_cert"]), Path(mail_stack["tls_key"])
    serving = serial_of(cert_path)
    kept_cert, kept_key = cert_path.read_bytes(), key_path.read_bytes()
    other_cert, _other_key = issue(test_ca, tmp_path)
    cert_path.write_bytes(other_cert.read_bytes())  # the key of another certificate is kept
    try:
        with pytest.raises(tls.CertificateError, match="is not the key of"):
            stack.reload(Path(mail_stack["dir"]))
        with smtplib.SMTP("127.0.0.1", mail.ports["submission"], timeout=20) as smtp:
            smtp.starttls(context=mail.tls)
            assert peer_serial(smtp.sock) == serving
    finally:
        cert_path.write_bytes(kept_cert)
        key_path.write_bytes(kept_key)


def test_stack_json_records_the_tls_ports_and_certificate(mail_stack):
    assert {"smtp", "submission", "submissions", "imap", "imaps", "gate"} <= set(
        mail_stack["ports"]
    )
    assert Path(mail_stack["tls_cert"]).name == "fullchain.pem"


@pytest.mark.django_db
def test_without_a_certificate_a_self_signed_one_for_the_host_name_is_made_once(tmp_path):
    config = StackConfig(dir=tmp_path, hostname="mail.provider.example")
    render_stack(config)
    cert = tmp_path / "tls" / "cert.pem"
    key = tmp_path / "tls" / "key.pem"
    assert key.stat().st_mode & 0o777 == 0o600
    made = tls.x509.load_pem_x509_certificate(cert.read_bytes())
    names = made.extensions.get_extension_for_class(tls.x509.SubjectAlternativeName)
    assert names.value.get_values_for_type(tls.x509.DNSName) == ["mail.provider.example"]
    for rendered in ("postfix/main.cf", "dovecot/dovecot.conf", "nginx/nginx.conf"):
        assert str(cert) in (tmp_path / rendered).read_text()
    # A second render (a restart) keeps it: a client that accepted it is not asked again.
    render_stack(config)
    assert serial_of(cert) == made.serial_number
    # Another host name gets a certificate for that name.
    render_stack(StackConfig(dir=tmp_path, hostname="mx.provider.example"))
    assert serial_of(cert) != made.serial_number


@pytest.mark.django_db
def test_the_loopback_stacks_own_certificate_verifies_for_127_0_0_1(tmp_path):
    """The demo's self-test submits to 127.0.0.1 and checks the certificate (`./run demo
    --mail` trusts the stack's own): it must name that address, not only the host name."""
    config = StackConfig(dir=tmp_path, hostname="mail.provider.example")
    cert = tmp_path / "tls" / "cert.pem"
    # One made before it named the address is made anew.
    tls.self_signed("mail.provider.example", tmp_path / "tls")
    before = serial_of(cert)
    render_stack(config)
    made = serial_of(cert)
    assert made != before
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, tmp_path / "tls" / "key.pem")
    with socket.create_server(("127.0.0.1", 0)) as listener:

        def answer() -> None:
            connection, _ = listener.accept()
            with server_context.wrap_socket(connection, server_side=True):
                pass

        threading.Thread(target=answer, daemon=True).start()
        client_context = ssl.create_default_context(cafile=str(cert))
        port = listener.getsockname()[1]
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            client_context.wrap_socket(raw, server_hostname="127.0.0.1") as verified,
        ):
            assert verified.version() in ("TLSv1.2", "TLSv1.3")
    render_stack(config)  # and kept after, as before
    assert serial_of(cert) == made


@pytest.mark.django_db
def test_an_unusable_certificate_is_refused_before_anything_is_written(tmp_path, test_ca):
    cert, key = issue(test_ca, tmp_path / "a")
    other_cert, _other_key = issue(test_ca, tmp_path / "b")
    cases = {
        "is not the key of": (other_cert, key),
        "no certificate file": (tmp_path / "missing.pem", key),
        "holds no PEM certificate": (key, key),
        "holds no PEM private key": (cert, cert),
    }
    for message, (cert_file, key_file) in cases.items():
        out = tmp_path / "out"
        with pytest.raises(tls.CertificateError, match=message):
            render_stack(StackConfig(dir=out, tls_cert=cert_file, tls_key=key_file))
        assert not (out / "postfix" / "main.cf").exists()
    with pytest.raises(tls.CertificateError, match="together"):
        render_stack(StackConfig(dir=tmp_path / "out", tls_cert=cert))


def test_the_command_says_in_one_line_why_a_certificate_is_refused(tmp_path, test_ca):
    cert, _key = issue(test_ca, tmp_path / "a")
    _other_cert, other_key = issue(test_ca, tmp_path / "b")
    result = run_postdesk(
        tmp_path,
        *("dataplane", "render", "--out", str(tmp_path / "out")),
        *("--tls-cert", str(cert), "--tls-key", str(other_key)),
    )
    line = assert_fails(result, "dataplane_failed")
    assert "is not the key of the first certificate" in line

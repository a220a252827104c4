"""A real mail stack (Postfix + Dovecot from Debian) on 127.0.0.1, reading the test database,
and an SMTP sink standing in for the outside world (the relay)."""

from __future__ import annotations

import email
import imaplib
import os
import poplib
import shutil
import smtplib
import ssl
import tempfile
import threading
import time
from email.message import EmailMessage
from pathlib import Path

import pytest
import trustme
from aiosmtpd.controller import Controller

from postdesk.dataplane import stack
from postdesk.dataplane.render import StackConfig, free_port


class Sink:
    """Collects what the stack relays to other domains."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], email.message.Message]] = []
        self.senders: dict[str, str] = {}  # recipient → envelope sender (MAIL FROM)
        self.raw: dict[str, bytes] = {}  # recipient → the message's bytes as received
        self._lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self._lock:
            self.messages.append(
                (list(envelope.rcpt_tos), email.message_from_bytes(envelope.content))
            )
            for recipient in envelope.rcpt_tos:
                self.senders[recipient] = envelope.mail_from
                self.raw[recipient] = envelope.original_content or envelope.content
        return "250 OK"

    def clear(self) -> None:
        with self._lock:
            self.messages.clear()
            self.senders.clear()
            self.raw.clear()

    def wait_for(self, recipient: str, timeout: float = 20) -> email.message.Message:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for recipients, message in self.messages:
                    if recipient in recipients:
                        return message
            time.sleep(0.1)
        raise AssertionError(f"nothing relayed to {recipient} within {timeout} s")


@pytest.fixture(scope="module")
def sink():
    handler = Sink()
    handler.port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=handler.port)
    controller.start()
    yield handler
    controller.stop()


STACK_HOSTNAME = "mail.postdesk.test"
# The provider's probe mailbox of the deliverability self-test (tests/dataplane/
# test_deliverability.py creates it; the stack routes mail to it through its probe receiver).
PROBE_ADDRESS = "probe@probe.postdesk.test"


@pytest.fixture(scope="session")
def test_ca() -> trustme.CA:
    """A certificate authority made for this run: the stack's certificate is issued by it, and
    the tests' clients trust it alone, so each TLS connection verifies a real chain."""
    return trustme.CA()


def issue(ca: trustme.CA, directory: Path) -> tuple[Path, Path]:
    """A certificate for the stack's host name (and 127.0.0.1, where the tests connect), with
    the chain after it as certbot's fullchain.pem has it."""
    directory.mkdir(parents=True, exist_ok=True)
    cert = ca.issue_cert(STACK_HOSTNAME, "127.0.0.1")
    cert_path, key_path = directory / "fullchain.pem", directory / "privkey.pem"
    cert_path.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    key_path.write_bytes(cert.private_key_pem.bytes())
    key_path.chmod(0o600)
    return cert_path, key_path


def client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def pop3_subjects(
    host: str, port: int, address: str, password: str, tls: ssl.SSLContext, *, implicit: bool
) -> list[str]:
    """Every message's subject as a POP3 client retrieves it (RETR, which marks nothing
    read), over implicit TLS (`implicit`, POP3S) or after STLS on the POP3 port."""
    if implicit:
        client = poplib.POP3_SSL(host, port, timeout=20, context=tls)
    else:
        client = poplib.POP3(host, port, timeout=20)
        client.stls(context=tls)
    try:
        client.user(address)
        client.pass_(password)
        count, _size = client.stat()
        return [
            email.message_from_bytes(b"\r\n".join(client.retr(number)[1]))["Subject"]
            for number in range(1, count + 1)
        ]
    finally:
        client.quit()


@pytest.fixture(scope="module")
def mail_stack(django_db_setup, django_db_blocker, sink, live_server, test_ca):
    """Start the stack once per module, on the test database; stop exactly it afterwards."""
    if os.geteuid() != 0:
        pytest.fail("the mail-flow tests start Postfix and Dovecot and need root")
    from django.db import connection

    # Not under pytest's tmp_path: pytest keeps /tmp/pytest-of-USER at 0700 (and resets it when
    # another pytest starts), and the daemons' users must reach this directory. Not under /tmp
    # at all: OpenDKIM refuses a key below a world-writable directory.
    directory = Path(tempfile.mkdtemp(prefix="postdesk-mailstack-", dir="/var/lib"))
    tls_cert, tls_key = issue(test_ca, directory / "operator-tls")
    with django_db_blocker.unblock():
        # Make sure the database file exists with the views before the daemons open it.
        connection.ensure_connection()
        config = StackConfig(
            dir=directory,
            smtp_port=free_port(),
            submission_port=free_port(),
            submissions_port=free_port(),
            imap_port=free_port(),
            imaps_port=free_port(),
            pop3_port=free_port(),
            pop3s_port=free_port(),
            gate_port=free_port(),
            hostname=STACK_HOSTNAME,
            tls_cert=tls_cert,
            tls_key=tls_key,
            relay=f"127.0.0.1:{sink_port(sink)}",
            panel_url=live_server.url,  # nginx's EAS/MAPI gate asks this panel
            probe_address=PROBE_ADDRESS,
        )
        state = stack.up(config)
    yield state
    stack.down(directory)
    shutil.rmtree(directory, ignore_errors=True)


def sink_port(sink: Sink) -> int:
    return sink.port


class Mail:
    """SMTP in, IMAP out, against the running stack."""

    def __init__(self, state: dict, tls: ssl.SSLContext) -> None:
        self.ports = state["ports"]
        self.tls = tls  # trusts the test CA only

    def send(
        self,
        to: str | list[str],
        *,
        sender: str = "someone@example.org",
        subject: str = "Hello",
        body: str = "Hi!",
        submission_login: tuple[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> dict:
        message = EmailMessage()
        message["From"] = sender
        message["To"] = to if isinstance(to, str) else ", ".join(to)
        message["Subject"] = subject
        for name, value in (headers or {}).items():
            message[name] = value
        message.set_content(body)
        port = self.ports["submission" if submission_login else "smtp"]
        with smtplib.SMTP("127.0.0.1", port, timeout=20) as smtp:
            if submission_login:
                # As a mail client does: STARTTLS first (the port refuses AUTH before it).
                smtp.starttls(context=self.tls)
                smtp.login(*submission_login)
            return smtp.send_message(message)

    def imap(self, address: str, password: str) -> imaplib.IMAP4:
        client = imaplib.IMAP4("127.0.0.1", self.ports["imap"], timeout=20)
        client.starttls(ssl_context=self.tls)
        client.login(address, password)
        return client

    def subjects(self, address: str, password: str, *, expect: int = 1, timeout: float = 20):
        """The inbox's subjects, once it holds at least `expect` messages."""
        deadline = time.monotonic() + timeout
        while True:
            client = self.imap(address, password)
            try:
                status, _data = client.select("INBOX", readonly=True)
                numbers = []
                if status == "OK":  # before the first delivery there is no INBOX yet
                    _typ, data = client.search(None, "ALL")
                    numbers = data[0].split()
                if len(numbers) >= expect or time.monotonic() > deadline:
                    subjects = []
                    for number in numbers:
                        _typ, parts = client.fetch(number, "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
                        header = email.message_from_bytes(parts[0][1])
                        subjects.append(header["Subject"])
                    return subjects
            finally:
                client.logout()
            time.sleep(0.2)


@pytest.fixture
def mail(mail_stack, sink, transactional_db, settings, test_ca):
    sink.clear()
    # The panel's provisioner talks to this stack.
    settings.POSTDESK_DOVEADM_URL = mail_stack["doveadm_url"]
    settings.POSTDESK_DOVEADM_API_KEY = mail_stack["doveadm_api_key"]
    settings.POSTDESK_VMAIL_DIR = mail_stack["vmail"]
    settings.POSTDESK_GATE_KEY = mail_stack["gate_key"]
    settings.POSTDESK_OPENDKIM_DIR = mail_stack["opendkim_dir"]
    # SOGo runs on the PostgreSQL pass (groupware.py): the worker forgets what it caches.
    memcached = mail_stack["ports"].get("memcached")
    settings.POSTDESK_SOGO_MEMCACHED = f"127.0.0.1:{memcached}" if memcached else ""
    return Mail(mail_stack, client_context(test_ca))


def run_worker() -> None:
    """What `postdesk db_worker` does, once, in this process: every task that is due."""
    from django.core.management import call_command

    call_command("db_worker", "--batch", "--no-startup-delay", verbosity=0)

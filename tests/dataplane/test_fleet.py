"""The fleet on one machine (#19 items 2 and 6, docs/scale.md): one MX+proxy and two backends,
each in its own network namespace running Debian's Postfix and Dovecot as `dataplane up
--role … --host …` starts them, all reading the panel's SQLite database. Mail sent to the MX
lands in its mailbox's home and nowhere else; IMAP through the proxy reads it with the
mailbox's password, which the proxy alone checks; a backend that is down defers its own mail
at the MX (never a bounce) while the other's still arrives, and once it is back the queue
flushes with nothing lost.
"""

from __future__ import annotations

import base64
import contextlib
import email
import imaplib
import json
import os
import poplib
import smtplib
import ssl
import sys
import threading
import time
from email.message import EmailMessage
from pathlib import Path

import pytest
import trustme
from django.core.cache import cache
from django.test import Client

from postdesk.dataplane import routing
from postdesk.dataplane.models import Host
from postdesk.mail.hosts import host_add, mailbox_move
from postdesk.mail.services import mailbox_create, mailbox_update
from postdesk.tenancy.access import Actor, Source
from tests.conftest import GOOD_PASSWORD

from .conftest import STACK_HOSTNAME, client_context, pop3_subjects
from .fleet import PORTS, Fleet

pytestmark = [pytest.mark.mailstack, pytest.mark.fleet]

# name, last octet of its address, roles
HOSTS = [("edge", 1, "mx,proxy"), ("b1", 2, "backend"), ("b2", 3, "backend")]


def _register_hosts(operator, network: str) -> None:
    """The hosts as the operator registers them (`host add`); the stacks read them at start,
    the views at every lookup. Again after each test: the test database is emptied."""
    for name, octet, roles in HOSTS:
        if not Host.objects.filter(name=name).exists():
            host_add(
                actor=operator, name=name, address=f"{network}.{octet}", roles=roles.split(",")
            )


@pytest.fixture(scope="module")
def fleet(django_db_setup, django_db_blocker, test_ca: trustme.CA):
    if os.geteuid() != 0:
        pytest.fail("the fleet test makes network namespaces and starts daemons: it needs root")
    from django.db import connection

    made = Fleet(env={}, tls_cert=Path(), tls_key=Path())
    with django_db_blocker.unblock():
        connection.ensure_connection()
        _register_hosts(Actor.operator("fleet-test", source=Source.CLI), made.network)
        database = connection.settings_dict["NAME"]
    # The proxy verifies the homes' certificates against the fleet's CA (routing.py).
    authority = made.root / "fleet-ca.pem"
    test_ca.cert_pem.write_to_path(str(authority))
    authority.chmod(0o644)  # the proxy's login processes read it as dovenull
    made.env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{Path(database).resolve()}",
        "POSTDESK_FLEET_CA_FILE": str(authority),
    }
    addresses = [f"{made.network}.{octet}" for _name, octet, _roles in HOSTS]
    cert = test_ca.issue_cert(STACK_HOSTNAME, "127.0.0.1", *addresses)
    made.tls_cert, made.tls_key = made.root / "fullchain.pem", made.root / "privkey.pem"
    made.tls_cert.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    made.tls_key.write_bytes(cert.private_key_pem.bytes())
    made.tls_key.chmod(0o600)
    try:
        made.network_up(HOSTS)
        for name, _octet, _roles in HOSTS:
            made.up(name)
        yield made
    finally:
        left = made.remove()
        assert not left, left


@pytest.fixture
def mailboxes(fleet, transactional_db, operator, domain):
    """anna lives on b1, ben on b2 (each new mailbox goes to the least loaded backend)."""
    _register_hosts(operator, fleet.network)
    made = {
        name: mailbox_create(actor=operator, domain=domain, username=name, password=GOOD_PASSWORD)
        for name in ("anna", "ben")
    }
    assert {name: box.home.name for name, box in made.items()} == {"anna": "b1", "ben": "b2"}
    return made


def send(fleet: Fleet, to: str, subject: str) -> None:
    message = EmailMessage()
    message["From"] = "someone@example.org"
    message["To"] = to
    message["Subject"] = subject
    message.set_content("Hi!")
    with smtplib.SMTP(fleet.hosts["edge"].address, PORTS["smtp"], timeout=20) as smtp:
        smtp.send_message(message)


def maildir_subjects(fleet: Fleet, host: str, mailbox) -> list[str]:
    home = fleet.hosts[host].vmail / mailbox.address.domain.name / mailbox.storage_id.hex
    return sorted(
        email.message_from_bytes(path.read_bytes())["Subject"]
        for path in (home / "Maildir").glob("*/*")
        if path.parent.name in ("new", "cur")
    )


def wait_for(what, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while True:
        found = what()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def imap_through_proxy(fleet: Fleet, address: str, password: str, tls: ssl.SSLContext) -> list[str]:
    client = imaplib.IMAP4(fleet.hosts["edge"].address, PORTS["imap"], timeout=20)
    try:
        client.starttls(ssl_context=tls)
        client.login(address, password)
        client.select("INBOX", readonly=True)
        _typ, data = client.search(None, "ALL")
        subjects = []
        for number in data[0].split():
            _typ, parts = client.fetch(number, "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            subjects.append(email.message_from_bytes(parts[0][1])["Subject"])
        return subjects
    finally:
        with contextlib.suppress(imaplib.IMAP4.error, OSError):
            client.logout()


def queue(fleet: Fleet) -> list[dict]:
    """The MX's queue, as `postqueue -j` lists it (one JSON object a message)."""
    # In its namespace: Postfix's tools check that inet_interfaces are the machine's own.
    edge = fleet.hosts["edge"]
    out = fleet.exec_in(edge, "postqueue", "-c", str(edge.postfix), "-j")
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_mail_lands_in_its_home_and_imap_reads_it_through_the_proxy(fleet, mailboxes, test_ca):
    anna, ben = mailboxes["anna"], mailboxes["ben"]
    send(fleet, anna.address.email, "For anna")
    send(fleet, ben.address.email, "For ben")
    assert wait_for(lambda: maildir_subjects(fleet, "b1", anna)) == ["For anna"]
    assert wait_for(lambda: maildir_subjects(fleet, "b2", ben)) == ["For ben"]
    # Nowhere else: not on the other backend, not on the MX.
    assert maildir_subjects(fleet, "b2", anna) == []
    assert maildir_subjects(fleet, "b1", ben) == []
    assert not any(fleet.hosts["edge"].vmail.rglob("Maildir"))

    tls = client_context(test_ca)
    assert imap_through_proxy(fleet, anna.address.email, GOOD_PASSWORD, tls) == ["For anna"]
    assert imap_through_proxy(fleet, ben.address.email, GOOD_PASSWORD, tls) == ["For ben"]
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        imap_through_proxy(fleet, anna.address.email, "Not-The-Password-1", tls)
    # Refused at the proxy: its home never saw the attempt, only the good logins.
    b1_log = (fleet.hosts["b1"].dir / "log" / "dovecot.log").read_text()
    assert b1_log.count(f"user=<{anna.address.email}>") == 1  # the good login alone


def test_a_backend_down_defers_only_its_own_mail_and_nothing_is_lost(fleet, mailboxes):
    anna, ben = mailboxes["anna"], mailboxes["ben"]
    fleet.down("b2")
    try:
        send(fleet, ben.address.email, "While b2 was down")  # accepted: 250 from the MX
        send(fleet, anna.address.email, "Meanwhile on b1")
        assert wait_for(lambda: maildir_subjects(fleet, "b1", anna)) == ["Meanwhile on b1"]
        deferred = wait_for(
            lambda: [
                recipient
                for message in queue(fleet)
                if message["queue_name"] == "deferred"
                for recipient in message["recipients"]
            ]
        )
        assert [r["address"] for r in deferred] == [ben.address.email]
        assert "Connection refused" in deferred[0]["delay_reason"]
    finally:
        fleet.up("b2")
    # Postfix retries on its own (queue_run_delay, the backoff times): nothing lost.
    assert wait_for(lambda: maildir_subjects(fleet, "b2", ben), timeout=90) == ["While b2 was down"]
    assert wait_for(lambda: not queue(fleet)), queue(fleet)
    mx_log = (fleet.hosts["edge"].dir / "log" / "postfix.log").read_text()
    assert "status=bounced" not in mx_log


def _imap_login(fleet: Fleet, address: str, tls: ssl.SSLContext) -> imaplib.IMAP4:
    client = imaplib.IMAP4(fleet.hosts["edge"].address, PORTS["imap"], timeout=20)
    client.starttls(ssl_context=tls)
    client.login(address, GOOD_PASSWORD)
    return client


def _folders_and_flags(client: imaplib.IMAP4) -> dict[str, dict[str, str]]:
    """Each folder's messages: subject → flags (\\Recent, which only the session sees, left
    out)."""
    _typ, listing = client.list()
    # `(\HasNoChildren) "." INBOX`: the name last (ours have no space).
    names = sorted(line.decode().rsplit(" ", 1)[1].strip('"') for line in listing)
    seen = {}
    for name in names:
        client.select(f'"{name}"', readonly=True)
        _typ, data = client.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        messages = {}
        for part in data:
            if isinstance(part, tuple):
                flags = imaplib.ParseFlags(part[0])
                subject = email.message_from_bytes(part[1])["Subject"]
                kept = sorted(flag.decode() for flag in flags if flag != b"\\Recent")
                messages[subject] = " ".join(kept)
        seen[name] = messages
    return seen


def _accepted(fleet: Fleet, address: str, subject: str) -> bool:
    """Sent, or False on a 4xx (an smtpd may answer from the route it resolved during the
    lock until the reload at the move's end replaced it)."""
    try:
        send(fleet, address, subject)
    except smtplib.SMTPRecipientsRefused:
        time.sleep(1)
        return False
    return True


def test_a_mailbox_moves_to_another_backend_while_mail_keeps_arriving(
    fleet, mailboxes, operator, test_ca
):
    """#19 items 4 and 6: `mailbox move` under load. Mail sent all along lands exactly once;
    flags and a folder made before the move are on the new home; IMAP through the proxy reads
    from there; the old home's copy is gone once its worker ran the cleanup."""
    anna = mailboxes["anna"]
    address = anna.address.email
    tls = client_context(test_ca)
    for number in (1, 2):
        send(fleet, address, f"Before {number}")
    assert wait_for(lambda: len(maildir_subjects(fleet, "b1", anna)) == 2)
    client = _imap_login(fleet, address, tls)
    try:
        client.create("Projects")
        client.select("INBOX")
        _typ, [first] = client.search(None, 'SUBJECT "Before 1"')
        _typ, [second] = client.search(None, 'SUBJECT "Before 2"')
        client.store(first.decode(), "+FLAGS", "(\\Flagged \\Seen)")
        client.copy(second.decode(), "Projects")
        before = _folders_and_flags(client)
    finally:
        client.logout()
    assert before["Projects"] == {"Before 2": ""}
    assert before["INBOX"]["Before 1"] == "\\Flagged \\Seen"

    sent: list[str] = []
    deferred: list[str] = []  # a 4xx: the sender's MTA keeps it and tries again
    refused: list[str] = []
    stop = threading.Event()

    def keep_sending() -> None:
        number = 0
        while not stop.is_set():
            number += 1
            subject = f"During {number}"
            try:
                send(fleet, address, subject)
                sent.append(subject)
            except smtplib.SMTPRecipientsRefused as error:
                [(code, _text)] = error.recipients.values()
                (deferred if 400 <= code < 500 else refused).append(subject)
            except (smtplib.SMTPException, OSError) as error:
                refused.append(f"{subject}: {error}")
            time.sleep(0.25)

    logins: list[str] = []  # each login's outcome through the proxy while the move runs

    def keep_logging_in() -> None:
        while not stop.is_set():
            try:
                _imap_login(fleet, address, tls).logout()
                logins.append("OK")
            except imaplib.IMAP4.error as error:
                logins.append(str(error))
            time.sleep(1)

    def mx_worker() -> None:
        """The MX's worker, beside the old home's: it drops its Postfix's routes to the old
        home once the mailbox is locked, which the move waits for."""
        while not stop.is_set():
            fleet.worker("edge")
            time.sleep(0.2)

    sender = threading.Thread(target=keep_sending, daemon=True)
    sender.start()
    reader = threading.Thread(target=keep_logging_in, daemon=True)
    reader.start()
    mx = threading.Thread(target=mx_worker, daemon=True)
    mx.start()
    try:
        time.sleep(1)  # mail arriving before the move starts, too
        move = mailbox_move(actor=operator, address=address, to="b2")
        started = time.monotonic()
        out = fleet.worker("b1")  # the old home's worker: the copies, the switch, the cleanup
        moved_in = time.monotonic() - started
        time.sleep(1)  # and after it: to the new home
    finally:
        stop.set()
        sender.join(timeout=30)
        reader.join(timeout=30)
        mx.join(timeout=60)
    move.refresh_from_db()
    anna.refresh_from_db()
    assert (move.state, move.last_error, anna.home.name) == ("done", "", "b2"), out
    # The lock lasts the MX's acknowledgement and the last copy: seconds, not the 35 s a
    # Postfix resolver's cached route would need to expire.
    locked = (move.finished_at - move.locked_at).total_seconds()
    print(f"moved in {moved_in:.1f} s, locked {locked:.1f} s")
    assert locked < 15, f"locked {locked:.1f} s"
    # During the lock the MX deferred the mailbox's mail: queued (the log below), or, when
    # its smtpd had resolved the lock's route, with a 4xx (never a 5xx) to the sender, whose
    # MTA tries again later, as this one does now.
    assert refused == []
    # The proxy refused logins only during the lock (if one came then: it lasts well under
    # the second between two), saying why; before and after, they worked.
    assert logins[0] == logins[-1] == "OK", logins
    # (Dovecot 2.3 words a `nologin` with a reason as [CONTACTADMIN]; the reason says to retry.)
    refusal = f"b'[CONTACTADMIN] {routing.MOVING_REASON}'"
    assert {outcome for outcome in logins if outcome != "OK"} <= {refusal}, logins
    assert len(sent) + len(deferred) > 10, (deferred, sent)
    for subject in deferred:
        assert wait_for(lambda subject=subject: _accepted(fleet, address, subject), timeout=60)
    sent.extend(deferred)

    # Every message exactly once, at the new home: those held at the MX during the lock come
    # at its next queue run (10 s on this stack).
    expected = sorted(["Before 1", "Before 2", *sent])
    assert wait_for(lambda: maildir_subjects(fleet, "b2", anna) == expected, timeout=60), (
        sorted(set(expected) - set(maildir_subjects(fleet, "b2", anna))),
        queue(fleet),
    )
    assert wait_for(lambda: not queue(fleet)), queue(fleet)
    mx_log = (fleet.hosts["edge"].dir / "log" / "postfix.log").read_text()
    assert "status=bounced" not in mx_log
    # (Whether a message met the lock, held back at the MX, is chance: it may last less than
    # the quarter second between two. Every message once at the new home is the proof.)

    # Through the proxy, from the new home: flags and the folder kept.
    client = _imap_login(fleet, address, tls)
    try:
        after = _folders_and_flags(client)
    finally:
        client.logout()
    assert after["Projects"] == before["Projects"]
    assert after["INBOX"]["Before 1"] == "\\Flagged \\Seen"
    assert sorted(after["INBOX"]) == expected
    b2_log = fleet.hosts["b2"].dir / "log" / "dovecot.log"
    # (Dovecot's log process writes the line a moment after the session.)
    assert wait_for(lambda: f"Login: user=<{address}>" in b2_log.read_text()), b2_log.read_text()[
        -3000:
    ]
    # The old home's copy is gone: its worker ran the cleanup task after the switch.
    old_copy = fleet.hosts["b1"].vmail / anna.address.domain.name / anna.storage_id.hex
    assert not old_copy.exists(), out
    assert (fleet.hosts["b2"].vmail / anna.address.domain.name / anna.storage_id.hex).exists()


def test_pop3_logins_at_the_proxy_reach_the_home_and_a_wrong_password_stops_there(
    fleet, mailboxes, test_ca
):
    """#19 item 2: the proxy forwards POP3 logins as it does IMAP's, to the home's POP3 port
    (STLS and POP3S alike), the password checked once, at the proxy."""
    ben = mailboxes["ben"]
    address = ben.address.email
    send(fleet, address, "Over POP3")
    assert wait_for(lambda: maildir_subjects(fleet, "b2", ben)) == ["Over POP3"]
    tls = client_context(test_ca)
    edge = fleet.hosts["edge"].address
    for port, implicit in ((PORTS["pop3"], False), (PORTS["pop3s"], True)):
        found = pop3_subjects(edge, port, address, GOOD_PASSWORD, tls, implicit=implicit)
        assert found == ["Over POP3"]
    with pytest.raises(poplib.error_proto, match="Authentication failed"):
        pop3_subjects(edge, PORTS["pop3s"], address, "Not-The-Password-1", tls, implicit=True)
    # No password in clear: before STLS the proxy does not take one.
    client = poplib.POP3(edge, PORTS["pop3"], timeout=20)
    try:
        with pytest.raises(poplib.error_proto, match="Plaintext authentication disallowed"):
            client.user(address)
    finally:
        client.quit()
    # The home saw the two good logins, over POP3, and nothing of the wrong one.
    b2_log = fleet.hosts["b2"].dir / "log" / "dovecot.log"

    def pop3_logins() -> list[str]:
        # `pop3-login: Info: Login: user=<…>, method=PLAIN, rip=…` (Dovecot's log line).
        lines = b2_log.read_text().splitlines()
        return [line for line in lines if "pop3-login:" in line and f"user=<{address}>" in line]

    # (Under load Dovecot's log process may write a line well after the session.)
    assert wait_for(lambda: len(pop3_logins()) == 2, timeout=60), b2_log.read_text()[-3000:]
    assert all("Login: " in line for line in pop3_logins()), pop3_logins()


# What SOGo does on a host with the proxy role (its `SOGoIMAPServer`, docs/dataplane.md): IMAP
# with STARTTLS to the Dovecot on 127.0.0.1, not checking the loopback certificate.
SOGO_LIKE_IMAP = """
import imaplib, ssl, sys
client = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]))
client.starttls(ssl_context=ssl._create_unverified_context())
client.login(sys.argv[2], sys.argv[3])
print(client.select("INBOX", readonly=True)[1][0].decode())
client.logout()
"""


def _highest_modseq(fleet: Fleet, address: str, folder: str, tls: ssl.SSLContext):
    """The folder's HIGHESTMODSEQ as Dovecot answers SELECT, None while it tracks no change."""
    client = _imap_login(fleet, address, tls)
    try:
        client.select(folder, readonly=True)
        return client.response("HIGHESTMODSEQ")[1][0]
    finally:
        client.logout()


def test_the_gate_and_sogos_imap_reach_the_mailboxs_home(
    fleet, mailboxes, operator, settings, test_ca
):
    """#19 item 2: before a phone's command, the panel's gate has the Dovecot of the mailbox's
    home (b2) track its folders' changes, through b2's doveadm HTTP API with the fleet's key;
    SOGo's IMAP, at the proxy host's own Dovecot, is forwarded to the home too."""
    ben = mailboxes["ben"]
    address = ben.address.email
    mailbox_update(actor=operator, mailbox=ben, eas_enabled=True)
    tls = client_context(test_ca)
    client = _imap_login(fleet, address, tls)
    try:
        assert client.create("Later")[0] == "OK"  # a folder made after the mailbox, on b2
    finally:
        client.logout()
    assert _highest_modseq(fleet, address, "Later", tls) is None

    # The panel (this process) is no fleet host: its own doveadm URL names a port nothing
    # listens on here, so only the home can have answered.
    settings.POSTDESK_DOVEADM_URL = f"http://127.0.0.1:{PORTS['doveadm']}/doveadm/v1"
    settings.POSTDESK_DOVEADM_API_KEY = routing.doveadm_api_key()
    settings.POSTDESK_GATE_KEY = "fleet-gate-key"
    cache.clear()
    token = base64.b64encode(f"{address}:{GOOD_PASSWORD}".encode()).decode()
    answer = Client().get(
        "/dataplane/gate/eas",
        HTTP_X_POSTDESK_GATE_KEY="fleet-gate-key",
        HTTP_AUTHORIZATION=f"Basic {token}",
        HTTP_X_ORIGINAL_METHOD="POST",
        HTTP_X_ORIGINAL_URI="/Microsoft-Server-ActiveSync?Cmd=FolderSync&User=ben&DeviceId=F1",
    )
    assert answer.status_code == 204
    assert _highest_modseq(fleet, address, "Later", tls) is not None

    send(fleet, address, "For SOGo")
    assert wait_for(lambda: maildir_subjects(fleet, "b2", ben)) == ["For SOGo"]
    edge = fleet.hosts["edge"]
    out = fleet.exec_in(
        edge, sys.executable, "-c", SOGO_LIKE_IMAP, str(PORTS["imap"]), address, GOOD_PASSWORD
    )
    assert out.strip() == "1"  # the Inbox at the home, with its one message


def test_the_proxy_refuses_a_home_whose_certificate_the_fleets_ca_did_not_sign(
    fleet, mailboxes, test_ca
):
    """With POSTDESK_FLEET_CA_FILE (the fleet fixture sets it), the proxy verifies the home's
    certificate (`starttls=yes`, the CA as OpenSSL's store): every login above went through it;
    a backend presenting another CA's certificate gets no login, and no master password."""
    ben = mailboxes["ben"]
    address = ben.address.email
    tls = client_context(test_ca)
    edge_log = fleet.hosts["edge"].dir / "log" / "dovecot.log"
    try:
        assert imap_through_proxy(fleet, address, GOOD_PASSWORD, tls) == []
    except imaplib.IMAP4.error as error:
        raise AssertionError(edge_log.read_text()[-3000:]) from error
    b2 = fleet.hosts["b2"]
    stranger = trustme.CA()
    issued = stranger.issue_cert(STACK_HOSTNAME, b2.address)
    cert, key = fleet.root / "stranger.pem", fleet.root / "stranger-key.pem"
    cert.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    key.write_bytes(issued.private_key_pem.bytes())
    key.chmod(0o600)
    fleet.down("b2")
    fleet.up("b2", tls=(cert, key))
    try:
        # b2 is up and answers TLS, with the stranger's certificate...
        direct = imaplib.IMAP4(b2.address, PORTS["imap"], timeout=20)
        try:
            trusting_the_stranger = ssl.create_default_context()
            stranger.configure_trust(trusting_the_stranger)
            assert direct.starttls(ssl_context=trusting_the_stranger)[0] == "OK"
        finally:
            direct.logout()
        # ...which the proxy refuses: no login forwarded.
        with pytest.raises(imaplib.IMAP4.error, match="UNAVAILABLE"):
            imap_through_proxy(fleet, address, GOOD_PASSWORD, tls)
        log = edge_log.read_text
        assert wait_for(lambda: "invalid SSL certificate" in log(), timeout=60), log()[-3000:]
        b2_log = (b2.dir / "log" / "dovecot.log").read_text()
        assert f"Login: user=<{address}>" not in b2_log.split("starting up")[-1]
    finally:
        fleet.down("b2")
        fleet.up("b2")
    assert imap_through_proxy(fleet, address, GOOD_PASSWORD, tls) == []

"""SOGo behind the gate, on the real stack: an ActiveSync client (WBXML over HTTPS) through
the gate's nginx, users read from the contract's view with no sync step, and the ActiveSync
switch refused by SOGo itself when the gate is bypassed.

SOGo keeps its own tables only in PostgreSQL or MySQL (groupware.py): on the SQLite pass the
stack runs without it, and these tests skip saying so; on PostgreSQL they must run.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

import caldav
import pytest
from django.db import connection
from playwright.sync_api import expect
from pyactivesync._wbxml import WBXMLReader, WBXMLWriter, find, find_all, text_of, wtag
from pymemcache.client.base import Client as MemcacheClient

from postdesk.dataplane import groupware
from postdesk.mail.models import Mailbox
from postdesk.mail.services import (
    domain_dav_set,
    mailbox_create,
    mailbox_delete,
    mailbox_set_password,
    mailbox_update,
)
from postdesk.workflows.clients import client_suspend, client_unsuspend
from postdesk.workflows.usage import collect_usage
from tests.conftest import GOOD_PASSWORD
from tests.dataplane.conftest import run_worker

pytestmark = pytest.mark.mailstack

EAS_VERSION = "14.1"  # SOGo 5.8 speaks 2.5 to 14.1
ME = "marie@example.com"

# MS-ASCMD FolderSync folder types.
INBOX, TASKS, CALENDAR, CONTACTS = "2", "7", "8", "9"
# An event's subject: MS-ASWBXML code page 4 (Calendar), token 0x26; pyactivesync's codec
# has no names for that page and reads its tags as "page4.0xNN".
CALENDAR_SUBJECT = "page4.0x26"


@pytest.fixture
def sogo(mail, mail_stack):
    """The running stack's SOGo; on SQLite the stack runs without it."""
    if connection.vendor != "postgresql":
        pytest.skip("SOGo keeps its tables only in PostgreSQL: the groupware runs on the PG pass")
    assert mail_stack["groupware"] == {"running": True, "reason": ""}
    # Each test's database starts empty without the services' tasks having run: what SOGo
    # cached of an earlier test's mailbox of the same name must go too.
    cache = MemcacheClient(("127.0.0.1", mail_stack["ports"]["memcached"]))
    cache.flush_all(noreply=False)
    cache.close()
    return mail


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


class ActiveSync:
    """A phone: EAS requests over HTTPS (the test CA verified), bodies in WBXML."""

    def __init__(self, mail, address: str, password: str, *, port: int, scheme: str) -> None:
        self.mail = mail
        self.address = address
        self.password = password
        self.base = f"{scheme}://127.0.0.1:{port}"
        self.path = (
            "/Microsoft-Server-ActiveSync"
            if scheme == "https"
            else ("/SOGo/Microsoft-Server-ActiveSync")
        )

    def request(self, method: str, command: str | None = None, body: bytes | None = None):
        query = ""
        if command:
            query = "?" + urllib.parse.urlencode(
                {
                    "Cmd": command,
                    "User": self.address,
                    "DeviceId": "pytest0001",
                    "DeviceType": "SmartPhone",
                }
            )
        request = urllib.request.Request(  # noqa: S310 - our https gate or loopback SOGo
            self.base + self.path + query, data=body, method=method
        )
        token = base64.b64encode(f"{self.address}:{self.password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
        request.add_header("MS-ASProtocolVersion", EAS_VERSION)
        if body is not None:
            request.add_header("Content-Type", "application/vnd.ms-sync.wbxml")
        context = self.mail.tls if self.base.startswith("https") else None
        try:
            with urllib.request.urlopen(request, timeout=30, context=context) as response:  # noqa: S310
                return Reply(response.status, dict(response.headers), response.read())
        except urllib.error.HTTPError as error:
            return Reply(error.code, dict(error.headers), error.read())

    def command(self, name: str, document: WBXMLWriter):
        reply = self.request("POST", name, document.render())
        assert reply.status == 200, f"{name}: {reply.status}"
        return WBXMLReader(reply.body).parse() if reply.body else []

    def folders(self) -> dict[str, tuple[str, str]]:
        """FolderSync from scratch: type → (display name, server id), the first of each type."""
        document = WBXMLWriter()
        document.tag(
            "FolderHierarchy", "FolderSync", [wtag("FolderHierarchy", "SyncKey", text="0")]
        )
        found: dict[str, tuple[str, str]] = {}
        for _tag, _text, children in find_all(
            self.command("FolderSync", document), "FolderHierarchy.Add"
        ):
            kind = text_of(find(children, "FolderHierarchy.Type"))
            found.setdefault(
                kind,
                (
                    text_of(find(children, "FolderHierarchy.DisplayName")),
                    text_of(find(children, "FolderHierarchy.ServerId")),
                ),
            )
        return found

    def folder_ids(self) -> dict[str, str]:
        """FolderSync from scratch: display name → server id of every folder."""
        document = WBXMLWriter()
        document.tag(
            "FolderHierarchy", "FolderSync", [wtag("FolderHierarchy", "SyncKey", text="0")]
        )
        return {
            text_of(find(children, "FolderHierarchy.DisplayName")): text_of(
                find(children, "FolderHierarchy.ServerId")
            )
            for _tag, _text, children in find_all(
                self.command("FolderSync", document), "FolderHierarchy.Add"
            )
        }

    def sync(
        self, collection: str, key: str, subject: str = "Email.Subject"
    ) -> tuple[str, list[str]]:
        """One Sync of a collection: the next sync key and the subjects (`subject`: the tag
        that holds them in this kind of item) of the items added."""
        options = []
        if key != "0":  # MS-ASCMD: the first Sync of a collection only fetches a key
            options = [wtag("AirSync", "GetChanges"), wtag("AirSync", "WindowSize", text="50")]
        document = WBXMLWriter()
        document.tag(
            "AirSync",
            "Sync",
            [
                wtag(
                    "AirSync",
                    "Collections",
                    [
                        wtag(
                            "AirSync",
                            "Collection",
                            [
                                wtag("AirSync", "SyncKey", text=key),
                                wtag("AirSync", "CollectionId", text=collection),
                                *options,
                            ],
                        )
                    ],
                )
            ],
        )
        nodes = self.command("Sync", document)
        if not nodes:  # an empty answer: nothing changed since `key`
            return key, []
        subjects = [
            text_of(find(children, subject))
            for _tag, _text, children in find_all(nodes, "AirSync.Add")
        ]
        return text_of(find(nodes, "AirSync.SyncKey")), subjects


def phone(mail, address: str = ME, password: str = GOOD_PASSWORD) -> ActiveSync:
    """A client going through the gate, as every phone does."""
    return ActiveSync(mail, address, password, port=mail.ports["gate"], scheme="https")


def bypassing_the_gate(mail, address: str = ME, password: str = GOOD_PASSWORD) -> ActiveSync:
    """A client talking to SOGo's own port (loopback), as if the gate were not there."""
    return ActiveSync(mail, address, password, port=mail.ports["sogo"], scheme="http")


def test_options_through_the_gate_announce_the_protocol_versions(sogo, operator, domain):
    mailbox_create(
        actor=operator, domain=domain, username="marie", password=GOOD_PASSWORD, eas_enabled=True
    )
    mailbox_create(actor=operator, domain=domain, username="paul", password=GOOD_PASSWORD)

    allowed = phone(sogo).request("OPTIONS")
    assert allowed.status == 200
    assert EAS_VERSION in allowed.headers["MS-ASProtocolVersions"].split(",")
    assert "FolderSync" in allowed.headers["MS-ASProtocolCommands"]

    assert phone(sogo, "paul@example.com").request("OPTIONS").status == 403  # EAS off
    wrong = phone(sogo, password="Wrong-Password-9!").request("OPTIONS")
    assert wrong.status == 401
    assert "MS-ASProtocolVersions" not in wrong.headers


def test_sogos_own_activesync_path_is_closed_at_the_gate(sogo, operator, domain):
    """/SOGo/Microsoft-Server-ActiveSync through the gate would reach SOGo past the EAS gate
    (its switch, its wrong-password limits, its request rate): only the gate's path serves
    phones, whatever the case or the slashes."""
    mailbox_create(
        actor=operator, domain=domain, username="marie", password=GOOD_PASSWORD, eas_enabled=True
    )
    device = phone(sogo)
    for path in (
        "/SOGo/Microsoft-Server-ActiveSync",
        "/SOGo/microsoft-server-activesync",
        "//SOGo//Microsoft-Server-ActiveSync",
    ):
        device.path = path
        assert device.request("OPTIONS").status == 404, path


def test_folder_sync_lists_inbox_calendar_contacts_and_tasks(sogo, operator, domain):
    mailbox_create(
        actor=operator, domain=domain, username="marie", password=GOOD_PASSWORD, eas_enabled=True
    )

    folders = phone(sogo).folders()

    assert folders[INBOX][0] == "INBOX"
    assert {CALENDAR, CONTACTS, TASKS} <= folders.keys()


def test_a_sync_of_the_inbox_returns_a_message_just_delivered(sogo, operator, domain):
    """A mailbox only a phone reads: no IMAP client ever turned Dovecot's change tracking
    on, the worker did when the mailbox was created (provisioner.track_changes)."""
    mailbox_create(
        actor=operator, domain=domain, username="marie", password=GOOD_PASSWORD, eas_enabled=True
    )
    run_worker()
    sogo.send(ME, subject="Before the phone")
    # Delivered (read over IMAP without CONDSTORE: this turns no tracking on).
    assert sogo.subjects(ME, GOOD_PASSWORD) == ["Before the phone"]
    device = phone(sogo)
    inbox = device.folders()[INBOX][1]
    key, _ = device.sync(inbox, "0")
    key, first = device.sync(inbox, key)
    assert first == ["Before the phone"]

    sogo.send(ME, subject="Delivered over SMTP")
    assert len(sogo.subjects(ME, GOOD_PASSWORD, expect=2)) == 2
    deadline = time.monotonic() + 20
    added: list[str] = []
    while not added and time.monotonic() < deadline:
        key, added = device.sync(inbox, key)
    assert added == ["Delivered over SMTP"]


def test_a_new_mailbox_logs_in_to_sogo_at_once_and_a_deleted_one_cannot(sogo, operator, domain):
    paul = bypassing_the_gate(sogo, "paul@example.com")
    assert paul.request("OPTIONS").status == 401  # no such mailbox yet
    mailbox_create(actor=operator, domain=domain, username="paul", password=GOOD_PASSWORD)
    assert paul.request("OPTIONS").status == 200  # at once: SOGo reads the view

    anna = mailbox_create(actor=operator, domain=domain, username="anna", password=GOOD_PASSWORD)
    mailbox_delete(actor=operator, mailbox=anna)
    assert bypassing_the_gate(sogo, "anna@example.com").request("OPTIONS").status == 401


def test_activesync_off_is_refused_by_sogo_itself(sogo, operator, domain):
    """Gate or no gate: SOGo's module constraint reads the view's `activesync` column."""
    mailbox = mailbox_create(
        actor=operator, domain=domain, username="marie", password=GOOD_PASSWORD, eas_enabled=True
    )
    document = WBXMLWriter()
    document.tag("FolderHierarchy", "FolderSync", [wtag("FolderHierarchy", "SyncKey", text="0")])
    direct = bypassing_the_gate(sogo)
    assert direct.request("POST", "FolderSync", document.render()).status == 200

    mailbox_update(actor=operator, mailbox=mailbox, eas_enabled=False)
    run_worker()  # SOGo forgets what it cached of the mailbox (its access to ActiveSync)

    assert direct.request("POST", "FolderSync", document.render()).status == 403
    assert phone(sogo).request("POST", "FolderSync", document.render()).status == 403


def test_sogo_takes_its_users_from_the_view(sogo):
    """The contract SOGo reads: c_uid/c_name/c_password/c_cn/mail and the ActiveSync switch."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {groupware.USERS_VIEW} WHERE 1 = 0")  # noqa: S608
        columns = [column.name for column in cursor.description]
    assert columns == ["c_uid", "c_name", "c_password", "c_cn", "mail", "domain", "activesync"]


def test_only_the_current_password_works_in_sogo_after_a_change(sogo, operator, domain):
    mailbox = mailbox_create(
        actor=operator, domain=domain, username="marie", password=GOOD_PASSWORD
    )
    assert bypassing_the_gate(sogo).request("OPTIONS").status == 200  # SOGo caches this check

    mailbox_set_password(actor=operator, mailbox=mailbox, password="Other-Secret-42xy")
    run_worker()

    assert bypassing_the_gate(sogo).request("OPTIONS").status == 401
    assert bypassing_the_gate(sogo, password="Other-Secret-42xy").request("OPTIONS").status == 200


def test_a_deleted_mailbox_that_logged_in_before_cannot_log_in_again(sogo, operator, domain):
    mailbox = mailbox_create(
        actor=operator, domain=domain, username="marie", password=GOOD_PASSWORD
    )
    assert bypassing_the_gate(sogo).request("OPTIONS").status == 200

    mailbox_delete(actor=operator, mailbox=mailbox)
    run_worker()

    assert bypassing_the_gate(sogo).request("OPTIONS").status == 401


class Webmail:
    """A browser's requests to SOGo's webmail on its own port: the JSON login SOGo's page
    posts, then the session cookie it sets."""

    def __init__(self, mail) -> None:
        self.base = f"http://127.0.0.1:{mail.ports['sogo']}/SOGo"
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(), NoRedirect()
        )

    def login(self, address: str, password: str) -> int:
        request = urllib.request.Request(  # noqa: S310 - loopback SOGo
            f"{self.base}/connect",
            data=json.dumps({"userName": address, "password": password}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        return self._status(request)

    def in_session(self, address: str) -> bool:
        """Whether SOGo serves the mailbox's mail page (its Mailer UI) to this browser; without
        a valid session it answers with its login page instead (also 200)."""
        url = f"{self.base}/so/{urllib.parse.quote(address)}/Mail/view"
        with self.opener.open(url, timeout=30) as response:
            return b"MailerUI" in response.read()

    def _status(self, request: urllib.request.Request) -> int:
        try:
            with self.opener.open(request, timeout=30) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # the redirect itself is the answer


def dav_status(mail, address: str, password: str) -> int:
    """PROPFIND of the mailbox's CalDAV/CardDAV home, on SOGo's own port."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{mail.ports['sogo']}/SOGo/dav/{urllib.parse.quote(address)}/",
        method="PROPFIND",
        headers={
            "Depth": "0",
            "Authorization": "Basic " + base64.b64encode(f"{address}:{password}".encode()).decode(),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_a_password_change_ends_webmail_activesync_and_dav_at_once(sogo, operator, domain):
    mailbox = mailbox_create(
        actor=operator, domain=domain, username="marie", password=GOOD_PASSWORD, eas_enabled=True
    )
    browser = Webmail(sogo)
    assert browser.login(ME, GOOD_PASSWORD) == 200
    assert browser.in_session(ME)
    assert dav_status(sogo, ME, GOOD_PASSWORD) == 207
    assert phone(sogo).request("OPTIONS").status == 200

    new = "Other-Secret-42xy"
    mailbox_set_password(actor=operator, mailbox=mailbox, password=new)
    run_worker()

    assert not browser.in_session(ME)  # the open session is over
    assert Webmail(sogo).login(ME, GOOD_PASSWORD) == 403
    assert dav_status(sogo, ME, GOOD_PASSWORD) == 401
    assert phone(sogo).request("OPTIONS").status == 401
    assert Webmail(sogo).login(ME, new) == 200
    assert dav_status(sogo, ME, new) == 207
    assert phone(sogo, password=new).request("OPTIONS").status == 200


def test_a_suspended_clients_mailboxes_cannot_log_in_to_sogo(sogo, operator, domain, client_a):
    mailbox_create(
        actor=operator, domain=domain, username="marie", password=GOOD_PASSWORD, eas_enabled=True
    )
    assert Webmail(sogo).login(ME, GOOD_PASSWORD) == 200  # SOGo caches the check
    assert dav_status(sogo, ME, GOOD_PASSWORD) == 207
    assert bypassing_the_gate(sogo).request("OPTIONS").status == 200

    client_suspend(actor=operator, client=client_a)
    run_worker()  # SOGo forgets what it cached of the client's mailboxes

    assert Webmail(sogo).login(ME, GOOD_PASSWORD) == 403
    assert dav_status(sogo, ME, GOOD_PASSWORD) == 401
    assert bypassing_the_gate(sogo).request("OPTIONS").status == 401

    client_unsuspend(actor=operator, client=client_a)
    assert Webmail(sogo).login(ME, GOOD_PASSWORD) == 200


def sogo_rows(address: str) -> dict[str, int]:
    """How many rows SOGo keeps of a user: its folders (calendars, address books), their
    content, and its preferences."""
    with connection.cursor() as cursor:
        counts = {}
        for name, sql in {
            "folders": "SELECT count(*) FROM sogo_folder_info WHERE c_path2 = %s",
            "content": "SELECT count(*) FROM sogo_store WHERE c_folder_id IN"
            " (SELECT c_folder_id FROM sogo_folder_info WHERE c_path2 = %s)",
            "profile": "SELECT count(*) FROM sogo_user_profile WHERE c_uid = %s",
        }.items():
            cursor.execute(sql, [address])
            counts[name] = cursor.fetchone()[0]
    return counts


def put_event(mail, address: str, password: str) -> int:
    """A CalDAV PUT of one event in the mailbox's personal calendar (SOGo's own port)."""
    event = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//postdesk//test//EN\r\nBEGIN:VEVENT\r\n"
        "UID:pytest-event-1\r\nDTSTAMP:20260101T090000Z\r\nDTSTART:20260102T090000Z\r\n"
        "DTEND:20260102T100000Z\r\nSUMMARY:Planning\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    request = urllib.request.Request(
        f"http://127.0.0.1:{mail.ports['sogo']}/SOGo/dav/{urllib.parse.quote(address)}"
        "/Calendar/personal/pytest-event-1.ics",
        data=event.encode(),
        method="PUT",
        headers={
            "Content-Type": "text/calendar; charset=utf-8",
            "Authorization": "Basic " + base64.b64encode(f"{address}:{password}".encode()).decode(),
        },
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        return response.status


def test_a_deleted_mailboxs_calendars_contacts_and_preferences_go_with_its_mail(
    sogo, operator, domain
):
    mailbox = mailbox_create(
        actor=operator, domain=domain, username="marie", password=GOOD_PASSWORD
    )
    assert Webmail(sogo).login(ME, GOOD_PASSWORD) == 200
    assert put_event(sogo, ME, GOOD_PASSWORD) == 201
    kept = sogo_rows(ME)
    assert kept["folders"] >= 1 and kept["content"] == 1 and kept["profile"] == 1

    mailbox_delete(actor=operator, mailbox=mailbox)
    run_worker()  # the task that removes its messages

    assert sogo_rows(ME) == {"folders": 0, "content": 0, "profile": 0}


def test_webmail_and_dav_follow_the_mailboxs_own_access_not_activesync(sogo, operator, domain):
    """On by default, whatever the ActiveSync switch says; straight at SOGo's port."""
    mailbox_create(actor=operator, domain=domain, username="marie", password=GOOD_PASSWORD)
    browser = Webmail(sogo)
    assert browser.login(ME, GOOD_PASSWORD) == 200
    assert browser.in_session(ME)
    assert dav_status(sogo, ME, GOOD_PASSWORD) == 207
    assert bypassing_the_gate(sogo).request("POST", "FolderSync", b"").status == 403

    assert Webmail(sogo).login(ME, "Wrong-Password-9!") == 403
    assert dav_status(sogo, ME, "Wrong-Password-9!") == 401


def test_a_login_in_another_case_works_in_sogo_as_in_imap(sogo, operator, domain):
    mailbox = mailbox_create(
        actor=operator, domain=domain, username="marie", password=GOOD_PASSWORD, eas_enabled=True
    )
    typed = "Marie@Example.COM"
    assert sogo.imap(typed, GOOD_PASSWORD).logout()[0] == "BYE"  # Dovecot: %Lu
    browser = Webmail(sogo)
    assert browser.login(typed, GOOD_PASSWORD) == 200
    assert browser.in_session(ME)
    assert dav_status(sogo, typed, GOOD_PASSWORD) == 207
    assert phone(sogo, typed).folders()[INBOX][0] == "INBOX"

    mailbox_set_password(actor=operator, mailbox=mailbox, password="Other-Secret-42xy")
    run_worker()  # SOGo forgets its check of every case the login was typed in

    assert not browser.in_session(ME)
    assert dav_status(sogo, typed, GOOD_PASSWORD) == 401
    assert phone(sogo, typed).request("OPTIONS").status == 401


# The event as a calendar app sends it (caldav 1.x's builder does not know today's icalendar).
EVENT = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Postdesk tests//EN\r\n"
    "BEGIN:VEVENT\r\nUID:pytest-event-2\r\nDTSTAMP:20260101T000000Z\r\n"
    "DTSTART:20260102T090000Z\r\nDTEND:20260102T100000Z\r\nSUMMARY:Planning\r\n"
    "END:VEVENT\r\nEND:VCALENDAR\r\n"
)
VCARD = (
    "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:pytest-contact-1\r\nFN:Jeanne Martin\r\n"
    "N:Martin;Jeanne;;;\r\nEMAIL;TYPE=work:jeanne.martin@example.org\r\nEND:VCARD\r\n"
)


def test_caldav_and_carddav_through_the_gate_and_the_event_in_activesync(
    sogo, operator, domain, test_ca, tmp_path
):
    """The `caldav` client (PyPI) over HTTPS through the gate: an event in the personal
    calendar and a contact in the personal address book (a vCard PUT with the same client:
    it speaks CalDAV only), each read back; then a phone's Sync of its Calendar shows the
    event."""
    mailbox_create(
        actor=operator, domain=domain, username="marie", password=GOOD_PASSWORD, eas_enabled=True
    )
    authority = tmp_path / "ca.pem"
    test_ca.cert_pem.write_to_path(str(authority))
    base = f"https://127.0.0.1:{sogo.ports['gate']}/SOGo/dav/"
    with caldav.DAVClient(
        url=base, username=ME, password=GOOD_PASSWORD, ssl_verify_cert=str(authority)
    ) as client:
        calendar = client.principal().calendars()[0]  # the personal one SOGo makes
        calendar.save_event(EVENT)
        assert "SUMMARY:Planning" in calendar.event_by_uid("pytest-event-2").data

        contact = f"{base}{ME}/Contacts/personal/pytest-contact-1.vcf"
        saved = client.put(contact, VCARD, {"Content-Type": "text/vcard; charset=utf-8"})
        assert saved.status == 201
        assert "FN:Jeanne Martin" in client.request(contact).raw

    device = phone(sogo)
    calendar_id = device.folders()[CALENDAR][1]
    key, _ = device.sync(calendar_id, "0")
    _key, added = device.sync(calendar_id, key, subject=CALENDAR_SUBJECT)
    assert added == ["Planning"]


def append(mail, folder: str, subject: str) -> None:
    """A message put in a folder over IMAP, as a mail program moving or saving one does
    (without CONDSTORE: a plain client turns no change tracking on)."""
    client = mail.imap(ME, GOOD_PASSWORD)
    try:
        status, _ = client.append(folder, None, None, f"Subject: {subject}\r\n\r\nHi\r\n".encode())
        assert status == "OK"
    finally:
        client.logout()


def test_a_folder_created_later_gets_its_new_mail_on_a_phones_sync(sogo, operator, domain):
    """Dovecot tracks a folder's changes only once a client used a modseq there; the gate
    turns it on in every folder before SOGo answers the phone (provisioner.
    track_changes_everywhere), so a folder made after the mailbox syncs like the Inbox."""
    mailbox_create(
        actor=operator, domain=domain, username="marie", password=GOOD_PASSWORD, eas_enabled=True
    )
    device = phone(sogo)
    assert "Projects" not in device.folder_ids()

    client = sogo.imap(ME, GOOD_PASSWORD)
    assert client.create("Projects")[0] == "OK"  # by a mail program, after the mailbox
    client.logout()
    append(sogo, "Projects", "First in Projects")
    projects = device.folder_ids()["Projects"]
    key, _ = device.sync(projects, "0")
    key, first = device.sync(projects, key)
    assert first == ["First in Projects"]

    append(sogo, "Projects", "Second in Projects")
    key, added = device.sync(projects, key)
    assert added == ["Second in Projects"]


def test_a_domain_without_calendar_and_contact_apps_keeps_webmail_and_activesync(
    sogo, operator, domain, test_ca, tmp_path
):
    """The customer turns CalDAV/CardDAV off for the domain: the `caldav` client through the
    gate is refused for the calendar and the address book, while the webmail and a phone's
    ActiveSync (its calendar included) go on; turned on again, the client works at once."""
    mailbox_create(
        actor=operator, domain=domain, username="marie", password=GOOD_PASSWORD, eas_enabled=True
    )
    authority = tmp_path / "ca.pem"
    test_ca.cert_pem.write_to_path(str(authority))
    base = f"https://127.0.0.1:{sogo.ports['gate']}/SOGo/dav/"
    # SOGo's own tables outlive each test's database: a card no other test saved.
    card = VCARD.replace("pytest-contact-1", "pytest-contact-3")
    contact = f"{base}{ME}/Contacts/personal/pytest-contact-3.vcf"

    def calendar_app() -> caldav.DAVClient:
        return caldav.DAVClient(
            url=base, username=ME, password=GOOD_PASSWORD, ssl_verify_cert=str(authority)
        )

    domain_dav_set(actor=operator, domain=domain, enabled=False)

    with calendar_app() as client, pytest.raises(caldav.lib.error.AuthorizationError):
        client.principal()
    with calendar_app() as client, pytest.raises(caldav.lib.error.AuthorizationError):
        client.put(contact, card, {"Content-Type": "text/vcard; charset=utf-8"})  # 403
    browser = Webmail(sogo)
    assert browser.login(ME, GOOD_PASSWORD) == 200
    assert browser.in_session(ME)
    assert {INBOX, CALENDAR, CONTACTS} <= phone(sogo).folders().keys()

    domain_dav_set(actor=operator, domain=domain, enabled=True)

    with calendar_app() as client:
        calendar = client.principal().calendars()[0]
        calendar.save_event(EVENT)
        assert "SUMMARY:Planning" in calendar.event_by_uid("pytest-event-2").data
        assert (
            client.put(contact, card, {"Content-Type": "text/vcard; charset=utf-8"}).status == 201
        )


def used_bytes(address: str) -> int:
    """The mailbox's disk use as the usage collection (cron) just measured it."""
    collect_usage()
    local_part = address.split("@")[0]
    return Mailbox.objects.get(local_part=local_part).used_bytes


def test_webmail_in_chromium_frees_space_and_refuses_the_old_password(
    sogo, operator, domain, chromium
):
    """What the guide tells a customer: log in to the webmail through the gate with the
    mailbox's password, delete a message and empty the trash; the next usage collection
    measures less. After a password change the page asks to log in again and the old
    password is refused. Debian's Chromium through Playwright, marked `mailstack` and not
    `browser`: SOGo runs on the PostgreSQL pass, which leaves the `browser` tests out."""
    mailbox = mailbox_create(
        actor=operator, domain=domain, username="marie", password=GOOD_PASSWORD
    )
    run_worker()
    sogo.send(ME, subject="Quarterly report", body="figures " * 4000)  # about 32 KB
    assert sogo.subjects(ME, GOOD_PASSWORD) == ["Quarterly report"]
    before = used_bytes(ME)
    assert before > 30_000

    # The test CA is not in Chromium's store; every request still goes through the gate.
    context = chromium.new_context(ignore_https_errors=True, locale="en-US")
    page = context.new_page()
    page.set_default_timeout(20_000)
    webmail = f"https://127.0.0.1:{sogo.ports['gate']}/SOGo/"
    try:
        log_in(page, webmail, GOOD_PASSWORD)
        message = page.get_by_role("button", name="Quarterly report")
        expect(message).to_be_visible()
        message.click()
        expect(page.get_by_role("button", name="Reply", exact=True)).to_be_visible()
        page.get_by_role("button", name="Delete", exact=True).click()  # to the Trash
        expect(message).to_have_count(0)
        page.get_by_role("button", name="Trash").first.click()
        expect(page.get_by_role("button", name="Quarterly report")).to_be_visible()
        trash = page.locator("md-list-item", has_text="Trash")
        trash.get_by_role("button", name="Options").click()
        page.get_by_role("menuitem", name="Empty Trash").click()
        expect(page.get_by_role("button", name="Quarterly report")).to_have_count(0)

        assert used_bytes(ME) < before - 25_000

        mailbox_set_password(actor=operator, mailbox=mailbox, password="Other-Secret-42xy")
        run_worker()
        page.reload()
        expect(page.locator("input[ng-model='app.creds.password']")).to_be_visible()
        log_in(page, webmail, GOOD_PASSWORD)
        expect(page.get_by_text("Wrong username or password.")).to_be_visible()
        log_in(page, webmail, "Other-Secret-42xy")
        expect(page.get_by_role("button", name="Trash").first).to_be_visible()
    finally:
        context.close()


def log_in(page, webmail: str, password: str) -> None:
    """SOGo's login form, as a user fills it."""
    page.goto(webmail)
    page.locator("input[ng-model='app.creds.username']").fill(ME)
    page.locator("input[ng-model='app.creds.password']").fill(password)
    page.locator("button[type=submit]").click()

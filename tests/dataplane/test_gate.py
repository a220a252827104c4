"""The EAS/MAPI gate: nginx lets a client through to ActiveSync or MAPI only when the
mailbox's option is on and its credentials are right. Behind it, MAPI's upstream is a
stand-in (no MAPI server is packaged for Debian); ActiveSync's is SOGo on the PostgreSQL pass
(test_groupware.py), the stand-in on SQLite."""

from __future__ import annotations

import base64
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core.cache import cache

from postdesk.mail.services import mailbox_create, mailbox_set_password, mailbox_update
from tests.conftest import GOOD_PASSWORD
from tests.dataplane.conftest import run_worker

pytestmark = pytest.mark.mailstack

# A phone's first request is OPTIONS: SOGo and the stand-in both answer it 200.
EAS = "/Microsoft-Server-ActiveSync"
MAPI = "/mapi/emsmdb/"


def answer(mail, path: str, user: str | None = None, password: str | None = None):
    """The gate's status and Retry-After for a request over HTTPS (the test CA verified)."""
    method = "OPTIONS" if path == EAS else "GET"
    request = urllib.request.Request(f"https://127.0.0.1:{mail.ports['gate']}{path}", method=method)
    if user is not None:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=20, context=mail.tls) as response:  # noqa: S310
            return response.status, response.headers.get("Retry-After")
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Retry-After")


def status(mail, path: str, user: str | None = None, password: str | None = None) -> int:
    return answer(mail, path, user, password)[0]


def test_each_protocol_passes_only_when_its_option_is_on(mail, operator, domain):
    mailbox = mailbox_create(
        actor=operator, domain=domain, username="marie", password=GOOD_PASSWORD, eas_enabled=True
    )
    me = ("marie@example.com", GOOD_PASSWORD)
    assert status(mail, EAS, *me) == 200
    assert status(mail, MAPI, *me) == 403
    mailbox_update(actor=operator, mailbox=mailbox, eas_enabled=False, mapi_enabled=True)
    assert status(mail, EAS, *me) == 403
    assert status(mail, MAPI, *me) == 200


def test_wrong_or_missing_credentials_are_refused(mail, operator, domain):
    mailbox_create(
        actor=operator,
        domain=domain,
        username="marie",
        password=GOOD_PASSWORD,
        eas_enabled=True,
        mapi_enabled=True,
    )
    assert status(mail, EAS) == 401
    assert status(mail, EAS, "marie@example.com", "Wrong-Password-9!") == 401
    assert status(mail, MAPI, "nobody@example.com", GOOD_PASSWORD) == 401


def test_the_old_password_is_refused_after_a_change(mail, operator, domain):
    mailbox = mailbox_create(
        actor=operator, domain=domain, username="marie", password=GOOD_PASSWORD, eas_enabled=True
    )
    assert status(mail, EAS, "marie@example.com", GOOD_PASSWORD) == 200
    mailbox_set_password(actor=operator, mailbox=mailbox, password="Other-Secret-42xy")
    assert status(mail, EAS, "marie@example.com", GOOD_PASSWORD) == 401
    run_worker()  # SOGo, behind the gate on PostgreSQL, forgets the password it verified
    assert status(mail, EAS, "marie@example.com", "Other-Secret-42xy") == 200


def test_only_our_nginx_may_ask_the_gate(mail, live_server):
    assert status_direct(live_server.url + "/dataplane/gate/eas") == 403


def status_direct(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_too_many_wrong_passwords_get_429_with_retry_after(mail, operator, domain, settings):
    settings.POSTDESK_GATE_FAILURE_LIMIT = 3
    cache.clear()
    mailbox_create(
        actor=operator, domain=domain, username="marie", password=GOOD_PASSWORD, eas_enabled=True
    )
    for _ in range(3):
        assert answer(mail, EAS, "marie@example.com", "Wrong-Passw0rd!")[0] == 401
    code, retry_after = answer(mail, EAS, "marie@example.com", "Wrong-Passw0rd!")
    assert code == 429 and 0 < int(retry_after) <= 600
    # A protocol that is off is still a plain 403, without Retry-After.
    assert answer(mail, MAPI, "other@example.com", "x")[0] == 401
    cache.clear()


def test_nginx_limits_the_request_rate_before_the_gate(mail):
    # 10 a second with a burst of 40: a client firing 80 at once gets 429s from nginx itself.
    with ThreadPoolExecutor(max_workers=20) as pool:
        codes = list(pool.map(lambda _: status(mail, EAS), range(80)))
    assert codes.count(429) >= 20 and set(codes) <= {401, 429}


def test_the_front_forwards_mta_sts_policies_by_host(mail, domain):
    def fetch(host: str) -> tuple[int, str]:
        request = urllib.request.Request(
            f"https://127.0.0.1:{mail.ports['gate']}/.well-known/mta-sts.txt",
            headers={"Host": host},
        )
        # The path shares nginx's per-address limit with the gate: the rate test before this
        # one may have used the burst up (10 a second come back), so a 429 is waited out.
        deadline = time.monotonic() + 10
        while True:
            try:
                with urllib.request.urlopen(request, timeout=20, context=mail.tls) as response:  # noqa: S310
                    return response.status, response.read().decode()
            except urllib.error.HTTPError as error:
                if error.code != 429 or time.monotonic() > deadline:
                    return error.code, ""
            time.sleep(0.5)

    code, policy = fetch("mta-sts.example.com")
    assert code == 200
    assert policy.startswith("version: STSv1\r\nmode: testing\r\n")
    assert fetch("mta-sts.unknown.example")[0] == 404

"""Two simultaneous creations of one address over the real HTTP stack: one 201, one 409, one
row. Real requests to a live server (its own threads and database connections), released
at the same instant; the database's unique constraint decides."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request

import pytest

from postdesk.mail.models import Address, Mailbox
from tests.api.conftest import make_token
from tests.conftest import GOOD_PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)


def post(url: str, token: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(  # noqa: S310 (the live server, on loopback)
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.mark.parametrize("repeat", range(3))
def test_two_simultaneous_creations_one_201_one_409_one_row(
    live_server, operator, owner, domain, repeat
):
    token = make_token(operator, owner)
    url = f"{live_server.url}/api/v1/domains/example.com/mailboxes"
    barrier = threading.Barrier(2)
    results: list = [None, None]

    def attempt(i: int) -> None:
        barrier.wait()
        try:
            results[i] = post(url, token, {"username": "info", "password": GOOD_PASSWORD})
        except Exception as error:  # reported below, not lost in the thread
            results[i] = (None, repr(error))

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)

    statuses = sorted(status for status, _body in results)
    assert statuses == [201, 409], results
    conflict = next(body for status, body in results if status == 409)
    assert (conflict["code"], conflict["field"]) == ("address_taken", "username")
    assert Address.objects.filter(local_part="info").count() == 1
    assert Mailbox.objects.count() == 1


def post_with_key(url: str, token: str, body: dict, key: str) -> tuple[int, dict, str | None]:
    request = urllib.request.Request(  # noqa: S310 (the live server, on loopback)
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Idempotency-Key": key,
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
            replayed = response.headers.get("Idempotent-Replayed")
            return response.status, json.loads(response.read()), replayed
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), None


@pytest.mark.parametrize("repeat", range(2))
def test_two_simultaneous_retries_with_one_key_create_one_client(live_server, operator, repeat):
    """A billing system that times out and retries at once: both calls answer 201 with the
    same body (one of them a replay), and there is one client."""
    from postdesk.api.services import token_create
    from postdesk.tenancy.models import Client

    token = token_create(actor=operator, operator_name="billing", scope="write").plaintext
    url = f"{live_server.url}/api/v1/provisioning/clients"
    body = {"name": "Charlie", "owner_email": "boss@charlie.example", "domain": "charlie.example"}
    barrier = threading.Barrier(2)
    results: list = [None, None]

    def attempt(i: int) -> None:
        barrier.wait()
        try:
            results[i] = post_with_key(url, token, body, "order-42")
        except Exception as error:  # reported below, not lost in the thread
            results[i] = (None, repr(error), None)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)

    assert [r[0] for r in results] == [201, 201], results
    assert results[0][1] == results[1][1]
    assert sorted(str(r[2]) for r in results) == ["None", "true"]
    assert Client.objects.filter(name="Charlie").count() == 1

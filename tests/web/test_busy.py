"""A database held by another writer longer than a request may wait: the request answers 503
with Retry-After (the page in the user's language, the API in JSON) and changes nothing;
never a 500. Held for real: a second connection takes the write lock (SQLite) or the row's
lock (PostgreSQL), and this test's connection waits a short, bounded time."""

from __future__ import annotations

import json
import sqlite3
from contextlib import contextmanager

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from django.urls import reverse

from postdesk.api.models import TokenScope
from postdesk.api.services import token_create
from postdesk.mail.models import Mailbox

pytestmark = pytest.mark.django_db(transaction=True)


@contextmanager
def held_by_another_writer(mailbox: Mailbox):
    """While inside, another connection holds what a change of the mailbox must lock."""
    connection.ensure_connection()
    if connection.vendor == "sqlite":
        connection.connection.execute("PRAGMA busy_timeout = 300")
        other = sqlite3.connect(settings.DATABASES["default"]["NAME"], isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            other.execute("ROLLBACK")
            other.close()
    else:
        import psycopg

        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '300ms'")
        params = connection.get_connection_params()
        with psycopg.connect(**params) as other:
            other.execute("SELECT 1 FROM mail_mailbox WHERE id = %s FOR UPDATE", [mailbox.pk])
            yield
            other.rollback()


def test_a_page_waits_a_bounded_time_then_says_busy(owner_browser, mailbox):
    url = reverse("web:mailbox_edit", args=["example.com", "marie"])
    with held_by_another_writer(mailbox):
        answer = owner_browser.post(
            url, {"quota_mb": "777", "destinations": [], "aliases": []}, HTTP_ACCEPT_LANGUAGE="fr"
        )
    assert answer.status_code == 503
    assert int(answer["Retry-After"]) > 0
    assert "Le service est occupé" in answer.content.decode()
    mailbox.refresh_from_db()
    assert mailbox.quota_mb != 777  # nothing changed


def test_the_api_answers_503_with_retry_after(operator, owner, mailbox):
    token = token_create(actor=operator, user=owner.user, scope=TokenScope.WRITE).plaintext
    with held_by_another_writer(mailbox):
        answer = Client().patch(
            "/api/v1/mailboxes/marie@example.com",
            data=json.dumps({"quota_mb": 777}),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {token}",
        )
    assert answer.status_code == 503
    assert int(answer["Retry-After"]) > 0
    assert answer.json()["code"] == "database_busy"
    mailbox.refresh_from_db()
    assert mailbox.quota_mb != 777

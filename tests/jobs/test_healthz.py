"""GET /healthz: 200 with the database and the queue's state while the worker keeps up; 503
when a task has waited too long to run, or when the database cannot be reached."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import DatabaseError
from django.test import Client
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from postdesk.jobs import selectors
from postdesk.mail.tasks import mailbox_sessions_kick

pytestmark = pytest.mark.django_db


def test_a_moving_queue_is_healthy(settings):
    mailbox_sessions_kick.enqueue("marie@example.com")
    answer = Client().get("/healthz")
    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "ok" and body["database"] == {"ok": True}
    assert body["queue"]["ready"] == 1 and body["queue"]["oldest_wait_seconds"] < 60
    assert set(body["jobs"]) == {"dns-recheck", "collect-usage", "compact-totals", "sweep-moves"}
    assert "no-store" in answer["Cache-Control"]
    assert Client().head("/healthz").status_code == 200


def test_a_task_waiting_too_long_means_no_worker_runs(settings):
    settings.POSTDESK_HEALTH_QUEUE_MAX_WAIT = 600
    mailbox_sessions_kick.enqueue("marie@example.com")
    DBTaskResult.objects.update(enqueued_at=timezone.now() - timedelta(minutes=11))
    # A retry queued for later only counts once its time has come.
    mailbox_sessions_kick.using(run_after=timezone.now() + timedelta(hours=1)).enqueue("x@y.z")
    answer = Client().get("/healthz")
    assert answer.status_code == 503
    assert answer.json()["queue"]["ok"] is False
    assert answer.json()["queue"]["oldest_wait_seconds"] >= 660


def test_an_unreachable_database_is_a_503(monkeypatch):
    # The one mock here: the test's own database cannot be taken away from under it.
    def broken():
        raise DatabaseError("connection refused")

    monkeypatch.setattr(selectors.connection, "cursor", broken)
    answer = Client().get("/healthz")
    assert answer.status_code == 503
    assert answer.json()["database"] == {"ok": False}

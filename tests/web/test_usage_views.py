"""What the pages show of measured usage and of changes the mail servers have not applied
yet: the storage "measured at" time, the 7-day growth column and sort, the pending notice."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from django_tasks.base import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from postdesk.mail.models import Mailbox
from postdesk.mail.services import mailbox_create, mailbox_usage_record
from tests.budgets import query_budget
from tests.conftest import GOOD_PASSWORD

pytestmark = pytest.mark.django_db

MB = 1024 * 1024


def _text(response) -> str:
    return re.sub(r"\s+", " ", response.content.decode()).replace("<wbr>", "")


def _list(response) -> str:
    return _text(response).split('id="address-list"')[1]


def _mailbox(operator, domain, username):
    return mailbox_create(actor=operator, domain=domain, username=username, password=GOOD_PASSWORD)


# --- Measured at -------------------------------------------------------------------------------


def test_dashboard_shows_when_the_disk_space_was_last_measured(
    owner_browser, operator, domain, mailbox
):
    url = reverse("web:dashboard", args=["example.com"])
    assert "Disk space not measured yet." in _text(owner_browser.get(url))

    other = _mailbox(operator, domain, "jean")
    now = timezone.now().replace(microsecond=0)
    mailbox_usage_record(
        actor=operator, mailbox=mailbox, used_bytes=5 * MB, at=now - timedelta(hours=3)
    )
    mailbox_usage_record(
        actor=operator, mailbox=other, used_bytes=MB, at=now - timedelta(minutes=20)
    )
    text = _text(owner_browser.get(url))
    # The latest measure across the domain.
    latest = (now - timedelta(minutes=20)).isoformat()
    assert f'<time datetime="{latest}"' in text
    assert "Disk space measured 20 minutes ago." in text


def test_mailbox_page_shows_when_its_storage_was_measured(owner_browser, operator, mailbox):
    mailbox_usage_record(
        actor=operator, mailbox=mailbox, used_bytes=3 * MB, at=timezone.now() - timedelta(hours=2)
    )
    url = reverse("web:mailbox_edit", args=["example.com", "marie"])
    assert "Disk space measured 2 hours ago." in _text(owner_browser.get(url))


# --- Pending password change -------------------------------------------------------------------


def test_a_password_change_shows_pending_until_the_mail_servers_apply_it(
    owner_browser, viewer_browser, mailbox, settings
):
    settings.POSTDESK_DOVEADM_URL = "http://127.0.0.1:9/doveadm/v1"  # connected (never called)
    url = reverse("web:mailbox_edit", args=["example.com", "marie"])
    notice = "Password change pending on the mail servers"
    assert notice not in _text(owner_browser.get(url))

    changed = owner_browser.post(
        reverse("web:mailbox_password", args=["example.com", "marie"]),
        {"password": "New-Passw0rd!2026", "password_confirmation": "New-Passw0rd!2026"},
        follow=True,
    )
    assert "Its sessions are being disconnected." in _text(changed)
    assert notice in _text(changed)
    # A viewer of the account sees it too, without the change button.
    seen = _text(viewer_browser.get(url))
    assert notice in seen and "Change password" not in seen

    # The provisioner kicked the sessions: nothing pending any more.
    DBTaskResult.objects.update(status=TaskResultStatus.SUCCESSFUL)
    assert notice not in _text(owner_browser.get(url))


def test_without_mail_servers_a_password_change_is_not_shown_pending(owner_browser, mailbox):
    # No mail server connected: nothing to disconnect, the new password already holds. The
    # operator is told once (postdesk serve, postdesk jobs list), not each mailbox forever.
    changed = owner_browser.post(
        reverse("web:mailbox_password", args=["example.com", "marie"]),
        {"password": "New-Passw0rd!2026", "password_confirmation": "New-Passw0rd!2026"},
        follow=True,
    )
    assert "has been changed" in _text(changed)
    assert "Password change pending on the mail servers" not in _text(changed)
    assert DBTaskResult.objects.filter(status=TaskResultStatus.READY).exists()  # still queued


def test_the_mailbox_page_of_another_client_is_not_found(outsider_browser, mailbox):
    url = reverse("web:mailbox_edit", args=["example.com", "marie"])
    assert outsider_browser.get(url).status_code == 404


# --- Growth over 7 days ------------------------------------------------------------------------


def _grow(operator, mailbox, before: int, after: int) -> None:
    now = timezone.now()
    mailbox_usage_record(
        actor=operator, mailbox=mailbox, used_bytes=before, at=now - timedelta(days=8)
    )
    mailbox_usage_record(
        actor=operator, mailbox=mailbox, used_bytes=after, at=now - timedelta(hours=1)
    )


def test_the_address_list_sorts_by_growth_over_7_days(
    owner_browser, operator, domain, mailbox, forward
):
    slow = _mailbox(operator, domain, "slow")
    shrinking = _mailbox(operator, domain, "shrinking")
    _grow(operator, mailbox, 10 * MB, 12 * MB)  # +2 MB
    _grow(operator, slow, 10 * MB, 10 * MB + 300 * 1024)  # +300 KB
    _grow(operator, shrinking, 10 * MB, 9 * MB)  # -1 MB
    base = reverse("web:dashboard", args=["example.com"])

    by_address = _list(owner_browser.get(base))
    assert "Growth (7 days)" in by_address
    assert "sort=growth" in by_address

    by_growth = _list(owner_browser.get(base + "?sort=growth"))
    order = re.findall(r'class="address-link">([a-z.]+)@', by_growth)
    # Largest growth first; a forward has no storage and comes last.
    assert order == ["marie", "slow", "shrinking", "info"]
    growth = re.findall(r'class="growth">([^<]*)', by_growth)
    assert growth[:3] == ["+2.0 MB", "+300.0 KB", "\u22121.0 MB"]
    header = re.search(r'<th scope="col" aria-sort="descending">\s*<a[^>]*>([^<]*)', by_growth)
    assert header and header.group(1) == "Growth (7 days)"


def test_growth_sort_for_a_viewer_and_not_for_another_client(
    viewer_browser, outsider_browser, mailbox
):
    url = reverse("web:dashboard", args=["example.com"]) + "?sort=growth"
    assert "marie@example.com" in _list(viewer_browser.get(url))
    assert outsider_browser.get(url).status_code == 404


def test_growth_sort_query_count_is_fixed(
    owner_browser, operator, domain, django_assert_max_num_queries
):
    from bench.dataset import add_addresses

    url = reverse("web:dashboard", args=["example.com"]) + "?sort=growth"
    counts = []
    for mailboxes in (5, 120):
        add_addresses(domain, mailboxes=mailboxes, aliases=mailboxes // 2, forwards=3)
        for each in Mailbox.objects.filter(address__domain=domain, usage_samples__isnull=True)[:3]:
            _grow(operator, each, MB, 2 * MB)
        with django_assert_max_num_queries(
            query_budget("page:web:address_list:growth")
        ) as captured:
            response = owner_browser.get(
                url, headers={"HX-Request": "true", "HX-Target": "address-list"}
            )
        assert response.status_code == 200
        counts.append(len(captured))
    assert counts[0] == counts[1]

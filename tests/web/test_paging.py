"""The client area's lists answer any page number, never a 500 (tests/api/test_paging.py
has the API's)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from postdesk.mail.services import forward_create

pytestmark = pytest.mark.django_db

HUGE = 6466379091199793152


@pytest.mark.parametrize("page", [str(HUGE), str(10**30), "-5", "abc"])
def test_client_area_lists_answer_any_page(owner_browser, operator, domain, page):
    forward_create(actor=operator, domain=domain, name="a", destinations=["x@y.example"])
    for url in (reverse("web:dashboard", args=["example.com"]), reverse("web:audit")):
        assert owner_browser.get(url, {"page": page}).status_code == 200

"""Every API list answers any page number: past the last page it is the last page, never a
500 (a page of 6,466,379,091,199,793,152 overflowed SQLite's OFFSET); a page or a page size
out of range is a 422. tests/web/test_paging.py: the client area's lists."""

from __future__ import annotations

import pytest

from postdesk.mail.services import domain_add, forward_create

pytestmark = pytest.mark.django_db

HUGE = 6466379091199793152
LISTS = [
    "domains",
    "domains/example.com/addresses",
    "domains/example.com/audit",
    "audit",
]


@pytest.fixture
def listed(operator, client_a, domain):
    domain_add(actor=operator, client=client_a, name="second.example")
    for name in ("a", "b", "c"):
        forward_create(actor=operator, domain=domain, name=name, destinations=["x@y.example"])


@pytest.mark.parametrize("path", LISTS)
@pytest.mark.parametrize("page", [HUGE, 2**63, 10**30])
def test_a_page_past_the_end_is_the_last_page(api, owner_token, listed, path, page):
    answer = api.get(f"{path}?page={page}&per_page=2", owner_token)
    assert answer.status == 200, answer.body
    body = answer.body
    last = max(1, -(-body["total"] // 2))
    assert body["page"] == last and body["per_page"] == 2
    assert 1 <= len(body["items"]) <= 2


@pytest.mark.parametrize("path", LISTS)
@pytest.mark.parametrize("query", ["page=0", "page=-1", "per_page=0", "per_page=100000"])
def test_a_page_or_size_out_of_range_is_refused(api, owner_token, listed, path, query):
    assert api.get(f"{path}?{query}", owner_token).status == 422

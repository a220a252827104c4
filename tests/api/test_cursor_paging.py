"""The address list's cursors (issue 19, point 7): `next` walks every row exactly once while
rows come and go, a cursor reads only the list it was made for, and a cursor page runs the
same queries at any size."""

from __future__ import annotations

import pytest
from django.db.models import Sum

from postdesk.mail.models import Address, DomainTotalsChange, Mailbox
from postdesk.mail.selectors import domain_summary
from postdesk.mail.services import (
    domain_add,
    domain_totals_compact,
    forward_create,
    mailbox_delete,
)
from tests.budgets import query_budget

pytestmark = pytest.mark.django_db

PATH = "domains/example.com/addresses"


def _fill(domain, mailboxes: int) -> None:
    from bench.dataset import add_addresses

    add_addresses(domain, mailboxes=mailboxes, aliases=mailboxes, forwards=mailboxes // 5)


def _walk(api, token, query: str) -> tuple[list[str], list[dict]]:
    answers = [api.get(f"{PATH}?{query}", token)]
    while answers[-1].body["next"]:
        answers.append(api.get(f"{PATH}?{query}&cursor={answers[-1].body['next']}", token))
    assert all(a.status == 200 for a in answers)
    return [row["address"] for a in answers for row in a.body["items"]], answers


@pytest.mark.parametrize("sort", ["address", "storage", "storage_asc", "growth"])
def test_next_returns_every_row_once_while_rows_are_created_and_deleted(
    api, operator, owner_token, domain, sort
):
    _fill(domain, 60)
    query = f"sort={sort}&per_page=10"
    before = api.get(f"{PATH}?{query}&per_page=500", owner_token).body["items"]
    first = api.get(f"{PATH}?{query}", owner_token).body
    assert first["page"] == 1 and first["previous"] is None
    # Between pages: the first page's rows and some later ones deleted, new ones created
    # before and after the position, one mailbox's storage changed.
    names = [row["address"] for row in before]
    deleted = {names[3], names[25], names[40]}
    for address in deleted:
        kind = next(row["type"] for row in before if row["address"] == address)
        if kind == "mailbox":
            mailbox_delete(
                actor=operator, mailbox=Mailbox.objects.get(local_part=address.split("@")[0])
            )
        else:
            Address.objects.get(local_part=address.split("@")[0]).delete()
    for name in ("aaa-new", "zzz-new"):
        forward_create(actor=operator, domain=domain, name=name, destinations=["x@y.example"])
    seen = [row["address"] for row in first["items"]]
    answer = first
    while answer["next"]:
        answer = api.get(f"{PATH}?{query}&cursor={answer['next']}", owner_token).body
        assert answer["page"] is None
        seen += [row["address"] for row in answer["items"]]
    assert len(seen) == len(set(seen)), "a row came twice"
    kept = [n for n in names if n not in deleted]
    assert all(name in seen for name in kept), "a row that stayed was skipped"
    assert all(name not in seen for name in deleted - set(seen[:10]))


def test_previous_walks_back_to_the_first_page(api, owner_token, domain):
    _fill(domain, 30)
    rows, answers = _walk(api, owner_token, "sort=storage&per_page=7")
    back, pages = answers[-1].body, [answers[-1].body["items"]]
    while back["previous"]:
        back = api.get(f"{PATH}?sort=storage&per_page=7&cursor={back['previous']}", owner_token)
        back = back.body
        pages.insert(0, back["items"])
    assert [row["address"] for page in pages for row in page] == rows
    assert len(rows) == answers[0].body["total"] == 36


def test_a_cursor_reads_only_its_own_list(
    api, operator, owner_token, outsider_token, domain, other_domain, client_a
):
    _fill(domain, 12)
    _fill(other_domain, 12)
    mine = api.get(f"{PATH}?per_page=5", owner_token).body["next"]
    theirs_path = "domains/example.net/addresses"
    # Another client's token with my cursor: their domain is not found for me, and my
    # cursor does not open their list for them either.
    assert api.get(f"{PATH}?cursor={mine}", outsider_token).status == 404
    answer = api.get(f"{theirs_path}?per_page=5&cursor={mine}", outsider_token)
    assert answer.status == 400 and answer.body["code"] == "cursor_invalid"
    # Another domain of my own client: refused too, as is another sort, search or type.
    _fill(domain_add(actor=operator, client=client_a, name="second.example"), 6)
    refused = [
        f"domains/second.example/addresses?per_page=5&cursor={mine}",
        f"{PATH}?per_page=5&sort=storage&cursor={mine}",
        f"{PATH}?per_page=5&search=user&cursor={mine}",
        f"{PATH}?per_page=5&type=mailbox&cursor={mine}",
        f"{PATH}?per_page=5&cursor={mine[:-3]}abc",
        f"{PATH}?per_page=5&cursor=not-a-cursor",
    ]
    for path in refused:
        answer = api.get(path, owner_token)
        assert answer.status == 400, path
        assert answer.body["code"] == "cursor_invalid" and "items" not in answer.body


def test_a_cursor_page_runs_the_same_queries_at_any_size(
    api, owner_token, domain, django_assert_num_queries
):
    api.get("domains", owner_token)  # records the token's last use: later calls skip it
    for size in (20, 400):
        _fill(domain, size)
        for query in (
            "per_page=10",
            "sort=storage&per_page=10",
            "sort=growth&type=mailbox&per_page=10",
        ):
            cursor = api.get(f"{PATH}?{query}", owner_token).body["next"]
            with django_assert_num_queries(query_budget("api:address_list")):
                answer = api.get(f"{PATH}?{query}&cursor={cursor}", owner_token)
            assert answer.status == 200, answer.body
            assert answer.body["items"]


def test_the_domain_totals_follow_every_write(api, operator, owner, owner_token, domain):
    _fill(domain, 25)
    victim = Mailbox.objects.filter(domain=domain).order_by("pk").first()
    mailbox_delete(actor=operator, mailbox=victim)
    first_three = Mailbox.objects.filter(domain=domain).order_by("pk").values("pk")[:3]
    Mailbox.objects.filter(pk__in=[row["pk"] for row in first_three]).update(eas_enabled=True)
    Mailbox.objects.filter(domain=domain).update(used_bytes=1000)
    mailboxes = Mailbox.objects.filter(domain=domain)
    counted = Address.objects.filter(domain=domain)

    def exact() -> None:
        summary = domain_summary(actor=owner, domain=domain)
        assert summary.mailboxes == mailboxes.count() == 24
        assert summary.aliases == counted.filter(kind="alias").count()
        assert summary.forwards == counted.filter(kind="forward").count() == 5
        assert summary.eas_accounts == mailboxes.filter(eas_enabled=True).count()
        assert summary.mapi_accounts == mailboxes.filter(mapi_enabled=True).count()
        assert summary.used_bytes == 24 * 1000
        assert api.get(PATH, owner_token).body["total"] == 29

    exact()
    # The compaction job folds the domain's changes into one row, and nothing moves.
    assert DomainTotalsChange.objects.filter(domain=domain).count() > 1
    domain_totals_compact()
    assert DomainTotalsChange.objects.filter(domain=domain).count() == 1
    exact()
    domain_id = domain.pk
    domain.delete()  # its changes sum to nothing, and the next compaction removes them
    left = DomainTotalsChange.objects.filter(domain_id=domain_id)
    assert left.count() > 1
    assert {total: 0 for total in DomainTotalsChange.SUMMED} == left.aggregate(
        **{total: Sum(total) for total in DomainTotalsChange.SUMMED}
    )
    domain_totals_compact()
    assert not left.exists()

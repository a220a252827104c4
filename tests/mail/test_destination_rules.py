"""Destinations other servers would refuse, or that would send mail round in a loop, are
refused at once, whatever the interface."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from postdesk.errors import InvalidInput
from postdesk.mail.selectors import destinations_missing
from postdesk.mail.services import (
    domain_add,
    forward_create,
    forward_update,
    mailbox_create,
    mailbox_update,
)
from tests.conftest import GOOD_PASSWORD

pytestmark = pytest.mark.django_db


def _code(call) -> str:
    with pytest.raises(InvalidInput) as refused:
        call()
    return refused.value.errors[0].code


def test_a_local_part_over_64_characters_is_refused(owner, domain):
    too_long = "a" * 65 + "@partner.example"
    assert (
        _code(lambda: forward_create(actor=owner, domain=domain, name="x", destinations=[too_long]))
        == "destination_invalid"
    )
    assert forward_create(
        actor=owner, domain=domain, name="y", destinations=["a" * 64 + "@partner.example"]
    )


def test_two_forwards_that_point_at_each_other_are_refused(owner, domain):
    forward_create(actor=owner, domain=domain, name="b", destinations=["a@example.com"])
    assert (
        _code(
            lambda: forward_create(
                actor=owner, domain=domain, name="a", destinations=["b@example.com"]
            )
        )
        == "destination_loop"
    )
    a = forward_create(
        actor=owner, domain=domain, name="a", destinations=["elsewhere@partner.example"]
    )
    assert (
        _code(lambda: forward_update(actor=owner, forward=a, destinations=["b@example.com"]))
        == "destination_loop"
    )


def test_a_loop_through_an_alias_and_a_mailbox_is_refused(owner, domain):
    mailbox_create(
        actor=owner, domain=domain, username="marie", password=GOOD_PASSWORD, aliases=["m.dupont"]
    )
    forward_create(actor=owner, domain=domain, name="relay", destinations=["m.dupont@example.com"])
    jean = mailbox_create(actor=owner, domain=domain, username="jean", password=GOOD_PASSWORD)
    # marie → relay → m.dupont (marie's alias): mail would come back to marie.
    marie = jean.__class__.objects.get(address__local_part="marie")
    refused = _code(
        lambda: mailbox_update(actor=owner, mailbox=marie, destinations=["relay@example.com"])
    )
    assert refused == "destination_loop"
    # jean → relay → marie: no loop (marie does not forward back to jean).
    assert mailbox_update(actor=owner, mailbox=jean, destinations=["relay@example.com"])


def test_a_loop_across_the_clients_domains_is_refused_but_other_clients_are_not_read(
    operator, owner, client_a, domain, other_domain
):
    second = domain_add(actor=operator, client=client_a, name="second.example")
    forward_create(actor=operator, domain=second, name="back", destinations=["sales@example.com"])
    assert (
        _code(
            lambda: forward_create(
                actor=owner, domain=domain, name="sales", destinations=["back@second.example"]
            )
        )
        == "destination_loop"
    )
    # Another client's forward to us is its own business: no loop is read through it.
    forward_create(
        actor=operator, domain=other_domain, name="theirs", destinations=["info@example.com"]
    )
    assert forward_create(
        actor=owner, domain=domain, name="info", destinations=[f"theirs@{other_domain.name}"]
    )


def test_a_destination_in_our_domains_that_does_not_exist_is_saved_with_a_warning(owner, domain):
    browser = Client()
    browser.force_login(owner.user)
    answer = browser.post(
        reverse("web:forward_create", args=["example.com"]),
        {"name": "sales", "destinations": ["nobody@example.com", "friend@partner.example"]},
        follow=True,
    )
    page = answer.content.decode()
    assert "Forward sales@example.com created." in page
    assert "nobody@example.com does not exist in your domains yet" in page
    assert "friend@partner.example does not exist" not in page  # not ours: not ours to say
    mailbox_create(actor=owner, domain=domain, username="nobody", password=GOOD_PASSWORD)
    assert (
        destinations_missing(actor=owner, domain=domain, destinations=["nobody@example.com"]) == []
    )

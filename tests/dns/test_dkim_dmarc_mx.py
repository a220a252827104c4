"""DKIM record states, DMARC and MX checks: pure functions over DNS answers."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import serialization

from postdesk.dns.dkim import (
    DkimState,
    check_dkim,
    generate_key_pair,
    is_valid_selector,
    parse_tags,
    record_host,
    record_value,
)
from postdesk.dns.dmarc import DmarcState, check_dmarc, suggested_record
from postdesk.dns.mx import MxState, check_mx
from tests.dns.fakes import FAIL, fetch_from

HOST = "mail._domainkey.example.com"


@pytest.fixture(scope="module")
def pair():
    return generate_key_pair()


def test_generated_key_is_rsa_2048_and_its_public_half_is_the_record(pair):
    private = serialization.load_pem_private_key(pair.private_pem, password=None)
    assert private.key_size == 2048
    der = base64.b64decode(pair.public_key)
    public = serialization.load_der_public_key(der)
    assert public.public_numbers() == private.public_key().public_numbers()
    assert record_value(pair.public_key) == f"v=DKIM1; k=rsa; p={pair.public_key}"
    assert record_host("mail", "example.com") == HOST


def test_states_disabled_pending_active_mismatch_unknown(pair):
    other = generate_key_pair()
    ours = record_value(pair.public_key)
    cases = {
        DkimState.PENDING: fetch_from({}),
        DkimState.ACTIVE: fetch_from({HOST: [ours]}),
        DkimState.MISMATCH: fetch_from({HOST: [record_value(other.public_key)]}),
        DkimState.UNKNOWN: fetch_from({HOST: FAIL}),
    }
    for expected, fetch in cases.items():
        result = check_dkim("example.com", "mail", pair.public_key, fetch)
        assert result.state == expected
        assert (result.host, result.value) == (HOST, ours)
    disabled = check_dkim("example.com", None, None, fetch_from({HOST: [ours]}))
    assert disabled.state == DkimState.DISABLED


def test_active_tolerates_the_ways_registrars_reformat_the_record(pair):
    key = pair.public_key
    spaced = f"v=DKIM1;  k=rsa;\tp={key[:100]} {key[100:]}"  # folded or spaced by a registrar
    result = check_dkim("example.com", "mail", key, fetch_from({HOST: [spaced]}))
    assert result.state == DkimState.ACTIVE


@pytest.mark.parametrize(
    "published",
    [
        ["v=DKIM1; k=rsa; p="],  # revoked key
        ["garbage"],
        ["v=DKIM1; k=rsa; p=OURS", "v=DKIM1; k=rsa; p=OURS"],  # two records: ambiguous
    ],
)
def test_anything_but_exactly_our_key_is_a_mismatch_never_active(pair, published):
    records = [p.replace("OURS", pair.public_key) for p in published]
    result = check_dkim("example.com", "mail", pair.public_key, fetch_from({HOST: records}))
    assert result.state == DkimState.MISMATCH
    assert HOST in result.message


def test_pending_message_mentions_propagation(pair):
    result = check_dkim("example.com", "mail", pair.public_key, fetch_from({}))
    assert "48 hours" in result.message


def test_selectors_and_tags():
    assert is_valid_selector("mail") and is_valid_selector("mail2") and is_valid_selector("s-1")
    assert (
        not is_valid_selector("") and not is_valid_selector("-a") and not is_valid_selector("a.b")
    )
    assert parse_tags("v=DKIM1; K=rsa; p=AB CD") == {"v": "DKIM1", "k": "rsa", "p": "ABCD"}


# --- DMARC ---------------------------------------------------------------------------------------

DMARC = "_dmarc.example.com"


def test_dmarc_suggestion_is_a_monitoring_starter_to_postmaster():
    assert suggested_record("example.com") == (
        "v=DMARC1; p=none; rua=mailto:postmaster@example.com"
    )


@pytest.mark.parametrize(
    ("records", "state", "policy"),
    [
        ([], DmarcState.NOT_CONFIGURED, None),
        (["v=DMARC1; p=reject; rua=mailto:d@example.com"], DmarcState.CONFIGURED, "reject"),
        (["v=DMARC1;p=quarantine"], DmarcState.CONFIGURED, "quarantine"),
        (["v=DMARC1; p=none", "v=DMARC1; p=reject"], DmarcState.INVALID, None),
        (["v=DMARC1; p=maybe"], DmarcState.INVALID, None),
        (["v=DMARC1; rua=mailto:x@example.com"], DmarcState.INVALID, None),
        (["some-verification=abc"], DmarcState.NOT_CONFIGURED, None),
    ],
)
def test_dmarc_states(records, state, policy):
    result = check_dmarc("example.com", fetch_from({DMARC: records}))
    assert (result.state, result.policy) == (state, policy)
    if state == DmarcState.NOT_CONFIGURED:
        assert result.record == suggested_record("example.com")


def test_dmarc_temporary_failure_is_unknown():
    assert check_dmarc("example.com", fetch_from({DMARC: FAIL})).state == DmarcState.UNKNOWN


# --- MX ------------------------------------------------------------------------------------------

OURS = ["mx1.host.example", "mx2.host.example"]


def mx_fetch(records):
    def fetch(name: str):
        if isinstance(records, Exception):
            raise records
        return records

    return fetch


@pytest.mark.parametrize(
    ("found", "state"),
    [
        ([(10, "mx1.host.example"), (20, "mx2.host.example")], MxState.CONFIGURED),
        ([(5, "mx2.host.example")], MxState.CONFIGURED),
        ([], MxState.NOT_CONFIGURED),
        ([(0, "")], MxState.NULL_MX),  # RFC 7505: the domain says it accepts no mail
        ([(0, ""), (10, "mx1.host.example")], MxState.NEEDS_UPDATE),  # §3: never with others
        ([(10, "mx1.host.example"), (20, "mail.elsewhere.example")], MxState.NEEDS_UPDATE),
        ([(10, "aspmx.l.google.example")], MxState.NEEDS_UPDATE),
    ],
)
def test_mx_states(found, state):
    result = check_mx("example.com", OURS, mx_fetch(found))
    assert result.state == state
    if state != MxState.CONFIGURED:
        assert result.records == [(10, "mx1.host.example"), (20, "mx2.host.example")]
        assert result.record == "10 mx1.host.example.\n20 mx2.host.example."


def test_mx_names_the_foreign_servers():
    result = check_mx("example.com", OURS, mx_fetch([(10, "aspmx.l.google.example")]))
    assert "aspmx.l.google.example" in result.message


def test_mx_temporary_failure_is_unknown():
    assert check_mx("example.com", OURS, mx_fetch(FAIL)).state == MxState.UNKNOWN

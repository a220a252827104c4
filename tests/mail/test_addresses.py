"""The address rules: what a username, alias or forward name, a domain and a destination may be.

Pure functions, no database. The guide's "Username" rule: letters, numbers, dots, hyphens and
underscores only. Postdesk reads it as ASCII letters and digits, dot, hyphen, underscore;
1 to 64 characters; no leading or trailing dot, no two dots in a row; stored lowercase.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from postdesk.errors import InvalidInput
from postdesk.mail.addresses import (
    normalize_destination,
    normalize_destinations,
    normalize_domain_name,
    normalize_local_part,
    split_address,
)

# The rule, written independently of the implementation.
RULE = re.compile(r"(?!\.)(?!.*\.\.)[a-z0-9._-]{1,64}(?<!\.)")


def raises_invalid(func, *args, **kwargs) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        func(*args, **kwargs)
    return caught.value


# --- local parts --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        ("marie", "marie"),
        ("marie.dupont", "marie.dupont"),
        ("Marie.Dupont", "marie.dupont"),
        ("A.B", "a.b"),
        ("MARIE", "marie"),
        ("a", "a"),
        ("7", "7"),
        ("-", "-"),
        ("_", "_"),
        ("contact-us", "contact-us"),
        ("no_reply", "no_reply"),
        ("a.b.c.d", "a.b.c.d"),
        ("a-.b", "a-.b"),
        ("-a", "-a"),
        ("a-", "a-"),
        ("_a_", "_a_"),
        ("a.-b", "a.-b"),
        ("2024", "2024"),
        ("x" * 64, "x" * 64),
        ("X" * 64, "x" * 64),
        ("a." * 31 + "bb", "a." * 31 + "bb"),
        ("  marie  ", "marie"),
        ("\tmarie\n", "marie"),
    ],
)
def test_local_part_accepts_the_rule_and_stores_lowercase(value, stored):
    """Names made of letters, digits, dots, hyphens and underscores are accepted, lowercased."""
    assert normalize_local_part(value) == stored


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("", "local_part_required"),
        ("   ", "local_part_required"),
        ("\t\n", "local_part_required"),
        ("x" * 65, "local_part_too_long"),
        ("X" * 65, "local_part_too_long"),
        ("a." * 32 + "b", "local_part_too_long"),
        ("é", "local_part_invalid_character"),
        ("marié", "local_part_invalid_character"),
        ("ÉLODIE", "local_part_invalid_character"),
        ("straße", "local_part_invalid_character"),
        ("иван", "local_part_invalid_character"),
        ("名前", "local_part_invalid_character"),
        ("\uff41bc", "local_part_invalid_character"),  # fullwidth a
        ("\u212aelvin", "local_part_invalid_character"),  # Kelvin sign, lowercases to "k"
        ("\u0130stanbul", "local_part_invalid_character"),  # dotted capital I
        ("a\u200bb", "local_part_invalid_character"),  # zero-width space
        ("marie dupont", "local_part_invalid_character"),
        ("marie\tdupont", "local_part_invalid_character"),
        ("marie+news", "local_part_invalid_character"),
        ("marie@example.com", "local_part_invalid_character"),
        ("@", "local_part_invalid_character"),
        ("marie,dupont", "local_part_invalid_character"),
        ('"marie"', "local_part_invalid_character"),
        ("marie'dupont", "local_part_invalid_character"),
        ("marie/dupont", "local_part_invalid_character"),
        ("marie!", "local_part_invalid_character"),
        ("marie%", "local_part_invalid_character"),
        ("a\nb", "local_part_invalid_character"),
        ("a\x00b", "local_part_invalid_character"),
        (".", "local_part_dot_edge"),
        (".a", "local_part_dot_edge"),
        ("a.", "local_part_dot_edge"),
        (".marie.", "local_part_dot_edge"),
        ("..", "local_part_dot_edge"),
        ("a..b", "local_part_double_dot"),
        ("a...b", "local_part_double_dot"),
        ("marie..dupont", "local_part_double_dot"),
    ],
)
def test_local_part_refuses_what_breaks_the_rule(value, code):
    """Anything outside the rule is refused with a stable code on the username field."""
    error = raises_invalid(normalize_local_part, value)
    assert error.code == code
    assert error.field == "username"
    assert str(error.message)


def test_local_part_length_is_counted_before_surrounding_spaces_count():
    """64 characters padded with spaces is still 64 characters: the spaces are trimmed."""
    assert normalize_local_part(" " + "a" * 64 + " ") == "a" * 64


def test_local_part_error_names_the_offending_character():
    """The user is told which character is not allowed, as they typed it."""
    assert "+" in raises_invalid(normalize_local_part, "marie+news").message
    assert "“É”" in raises_invalid(normalize_local_part, "Élodie").message
    assert "\u212a" in raises_invalid(normalize_local_part, "\u212aelvin").message


def test_local_part_error_uses_the_callers_field():
    """Alias and forward forms get the error beside their own field."""
    assert raises_invalid(normalize_local_part, "a..b", field="alias").field == "alias"
    assert raises_invalid(normalize_local_part, "", field="name").field == "name"


@pytest.mark.parametrize("value", ["Marie.Dupont", "MARIE.DUPONT", "marie.dupont"])
def test_local_part_is_case_insensitive(value):
    """Differently-cased spellings are the same name, so they collide as one address."""
    assert normalize_local_part(value) == "marie.dupont"


# Property tests: the rule holds for anything accepted, whatever is thrown at it.
_PROPERTY_SETTINGS = hypothesis_settings(max_examples=500, database=None, deadline=None)
_NEAR_MISSES = st.text(alphabet="aZz09._-+@ é\u212a\u0130\t", max_size=70)


@_PROPERTY_SETTINGS
@given(st.one_of(st.text(max_size=80), _NEAR_MISSES))
def test_property_anything_accepted_follows_the_rule_and_is_idempotent(value):
    """Whatever a user types, a stored name follows the rule and re-normalizes to itself."""
    try:
        stored = normalize_local_part(value)
    except InvalidInput as error:
        assert error.field == "username"
        return
    assert RULE.fullmatch(stored)
    assert normalize_local_part(stored) == stored
    # Accepted only when what was typed (trimmed) is ASCII and differs from it only in case.
    typed = value.strip()
    assert typed.isascii()
    assert typed.lower() == stored


@_PROPERTY_SETTINGS
@given(st.from_regex(r"[A-Za-z0-9_-]{1,20}(\.[A-Za-z0-9_-]{1,20}){0,2}", fullmatch=True))
def test_property_every_name_following_the_rule_is_accepted(value):
    """No name that follows the rule is refused, and it is stored lowercase."""
    assert normalize_local_part(value) == value.lower()


# --- domains ------------------------------------------------------------------------------------


def _long_domain(total: int) -> str:
    """A valid domain of exactly `total` characters (196 < total < 260)."""
    name = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * (total - 196), "com"])
    assert len(name) == total
    return name


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        ("example.com", "example.com"),
        ("EXAMPLE.COM", "example.com"),
        ("Example.Com.", "example.com"),
        ("  example.org  ", "example.org"),
        ("mail.example.co.uk", "mail.example.co.uk"),
        ("my-company.example", "my-company.example"),
        ("a1.example.net", "a1.example.net"),
        ("exämple.com", "xn--exmple-cua.com"),
        ("ÉXAMPLE.com", "xn--xample-9ua.com"),
        ("xn--exmple-cua.com", "xn--exmple-cua.com"),
        ("example.xn--p1ai", "example.xn--p1ai"),
        ("a" * 63 + ".com", "a" * 63 + ".com"),
    ],
)
def test_domain_is_stored_lowercase_ascii(value, stored):
    """Domains are stored lowercase, without a trailing dot, with IDNs as xn-- labels."""
    assert normalize_domain_name(value) == stored


def test_domain_idn_and_its_ascii_form_are_the_same_domain():
    """A domain typed in Unicode or in its xn-- form is stored once, the same way."""
    assert normalize_domain_name("Exämple.com") == normalize_domain_name("xn--exmple-cua.com")


def test_domain_of_253_characters_is_accepted_254_refused():
    """The DNS limit on a name's length is enforced."""
    assert normalize_domain_name(_long_domain(253)) == _long_domain(253)
    assert raises_invalid(normalize_domain_name, _long_domain(254)).code == "domain_invalid"


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("", "domain_required"),
        ("   ", "domain_required"),
        (".", "domain_required"),
        ("localhost", "domain_invalid"),
        ("com", "domain_invalid"),
        ("-example.com", "domain_invalid"),
        ("example-.com", "domain_invalid"),
        ("a..com", "domain_invalid"),
        (".example.com", "domain_invalid"),
        ("ex ample.com", "domain_invalid"),
        ("ex_ample.com", "domain_invalid"),
        ("_dmarc.example.com", "domain_invalid"),
        ("example.com/path", "domain_invalid"),
        ("http://example.com", "domain_invalid"),
        ("marie@example.com", "domain_invalid"),
        ("1.2.3.4", "domain_invalid"),
        ("example.123", "domain_invalid"),
        ("a" * 64 + ".com", "domain_invalid"),
        ("xn--a.com", "domain_invalid"),
    ],
)
def test_domain_refuses_invalid_names(value, code):
    """Names that are not valid DNS domains are refused with a stable code."""
    error = raises_invalid(normalize_domain_name, value)
    assert error.code == code
    assert error.field == "domain"


def test_domain_error_uses_the_callers_field():
    """The error is shown beside the field the caller names."""
    assert raises_invalid(normalize_domain_name, "localhost", field="name").field == "name"


# --- destinations -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        ("someone@example.net", "someone@example.net"),
        ("Someone@Example.NET", "someone@example.net"),
        ("  marie@example.org  ", "marie@example.org"),
        ("first.last+tag@example.com", "first.last+tag@example.com"),
        ("o'brien@example.com", "o'brien@example.com"),
        ("m@mail.example.co.uk", "m@mail.example.co.uk"),
        ("marie@exämple.com", "marie@xn--exmple-cua.com"),
    ],
)
def test_destination_accepts_valid_email_lowercased(value, stored):
    """Forwarding destinations are stored lowercase, with IDN domains in ASCII form."""
    assert normalize_destination(value) == stored


@pytest.mark.parametrize(
    "value",
    [
        "marie",
        "marie@",
        "@example.com",
        "marie@@example.com",
        "marie@example",
        "marie@localhost",
        "marie@example.test",
        "marie@example.local",
        "marie@example.invalid",
        "marie@example.com.",
        "marie dupont@example.com",
        ".marie@example.com",
        "marie.@example.com",
        "ma..rie@example.com",
        "marié@example.com",
        '"marie dupont"@example.com',
        "Marie <marie@example.com>",
        "marie@[192.0.2.1]",
        "marie@example.com,paul@example.com",
    ],
)
def test_destination_refuses_invalid_email(value):
    """Anything that is not a plain deliverable-looking address is refused."""
    error = raises_invalid(normalize_destination, value)
    assert error.code == "destination_invalid"
    assert error.field == "destinations"


@pytest.mark.parametrize("value", ["", "   "])
def test_destination_required(value):
    """An empty destination asks for an address rather than calling it invalid."""
    error = raises_invalid(normalize_destination, value)
    assert error.code == "destination_required"
    assert error.field == "destinations"


def test_destinations_valid_list_is_normalized_in_order():
    """A valid list comes back lowercased, in the order the user gave it."""
    result = normalize_destinations(
        ["B@Example.net", "a@example.org", "c@example.com"], own_addresses=set(), max_count=5
    )
    assert result == ["b@example.net", "a@example.org", "c@example.com"]


def test_destinations_empty_list_is_allowed():
    """A list with no destinations is valid (whether it is required is the caller's call)."""
    assert normalize_destinations([], own_addresses=set(), max_count=5) == []


@pytest.mark.parametrize("own", ["marie@example.com", "Marie@Example.COM", " MARIE@example.com "])
def test_destinations_refuse_forwarding_to_itself(own):
    """Forwarding an address to itself (any spelling) would loop, so it is refused."""
    error = raises_invalid(
        normalize_destinations,
        ["paul@example.net", own],
        own_addresses={"marie@example.com", "m.dupont@example.com"},
        max_count=5,
    )
    assert error.code == "destination_self"
    assert error.field == "destinations"


def test_destinations_refuse_forwarding_to_an_own_alias():
    """An alias delivers to the same mailbox, so forwarding to it loops too."""
    error = raises_invalid(
        normalize_destinations,
        ["M.Dupont@example.com"],
        own_addresses={"marie@example.com", "m.dupont@example.com"},
        max_count=5,
    )
    assert error.code == "destination_self"


@pytest.mark.parametrize(
    "values",
    [
        ["paul@example.net", "paul@example.net"],
        ["paul@example.net", "Paul@Example.NET"],
        ["paul@example.net", "  PAUL@example.net "],
        ["a@example.org", "paul@example.net", "b@example.org", "paul@EXAMPLE.net"],
    ],
)
def test_destinations_refuse_duplicates_case_insensitively(values):
    """The same destination twice, in any case, is refused."""
    error = raises_invalid(normalize_destinations, values, own_addresses=set(), max_count=10)
    assert error.code == "destination_duplicate"
    assert error.field == "destinations"
    assert "paul@example.net" in error.message


def test_destinations_invalid_entry_is_reported():
    """One bad address in the list refuses the whole list, naming it."""
    error = raises_invalid(
        normalize_destinations,
        ["paul@example.net", "not-an-address"],
        own_addresses=set(),
        max_count=5,
    )
    assert error.code == "destination_invalid"
    assert "not-an-address" in error.message


def test_destinations_empty_entry_is_refused():
    """A blank entry in the list is not silently dropped."""
    error = raises_invalid(
        normalize_destinations, ["paul@example.net", " "], own_addresses=set(), max_count=5
    )
    assert error.code == "destination_required"


def test_destinations_up_to_max_count_accepted():
    """Exactly the maximum number of destinations is allowed."""
    values = [f"user{i}@example.net" for i in range(3)]
    assert normalize_destinations(values, own_addresses=set(), max_count=3) == values


@pytest.mark.parametrize("count", [4, 10])
def test_destinations_over_max_count_refused(count):
    """More destinations than the maximum are refused."""
    values = [f"user{i}@example.net" for i in range(count)]
    error = raises_invalid(normalize_destinations, values, own_addresses=set(), max_count=3)
    assert error.code == "destination_too_many"
    assert error.field == "destinations"
    assert "3" in error.message


def test_destinations_use_the_callers_field():
    """Errors land on the field the caller names."""
    error = raises_invalid(
        normalize_destinations, ["nope"], own_addresses=set(), max_count=5, field="forward_to"
    )
    assert error.field == "forward_to"


# --- split_address ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "parts"),
    [
        ("marie@example.com", ("marie", "example.com")),
        ("Marie.Dupont@Example.COM", ("marie.dupont", "example.com")),
        ("  contact@example.org ", ("contact", "example.org")),
        ("info@exämple.com", ("info", "xn--exmple-cua.com")),
    ],
)
def test_split_address_normalizes_both_parts(value, parts):
    """An address typed in any case splits into its stored local part and domain."""
    assert split_address(value) == parts


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("", "address_invalid"),
        ("   ", "address_invalid"),
        ("marie", "address_invalid"),
        ("marie@", "address_invalid"),
        ("@example.com", "address_invalid"),
        ("a@b@example.com", "local_part_invalid_character"),
        ("marie+news@example.com", "local_part_invalid_character"),
        ("marié@example.com", "local_part_invalid_character"),
        (".marie@example.com", "local_part_dot_edge"),
        ("ma..rie@example.com", "local_part_double_dot"),
        ("x" * 65 + "@example.com", "local_part_too_long"),
        ("marie@localhost", "domain_invalid"),
        ("marie@exa mple.com", "domain_invalid"),
    ],
)
def test_split_address_refuses_invalid_addresses(value, code):
    """A malformed address is refused, with the error on the address field."""
    error = raises_invalid(split_address, value)
    assert error.code == code
    assert error.field == "address"

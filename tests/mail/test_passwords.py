"""Mailbox passwords: the guide's seven checks, the generator, and Dovecot-compatible hashes.

Only Django settings are needed (no database). The conftest lowers Argon2's cost; the Dovecot
tests also run with the production cost, against Debian's real doveadm.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from django.utils import translation

from postdesk.dataplane.passwords import hash_password, verify_password
from postdesk.errors import InvalidInput
from postdesk.mail.passwords import (
    CHECK_ADVICE,
    GENERATED_LENGTH,
    SPECIAL_CHARACTERS,
    generate_password,
    password_checks,
    validate_password,
)
from tests.conftest import GOOD_PASSWORD

USERNAME = "marie"
DOMAIN = "example.com"

# The guide, "Change a mailbox password", in its order and wording; the length names the
# minimum it means (#14).
GUIDE_CHECKS = [
    ("length", "Minimum length met (12 characters)"),
    ("uppercase", "At least one uppercase letter"),
    ("digit", "At least one number"),
    ("special", "At least one special character (!@#$%^&*-_=+)"),
    ("no_username", "Does not contain the username"),
    ("no_domain", "Does not contain the domain name"),
    ("match", "Both fields match"),
]
CHECK_IDS = [check_id for check_id, _ in GUIDE_CHECKS]

# Each fails exactly one check for marie@example.com (the confirmation matches unless noted).
FAILS_ONLY = {
    "length": "Vq7!rTz#Lp2",  # 11 characters
    "uppercase": "vq7!rtz#lp2wxk",
    "digit": "Vqx!rTz#LpywXk",
    "special": "Vq7xrTzyLp2wXk",
    "no_username": "Vq7!MARIEz#Lp2",
    "no_domain": "Vq7!rTz#Example2",
}


def failing(password, confirmation=None, *, username=USERNAME, domain=DOMAIN) -> list[str]:
    confirmation = password if confirmation is None else confirmation
    checks = password_checks(password, confirmation, username=username, domain=domain)
    return [c.id for c in checks if not c.passed]


def validation_error(password, confirmation=None, **kwargs) -> InvalidInput:
    kwargs.setdefault("username", USERNAME)
    kwargs.setdefault("domain", DOMAIN)
    confirmation = password if confirmation is None else confirmation
    with pytest.raises(InvalidInput) as caught:
        validate_password(password, confirmation, **kwargs)
    return caught.value


# --- the seven checks ---------------------------------------------------------------------------


def test_checks_are_the_guides_seven_in_order_with_its_wording():
    """The live checklist shows exactly the guide's seven items, in its order."""
    with translation.override("en"):
        checks = password_checks(GOOD_PASSWORD, GOOD_PASSWORD, username=USERNAME, domain=DOMAIN)
    assert [(c.id, c.label) for c in checks] == GUIDE_CHECKS


def test_good_password_passes_every_check():
    """The shared test password is accepted for a mailbox of the test domain."""
    assert failing(GOOD_PASSWORD) == []
    validate_password(GOOD_PASSWORD, GOOD_PASSWORD, username=USERNAME, domain=DOMAIN)


def test_checks_are_reported_even_when_passing():
    """Every item is listed with its state, so the form can tick the ones already met."""
    checks = password_checks(GOOD_PASSWORD, GOOD_PASSWORD, username=USERNAME, domain=DOMAIN)
    assert len(checks) == 7
    assert all(c.passed for c in checks)


@pytest.mark.parametrize(("check_id", "password"), FAILS_ONLY.items())
def test_each_check_fails_independently(check_id, password):
    """A password breaking one requirement unticks only that requirement."""
    assert failing(password) == [check_id]


def test_match_check_fails_independently():
    """A confirmation that differs unticks only "Both fields match"."""
    assert failing(GOOD_PASSWORD, GOOD_PASSWORD + "x") == ["match"]
    assert failing(GOOD_PASSWORD, "") == ["match"]


def test_match_is_exact():
    """The confirmation must match exactly: case and surrounding spaces count."""
    assert failing(GOOD_PASSWORD, GOOD_PASSWORD.lower()) == ["match"]
    assert failing(GOOD_PASSWORD, GOOD_PASSWORD + " ") == ["match"]


def test_empty_password_fails_the_content_checks():
    """An empty form shows the length, uppercase, number and special items unticked."""
    assert failing("") == ["length", "uppercase", "digit", "special"]


def test_length_boundary_is_twelve():
    """Twelve characters are enough, eleven are not."""
    assert failing("Vq7!rTz#Lp2w") == []
    assert failing("Vq7!rTz#Lp2") == ["length"]


@pytest.mark.parametrize("special", list(SPECIAL_CHARACTERS))
def test_each_listed_special_character_counts(special):
    """Each of the guide's special characters satisfies the special-character item."""
    assert failing(f"Vq7xrTzyLp2w{special}") == []


def test_special_characters_are_exactly_the_guides_list():
    """The accepted set is the guide's "!@#$%^&*-_=+", no more, no less."""
    assert sorted(SPECIAL_CHARACTERS) == sorted("!@#$%^&*-_=+")


@pytest.mark.parametrize(
    "other",  # the fullwidth ! and #, and a no-break space, are not the ASCII ones
    [*"?~.,;:'\"`()[]{}<>/\\| ", "é", "€", "£", "§", "\uff01", "\uff03", "\u00a0"],
)
def test_other_characters_are_not_special(other):
    """Symbols outside the guide's list do not tick the special-character item."""
    assert failing(f"Vq7xrTzyLp2w{other}") == ["special"]


@pytest.mark.parametrize("upper", list("AMZ"))
def test_uppercase_letter_counts(upper):
    """Any uppercase letter ticks the uppercase item."""
    assert failing(f"vq7!rtz#lp2w{upper}") == []


@pytest.mark.parametrize("digit", list("0123456789"))
def test_each_digit_counts(digit):
    """Any digit ticks the number item."""
    assert failing(f"Vqx!rTz#LpywX{digit}") == []


@pytest.mark.parametrize(
    ("password", "username"),
    [
        ("Vq7!marieTz#Lp", "marie"),
        ("Vq7!MARIETz#Lp", "marie"),
        ("Vq7!MaRiETz#Lp", "marie"),
        ("Vq7!marieTz#Lp", "Marie"),
        ("Vq7!marieTz#Lp", " MARIE "),
        ("Vq7!Marie.DupontTz", "marie.dupont"),
        ("Vq7!rTz#Lp2wXk-jo", "jo"),
    ],
)
def test_username_check_is_case_insensitive(password, username):
    """The username is refused inside the password whatever the case of either."""
    assert failing(password, username=username) == ["no_username"]


def test_empty_username_does_not_fail():
    """With no username yet, the username item does not block the password."""
    assert failing(GOOD_PASSWORD, username="") == []


@pytest.mark.parametrize(
    ("password", "domain"),
    [
        ("Vq7!example.comTz", "example.com"),
        ("Vq7!EXAMPLE.COMTz", "example.com"),
        ("Vq7!exampleTz#Lp", "example.com"),
        ("Vq7!ExAmPlETz#Lp", "example.com"),
        ("Vq7!exampleTz#Lp", "EXAMPLE.COM"),
        ("Vq7!exampleTz#Lp", "example.com."),
        ("Vq7!exampleTz#Lp", " Example.com "),
        ("Vq7!acmeTz#Lp2w", "acme.co.uk"),
    ],
)
def test_domain_check_refuses_domain_and_first_label_case_insensitively(password, domain):
    """Neither the domain nor its main name ("example") may appear, in any case."""
    assert failing(password, domain=domain) == ["no_domain"]


def test_domain_check_ignores_other_labels():
    """Only the domain and its first label count: "com" alone is not the domain name."""
    assert failing("Vq7!comTz#Lp2w", domain="example.com") == []


def test_empty_domain_does_not_fail():
    """With no domain, the domain item does not block the password."""
    assert failing(GOOD_PASSWORD, domain="") == []


# --- validate_password --------------------------------------------------------------------------


def test_validate_accepts_a_password_passing_all_checks():
    """A password that ticks every item is accepted silently."""
    assert validate_password(GOOD_PASSWORD, GOOD_PASSWORD, username="a", domain="b.ca") is None


def test_validate_mismatch_only_goes_to_confirmation_field():
    """When only the confirmation is wrong, the error sits beside the confirmation field."""
    error = validation_error(GOOD_PASSWORD, GOOD_PASSWORD + "x")
    assert error.code == "password_mismatch"
    assert error.field == "password_confirmation"
    with translation.override("en"):
        assert str(error.message) == str(CHECK_ADVICE["match"])


def test_validate_confirmation_field_follows_the_callers_field():
    """A form naming its field "new_password" gets "new_password_confirmation"."""
    error = validation_error(GOOD_PASSWORD, "x", field="new_password")
    assert error.field == "new_password_confirmation"
    assert validation_error("short", field="new_password").field == "new_password"


@pytest.mark.parametrize("check_id", list(FAILS_ONLY))
def test_validate_weak_names_the_failing_check_only(check_id):
    """A weak password is refused on the password field with advice for what is missing."""
    with translation.override("en"):
        error = validation_error(FAILS_ONLY[check_id])
        advice = {i: str(text) for i, text in CHECK_ADVICE.items()}
    assert error.code == "password_weak"
    assert error.field == "password"
    assert advice[check_id] in error.message
    for other in CHECK_IDS:
        if other != check_id:
            assert advice[other] not in error.message


def test_validate_weak_lists_every_failure_in_guide_order():
    """Several failures are all listed at once, in the checklist's order, mismatch included."""
    with translation.override("en"):
        error = validation_error("marie", "other")
        advice = [str(CHECK_ADVICE[i]) for i in CHECK_IDS if i != "no_domain"]
    assert error.code == "password_weak"
    assert error.field == "password"
    assert error.message == " ".join(advice)


@pytest.mark.parametrize(
    ("password", "confirmation"),
    [
        ("zQvXwYtRkPqH", "zQvXwYtRkPqH"),  # no digit, no special
        ("Qz7!Wx", "Qz7!Wx"),  # too short
        ("Vq7!MARIEz#Lp2", "Vq7!MARIEz#Lp2"),  # contains the username
        ("Vq7!rTz#Lp2wXkQ", "Vq7!rTz#Lp2wXkR"),  # mismatch only
        ("zQvXw", "kPqHj"),  # weak and mismatched
        ("Qz7!Wx" + "y" * 130, "Qz7!Wx" + "y" * 130),  # too long
        ("Qz7!Wx\tyyyyyyy", "Qz7!Wx\tyyyyyyy"),  # control character
    ],
)
def test_validate_never_echoes_the_password(password, confirmation):
    """Error messages never contain what was typed in either field."""
    error = validation_error(password, confirmation)
    for typed in (password, confirmation):
        assert typed not in error.message
        assert typed not in str(error)
        assert typed not in str(error.as_dict())


def test_validate_refuses_more_than_128_characters():
    """128 characters are accepted; longer passwords are refused."""
    ok = GOOD_PASSWORD + "y" * (128 - len(GOOD_PASSWORD))
    validate_password(ok, ok, username=USERNAME, domain=DOMAIN)
    error = validation_error(ok + "y")
    assert error.code == "password_too_long"
    assert error.field == "password"


@pytest.mark.parametrize("control", ["\t", "\n", "\r", "\x00", "\x1b", "\x7f"])
def test_validate_refuses_control_characters(control):
    """Control characters, which no keyboard login can type, are refused."""
    password = GOOD_PASSWORD + control + "x"
    error = validation_error(password)
    assert error.code == "password_control_character"
    assert error.field == "password"


def test_validate_accepts_non_ascii_characters():
    """Accented letters are allowed in a password that otherwise passes."""
    password = GOOD_PASSWORD + "éß€"
    assert validate_password(password, password, username=USERNAME, domain=DOMAIN) is None


# --- generate_password --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("username", "domain"),
    [
        (USERNAME, DOMAIN),
        ("a", "ab.ca"),
        ("e", "s.ca"),
        ("-", "x.ca"),  # a valid username that is also a special character
        ("2", "ab.ca"),  # a valid username that is also a digit
        ("", ""),
    ],
)
def test_generated_password_always_passes_every_check(username, domain):
    """The generator's output is always accepted, even for names hard to avoid."""
    seen = set()
    for _ in range(300):
        password = generate_password(username=username, domain=domain)
        assert len(password) == GENERATED_LENGTH
        assert failing(password, username=username, domain=domain) == []
        validate_password(password, password, username=username, domain=domain)
        seen.add(password)
    assert len(seen) == 300


def test_generated_password_uses_a_readable_alphabet():
    """No look-alike characters (I, l, 1, O, 0) that users copy wrongly from a screen."""
    allowed = set("ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789" + SPECIAL_CHARACTERS)
    for _ in range(300):
        password = generate_password(username=USERNAME, domain=DOMAIN)
        assert set(password) <= allowed


def test_generated_password_required_classes_are_not_always_in_front():
    """The guaranteed uppercase/digit/special are shuffled, not fixed at the start."""
    firsts = {generate_password(username=USERNAME, domain=DOMAIN)[0].isupper() for _ in range(100)}
    assert firsts == {True, False}


@pytest.mark.parametrize("length", [12, 16, 64, 128])
def test_generated_password_honours_length(length):
    """A longer generated password can be asked for, and still passes every check."""
    password = generate_password(username=USERNAME, domain=DOMAIN, length=length)
    assert len(password) == length
    assert failing(password) == []


def test_generated_password_refuses_lengths_below_minimum():
    """The generator will not produce a password the checks would refuse for length."""
    with pytest.raises(ValueError):
        generate_password(username=USERNAME, domain=DOMAIN, length=11)


# --- hashing ------------------------------------------------------------------------------------

HASH_FORMAT = re.compile(
    r"\{ARGON2ID\}\$argon2id\$v=19\$m=(?P<m>\d+),t=(?P<t>\d+),p=(?P<p>\d+)"
    r"\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}"
)


def test_hash_is_dovecot_argon2id_with_one_lane():
    """Hashes use Dovecot's {ARGON2ID} scheme with p=1, which Dovecot's libsodium requires."""
    stored = hash_password(GOOD_PASSWORD)
    assert stored.startswith("{ARGON2ID}$argon2id$")
    match = HASH_FORMAT.fullmatch(stored)
    assert match
    assert match["p"] == "1"
    assert (match["m"], match["t"]) == ("1024", "1")  # the conftest's test cost


def test_hash_uses_the_configured_cost(settings):
    """The production cost from settings is what goes into the hash."""
    settings.POSTDESK_ARGON2_MEMORY_KIB = 65536
    settings.POSTDESK_ARGON2_TIME_COST = 3
    match = HASH_FORMAT.fullmatch(hash_password(GOOD_PASSWORD))
    assert match
    assert (match["m"], match["t"], match["p"]) == ("65536", "3", "1")


def test_hash_is_salted_and_does_not_contain_the_password():
    """The same password hashes differently each time and is never stored in clear."""
    first, second = hash_password(GOOD_PASSWORD), hash_password(GOOD_PASSWORD)
    assert first != second
    assert GOOD_PASSWORD not in first


def test_verify_accepts_the_right_password_only():
    """The right password verifies; a wrong one, or one differing in case, does not."""
    stored = hash_password(GOOD_PASSWORD)
    assert verify_password(GOOD_PASSWORD, stored) is True
    assert verify_password(GOOD_PASSWORD + "x", stored) is False
    assert verify_password(GOOD_PASSWORD.lower(), stored) is False
    assert verify_password("", stored) is False


def test_verify_handles_non_ascii_passwords():
    """A password with accented letters verifies after hashing."""
    password = "Pässwörd!2024x"
    assert verify_password(password, hash_password(password)) is True
    assert verify_password("Passwrd!2024x", hash_password(password)) is False


def test_verify_survives_a_cost_change(settings):
    """Raising the cost later does not lock out mailboxes hashed with the old cost."""
    stored = hash_password(GOOD_PASSWORD)
    settings.POSTDESK_ARGON2_MEMORY_KIB = 2048
    settings.POSTDESK_ARGON2_TIME_COST = 2
    assert verify_password(GOOD_PASSWORD, stored) is True


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "garbage",
        "{ARGON2ID}",
        "{ARGON2ID}garbage",
        "{ARGON2ID}$argon2id$v=19$m=1024,t=1,p=1$xx$yy",
        "{PLAIN}Vq7!rTz#Lp2wXk",
        "{SHA512-CRYPT}$6$salt$abcdef",
    ],
)
def test_verify_refuses_garbage_hashes(garbage):
    """A corrupt or foreign hash never verifies, and never raises."""
    assert verify_password(GOOD_PASSWORD, garbage) is False


def test_verify_refuses_a_hash_without_the_scheme_prefix():
    """A bare argon2 hash, without Dovecot's scheme prefix, is not accepted."""
    bare = hash_password(GOOD_PASSWORD).removeprefix("{ARGON2ID}")
    assert verify_password(GOOD_PASSWORD, bare) is False


# --- the real Dovecot ---------------------------------------------------------------------------

FAST_COST = (1024, 1)
PRODUCTION_COST = (65536, 3)
COSTS = pytest.mark.parametrize(
    ("memory_kib", "time_cost"), [FAST_COST, PRODUCTION_COST], ids=["test-cost", "production"]
)
DOVECOT_PASSWORDS = [GOOD_PASSWORD, "Pässwörd!2024x", "A1" + SPECIAL_CHARACTERS]


def doveadm(*args: str) -> subprocess.CompletedProcess:
    """Run doveadm with an empty config, so the host's dovecot.conf plays no part."""
    binary = shutil.which("doveadm")
    assert binary, "doveadm is missing: install Debian's dovecot-core (./run test does)"
    return subprocess.run(
        [binary, "-c", "/dev/null", *args], capture_output=True, text=True, timeout=60
    )


@pytest.mark.dovecot
@COSTS
@pytest.mark.parametrize("password", DOVECOT_PASSWORDS)
def test_dovecot_verifies_our_hash(settings, memory_kib, time_cost, password):
    """Dovecot itself accepts the right password against the hash Postdesk stores."""
    settings.POSTDESK_ARGON2_MEMORY_KIB = memory_kib
    settings.POSTDESK_ARGON2_TIME_COST = time_cost
    stored = hash_password(password)
    result = doveadm("pw", "-t", stored, "-p", password)
    assert result.returncode == 0, result.stderr
    assert "(verified)" in result.stdout


@pytest.mark.dovecot
@COSTS
def test_dovecot_refuses_a_wrong_password(settings, memory_kib, time_cost):
    """Dovecot refuses a wrong password against the hash Postdesk stores."""
    settings.POSTDESK_ARGON2_MEMORY_KIB = memory_kib
    settings.POSTDESK_ARGON2_TIME_COST = time_cost
    stored = hash_password(GOOD_PASSWORD)
    result = doveadm("pw", "-t", stored, "-p", GOOD_PASSWORD + "x")
    assert result.returncode != 0
    assert "(verified)" not in result.stdout


@pytest.mark.dovecot
def test_we_verify_a_hash_made_by_dovecot():
    """Hashes Dovecot makes itself (e.g. imported mailboxes) verify in Postdesk too."""
    result = doveadm("pw", "-s", "ARGON2ID", "-p", GOOD_PASSWORD)
    assert result.returncode == 0, result.stderr
    stored = result.stdout.strip()
    assert stored.startswith("{ARGON2ID}$argon2id$")
    assert verify_password(GOOD_PASSWORD, stored) is True
    assert verify_password(GOOD_PASSWORD + "x", stored) is False

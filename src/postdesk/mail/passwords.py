"""Mailbox passwords: the guide's seven checks and a generator.

`password_checks` is the one definition of the policy: the web form ticks its items live, the
API and the CLI refuse a password unless every item passes. The hash the mail servers verify
is the data plane's (dataplane.passwords); the plain password is never stored, logged or
echoed.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from django.utils.functional import lazy
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from postdesk.errors import InvalidInput

MIN_LENGTH = 12
MAX_LENGTH = 128
SPECIAL_CHARACTERS = "!@#$%^&*-_=+"
GENERATED_LENGTH = 20


def _length_label() -> str:
    # The guide's wording, with the minimum it means: the user is not left to guess it.
    return ngettext(
        "Minimum length met (%(min)d character)",
        "Minimum length met (%(min)d characters)",
        MIN_LENGTH,
    ) % {"min": MIN_LENGTH}


# The checks in the guide's order, with its wording.
CHECK_LABELS = {
    "length": lazy(_length_label, str)(),
    "uppercase": gettext_lazy("At least one uppercase letter"),
    "digit": gettext_lazy("At least one number"),
    "special": gettext_lazy("At least one special character (!@#$%^&*-_=+)"),
    "no_username": gettext_lazy("Does not contain the username"),
    "no_domain": gettext_lazy("Does not contain the domain name"),
    "match": gettext_lazy("Both fields match"),
}

# What to do when a check fails, for error messages.
CHECK_ADVICE = {
    "length": gettext_lazy("Use at least 12 characters."),
    "uppercase": gettext_lazy("Add an uppercase letter."),
    "digit": gettext_lazy("Add a number."),
    "special": gettext_lazy("Add a special character (!@#$%^&*-_=+)."),
    "no_username": gettext_lazy("Do not include the username."),
    "no_domain": gettext_lazy("Do not include the domain name."),
    "match": gettext_lazy("The two passwords do not match."),
}


@dataclass(frozen=True)
class PasswordCheck:
    id: str
    label: str
    passed: bool


def _domain_fragments(domain: str) -> list[str]:
    """The domain name and its first label: "example.com" → ["example.com", "example"]."""
    domain = domain.strip().lower().rstrip(".")
    if not domain:
        return []
    return [domain, domain.split(".", 1)[0]]


def password_checks(
    password: str, confirmation: str, *, username: str, domain: str
) -> list[PasswordCheck]:
    """Each of the seven checks with its state, in the guide's order."""
    lowered = password.lower()
    username = username.strip().lower()
    states = {
        "length": len(password) >= MIN_LENGTH,
        "uppercase": any("A" <= c <= "Z" for c in password),
        "digit": any(c.isascii() and c.isdigit() for c in password),
        "special": any(c in SPECIAL_CHARACTERS for c in password),
        "no_username": not username or username not in lowered,
        "no_domain": not any(f and f in lowered for f in _domain_fragments(domain)),
        "match": password == confirmation,
    }
    return [PasswordCheck(id, str(CHECK_LABELS[id]), states[id]) for id in CHECK_LABELS]


def validate_password(
    password: str, confirmation: str, *, username: str, domain: str, field: str = "password"
) -> None:
    """Raise InvalidInput naming every check that fails; return quietly when all pass."""
    if len(password) > MAX_LENGTH:
        raise InvalidInput(
            "password_too_long",
            _("Use at most %(max)d characters.") % {"max": MAX_LENGTH},
            field,
        )
    if any(ord(c) < 32 or ord(c) == 127 for c in password):
        raise InvalidInput(
            "password_control_character",
            _("The password cannot contain control characters."),
            field,
        )
    failed = [
        c
        for c in password_checks(password, confirmation, username=username, domain=domain)
        if not c.passed
    ]
    if not failed:
        return
    if [c.id for c in failed] == ["match"]:
        raise InvalidInput("password_mismatch", str(CHECK_ADVICE["match"]), f"{field}_confirmation")
    raise InvalidInput(
        "password_weak",
        " ".join(str(CHECK_ADVICE[c.id]) for c in failed),
        field,
    )


# Readable alphabet: no I/l/1 or O/0, which users copy wrongly from a screen.
_UPPER = "ABCDEFGHJKLMNPQRSTUVWXYZ"
_LOWER = "abcdefghijkmnopqrstuvwxyz"
_DIGITS = "23456789"
_ALPHABET = _UPPER + _LOWER + _DIGITS + SPECIAL_CHARACTERS


def generate_password(*, username: str, domain: str, length: int = GENERATED_LENGTH) -> str:
    """A random password that passes every check for this mailbox."""
    if length < MIN_LENGTH:
        raise ValueError("generated passwords must meet the minimum length")
    while True:
        chars = [
            secrets.choice(_UPPER),
            secrets.choice(_DIGITS),
            secrets.choice(SPECIAL_CHARACTERS),
            *(secrets.choice(_ALPHABET) for _ in range(length - 3)),
        ]
        # Shuffle with a CSPRNG so the required classes are not always in front.
        for i in range(len(chars) - 1, 0, -1):
            j = secrets.randbelow(i + 1)
            chars[i], chars[j] = chars[j], chars[i]
        candidate = "".join(chars)
        checks = password_checks(candidate, candidate, username=username, domain=domain)
        if all(c.passed for c in checks):
            return candidate

"""What a valid address is: the one place for local-part, domain and destination rules.

The guide's "Username" rule (letters, digits, dots, hyphens, underscores) applies to mailbox
usernames, alias names and forward names alike. Local parts are compared case-insensitively
and stored lowercase.
"""

from __future__ import annotations

import re

import idna
from django.utils.translation import gettext as _
from email_validator import EmailNotValidError, validate_email

from postdesk.errors import InvalidInput

LOCAL_PART_MAX_LENGTH = 64
DOMAIN_MAX_LENGTH = 253
# Checked before lowercasing, and without re.IGNORECASE: both would let non-ASCII letters
# through ("\u212a", the Kelvin sign, lowercases to an ASCII "k").
_LOCAL_PART_CHARACTERS = re.compile(r"[A-Za-z0-9._-]+")
_DOMAIN_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def normalize_local_part(value: str, *, field: str = "username") -> str:
    """Return the local part in its stored form (lowercase), or raise InvalidInput."""
    local_part = (value or "").strip()
    if not local_part:
        raise InvalidInput("local_part_required", _("Enter a name."), field)
    if len(local_part) > LOCAL_PART_MAX_LENGTH:
        raise InvalidInput(
            "local_part_too_long",
            _("Use at most %(max)d characters.") % {"max": LOCAL_PART_MAX_LENGTH},
            field,
        )
    if not _LOCAL_PART_CHARACTERS.fullmatch(local_part):
        bad = next(c for c in local_part if not _LOCAL_PART_CHARACTERS.fullmatch(c))
        if bad.isspace():
            # Quoted, a space reads as nothing ("“ ” is not allowed"): it is named instead.
            message = _(
                "A space is not allowed: use only letters, numbers, dots, hyphens and underscores."
            )
        else:
            message = _(
                "“%(char)s” is not allowed: use only letters, numbers, dots, hyphens "
                "and underscores."
            ) % {"char": bad}
        raise InvalidInput("local_part_invalid_character", message, field)
    local_part = local_part.lower()
    if local_part.startswith(".") or local_part.endswith("."):
        raise InvalidInput(
            "local_part_dot_edge", _("A name cannot start or end with a dot."), field
        )
    if ".." in local_part:
        raise InvalidInput(
            "local_part_double_dot", _("A name cannot contain two dots in a row."), field
        )
    return local_part


def normalize_domain_name(value: str, *, field: str = "domain") -> str:
    """Return the domain in its stored form (lowercase ASCII, IDNA A-labels), or raise."""
    name = (value or "").strip().rstrip(".").lower()
    if not name:
        raise InvalidInput("domain_required", _("Enter a domain name."), field)
    try:
        name = idna.encode(name, uts46=True).decode("ascii")
    except idna.IDNAError:
        raise InvalidInput(
            "domain_invalid", _("“%(name)s” is not a valid domain name.") % {"name": value}, field
        ) from None
    labels = name.split(".")
    if (
        len(name) > DOMAIN_MAX_LENGTH
        or len(labels) < 2
        or not all(_DOMAIN_LABEL.match(label) for label in labels)
        or labels[-1].isdigit()
    ):
        raise InvalidInput(
            "domain_invalid", _("“%(name)s” is not a valid domain name.") % {"name": value}, field
        )
    return name


def normalize_destination(value: str, *, field: str = "destinations") -> str:
    """Return a forwarding destination in its stored form (lowercase), or raise."""
    text = (value or "").strip()
    if not text:
        raise InvalidInput("destination_required", _("Enter an email address."), field)
    try:
        checked = validate_email(text, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError:
        raise InvalidInput(
            "destination_invalid",
            _("“%(address)s” is not a valid email address.") % {"address": text},
            field,
        ) from None
    if len(checked.local_part.encode()) > LOCAL_PART_MAX_LENGTH:
        # RFC 5321's limit: other servers refuse a longer one (email-validator does not).
        raise InvalidInput(
            "destination_invalid",
            _(
                "“%(address)s” is not a valid email address: at most %(max)d characters "
                "before the @."
            )
            % {"address": text, "max": LOCAL_PART_MAX_LENGTH},
            field,
        )
    return (checked.ascii_email or checked.normalized).lower()


def normalize_destinations(
    values: list[str], *, own_addresses: set[str], max_count: int, field: str = "destinations"
) -> list[str]:
    """Validate a destination list: each valid, none repeated, none pointing back at itself.

    `own_addresses` are the addresses that deliver to the same place (a mailbox's address and
    its aliases, or the forward's own address): forwarding to one of them would loop.
    """
    # Counted first: a list of 10,000 is refused without reading each one.
    _destinations_count_check(len(values), max_count, field)
    result: list[str] = []
    for value in values:
        result.append(
            destination_next(
                value, listed=result, own_addresses=own_addresses, max_count=None, field=field
            )
        )
    return result


def destination_next(
    value: str,
    *,
    listed: list[str],
    own_addresses: set[str],
    max_count: int | None,
    field: str = "destinations",
) -> str:
    """One more destination after those already `listed` (stored form): valid, not pointing
    back at `own_addresses`, not listed yet, and, with a `max_count`, not one too many.
    The rule of each item of `normalize_destinations`, for a form that adds them one by one."""
    destination = normalize_destination(value, field=field)
    if destination in own_addresses:
        raise InvalidInput(
            "destination_self",
            _("%(address)s cannot forward to itself.") % {"address": destination},
            field,
        )
    if destination in listed:
        raise InvalidInput(
            "destination_duplicate",
            _("%(address)s is already in the list.") % {"address": destination},
            field,
        )
    if max_count is not None:
        _destinations_count_check(len(listed) + 1, max_count, field)
    return destination


def _destinations_count_check(count: int, max_count: int, field: str) -> None:
    if count > max_count:
        raise InvalidInput(
            "destination_too_many",
            _("At most %(max)d destination addresses are allowed.") % {"max": max_count},
            field,
        )


def split_address(value: str, *, field: str = "address") -> tuple[str, str]:
    """Split "local@domain" into its normalized local part and domain."""
    text = (value or "").strip()
    local, sep, domain = text.rpartition("@")
    if not sep or not local or not domain:
        raise InvalidInput(
            "address_invalid",
            _("“%(address)s” is not a valid email address.") % {"address": text},
            field,
        )
    return normalize_local_part(local, field=field), normalize_domain_name(domain, field=field)

"""Every read that pages, the API and the CLI share.

Each selector checks that the actor may see what it returns, and runs a fixed number of
queries whatever the number of rows.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.core import signing
from django.db import DEFAULT_DB_ALIAS, connection
from django.db.models import (
    BigIntegerField,
    Case,
    Count,
    F,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
    Window,
)
from django.db.models.expressions import RawSQL
from django.db.models.functions import Cast, Lower, Reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.translation import gettext as _
from django_tasks.base import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from postdesk.billing.selectors import plan_storage_limit_mb
from postdesk.compiled import CompiledRead, ILike, Like, values_in, values_together
from postdesk.dataplane import provisioner
from postdesk.errors import InvalidInput, NotFound
from postdesk.paging import Page, page_count, page_of, page_within
from postdesk.tenancy.access import (
    ROLE_READ,
    Actor,
    remember_role,
    require_client_access,
    visible_clients_filter,
    with_role_of_user,
)

from .addresses import normalize_domain_name, split_address
from .choices import AddressKind, AddressListSort, AddressListType
from .models import (
    Address,
    Alias,
    Destination,
    Domain,
    DomainTotalsChange,
    Forward,
    Mailbox,
)
from .tasks import mailbox_sessions_kick


def domain_list(*, actor: Actor) -> QuerySet[Domain]:
    return (
        Domain.objects.filter(visible_clients_filter(actor, prefix="client__"))
        .select_related("client")
        .order_by("name")
        .distinct()
    )


def domain_page(*, actor: Actor, page: int, per_page: int) -> Page:
    """A page of the domains the actor may see, by name (past the last page: the last)."""
    return page_of(domain_list(actor=actor), page=page, per_page=per_page)


def domain_get(*, actor: Actor, name: str) -> Domain:
    stored_name, not_found = _domain_name_of(name)
    if actor.user is not None and actor.user.is_active:
        domain = _domain_with_role(actor, stored_name)
    else:
        domain = Domain.objects.filter(name=stored_name).first()
    return _domain_allowed(actor, domain, not_found)


def _domain_name_of(name: str) -> tuple[str, str]:
    """The name as stored, and what to say when there is no such domain for the actor."""
    not_found = _("No domain %(domain)s in your account.") % {"domain": name}
    try:
        return normalize_domain_name(name), not_found
    except InvalidInput:
        raise NotFound(not_found, "domain") from None


def _domain_allowed(actor: Actor, domain: Domain | None, not_found: str) -> Domain:
    if domain is None:
        raise NotFound(not_found, "domain")
    require_client_access(actor, domain.client_id, write=False, not_found_message=not_found)
    _remember_domain(domain)
    return domain


def _domain_with_role(actor: Actor, name: str) -> Domain | None:
    """The domain named `name`, the user's role on its client read along (one query, its
    SQL compiled once: the read every page of a domain starts with)."""
    return _domain_of_role_read(actor, _DOMAIN_FOR_USER.values(name=name, user_id=actor.user.pk))


def _domain_of_role_read(actor: Actor, found: list[dict]) -> Domain | None:
    """The domain `_DOMAIN_FOR_USER` read (None: no such domain), the role remembered."""
    if not found:
        return None
    values = found[0]
    domain = Domain.from_db(DEFAULT_DB_ALIAS, _DOMAIN_FIELDS, [values[f] for f in _DOMAIN_FIELDS])
    remember_role(actor, domain.client_id, *(values[name] for name in ROLE_READ))
    return domain


# Each domain's id and client by name, as this process last read them (`domain_get`): a
# domain's id and client never change, and one made again under the same name has another id,
# which its read shows. What lets a first page be read beside its domain's read.
_KNOWN_DOMAINS: dict[str, tuple[int, int]] = {}
_KNOWN_DOMAINS_MAX = 100_000


def _remember_domain(domain: Domain) -> None:
    if len(_KNOWN_DOMAINS) >= _KNOWN_DOMAINS_MAX:
        _KNOWN_DOMAINS.clear()
    _KNOWN_DOMAINS[domain.name] = (domain.pk, domain.client_id)


def domain_with_address_list(
    *,
    actor: Actor,
    name: str,
    search: str = "",
    type: str = AddressListType.ALL,
    sort: str = AddressListSort.ADDRESS,
    page: int = 1,
    per_page: int | None = None,
    cursor: str | None = None,
) -> tuple[Domain, AddressPage]:
    """`domain_get`, then its `address_list`.

    The whole list's first page (every visit's first request) of a domain this process has
    read before is read with the domain, in one round trip instead of two
    (`compiled.values_together`): for the id the domain had, and kept only once the domain's
    own read has confirmed that id and the actor's access, as every page does; otherwise the
    page read is dropped, unused, and read again (or the request refused) as without it.
    """
    per_page = per_page or settings.POSTDESK_PAGE_SIZE
    stored_name, not_found = _domain_name_of(name)
    known = _KNOWN_DOMAINS.get(stored_name)
    whole_first_page = (
        not (search or "").replace("\0", "").strip()
        and not cursor
        and int(page) <= 1
        and type in AddressListType.values
        and sort in AddressListSort.values
    )
    if known is None or not whole_first_page or actor.user is None or not actor.user.is_active:
        domain = domain_get(actor=actor, name=name)
        return domain, address_list(
            actor=actor,
            domain=domain,
            search=search,
            type=type,
            sort=sort,
            page=page,
            per_page=per_page,
            cursor=cursor,
        )
    found, page_rows = values_together(
        (_DOMAIN_FOR_USER, (), {"name": stored_name, "user_id": actor.user.pk}),
        _first_page_read(type, sort, per_page, known),
    )
    domain = _domain_allowed(actor, _domain_of_role_read(actor, found), not_found)
    if (domain.pk, domain.client_id) != known:
        return domain, address_list(
            actor=actor, domain=domain, type=type, sort=sort, per_page=per_page
        )
    return domain, _Listing(domain, "", type, sort).first_page_of(page_rows, per_page)


_DOMAIN_FIELDS = [field.attname for field in Domain._meta.concrete_fields]
_DOMAIN_FOR_USER = CompiledRead(
    lambda *, name, user_id: with_role_of_user(
        Domain.objects.filter(name=name), user_id, "client_id"
    ).values(*_DOMAIN_FIELDS, *ROLE_READ)[:1],
    prepared=True,
    name="stand-in.invalid",
    user_id=-(2**40) - 3,
)


def _address_get(actor: Actor, email: str, kind: str, not_found: str) -> Address:
    try:
        local_part, domain_name = split_address(email)
    except InvalidInput:
        raise NotFound(not_found, "address") from None
    address = (
        Address.objects.select_related("domain")
        .filter(domain__name=domain_name, local_part=local_part, kind=kind)
        .first()
    )
    if address is None:
        raise NotFound(not_found, "address")
    require_client_access(actor, address.domain.client_id, write=False, not_found_message=not_found)
    return address


def mailbox_get(*, actor: Actor, address: str) -> Mailbox:
    found = _address_get(
        actor, address, AddressKind.MAILBOX, _("No mailbox %(address)s.") % {"address": address}
    )
    mailbox = Mailbox.objects.get(address=found)
    mailbox.address = found
    return mailbox


def forward_get(*, actor: Actor, address: str) -> Forward:
    found = _address_get(
        actor, address, AddressKind.FORWARD, _("No forward %(address)s.") % {"address": address}
    )
    forward = Forward.objects.get(address=found)
    forward.address = found
    return forward


# --- The address list --------------------------------------------------------------------------

# A mailbox at or above this share of its limit is "almost full" in the address list.
NEAR_LIMIT_PERCENT = 90


@dataclass(frozen=True)
class AddressRow:
    """One line of the address list: a mailbox or a standalone forward."""

    address: str
    local_part: str
    type: str
    aliases: list[str]
    destinations: list[str]
    quota_mb: int | None = None
    used_bytes: int | None = None
    eas_enabled: bool = False
    mapi_enabled: bool = False
    delete_after_forwarding: bool = False
    keep_original_sender: bool = False
    # Bytes gained over the last 7 days (negative: shrank), from the usage samples.
    growth_7d_bytes: int | None = None
    # The limit the mail servers enforce, in MiB: the mailbox's quota, or with 0 its plan's
    # storage limit (the plan in force now); None without one (unlimited). Rows read from a
    # mailbox in hand (`mailbox_detail_of`) do not read the plan: there, only the quota.
    limit_mb: int | None = None

    @property
    def usage_percent(self) -> int | None:
        """How much of its limit the mailbox uses, in whole percent (rounded down, so 89.9 %
        is not yet "almost full"); None without a limit."""
        if self.type != AddressKind.MAILBOX or not self.limit_mb:
            return None
        return (self.used_bytes or 0) * 100 // (self.limit_mb * 2**20)

    @property
    def usage_level(self) -> str | None:
        """How full the mailbox is: "full" at or over its limit (the servers refuse new mail),
        "near" from NEAR_LIMIT_PERCENT, "ok" below; None without a limit."""
        percent = self.usage_percent
        if percent is None:
            return None
        if percent >= 100:
            return "full"
        return "near" if percent >= NEAR_LIMIT_PERCENT else "ok"

    def as_dict(self) -> dict:
        return {
            "address": self.address,
            "type": self.type,
            "aliases": self.aliases,
            "destinations": self.destinations,
            "quota_mb": self.quota_mb,
            "used_bytes": self.used_bytes,
            "eas": self.eas_enabled,
            "mapi": self.mapi_enabled,
            "delete_after_forwarding": self.delete_after_forwarding,
            "keep_original_sender": self.keep_original_sender,
            "growth_7d_bytes": self.growth_7d_bytes,
        }


@dataclass(frozen=True)
class AddressPage(Page):
    """A page of the address list. Read from a cursor, its number is unknown (None): the
    page is where the cursor pointed, however many rows came and went before it."""

    rows: list[AddressRow]
    page: int | None
    search: str = ""
    type: str = AddressListType.ALL
    sort: str = AddressListSort.ADDRESS
    # Where the next and the previous page start (None: no such page).
    next_cursor: str | None = None
    previous_cursor: str | None = None

    @property
    def has_next(self) -> bool:
        return self.next_cursor is not None

    @property
    def has_previous(self) -> bool:
        return self.previous_cursor is not None


@dataclass(frozen=True)
class _SearchTerms:
    """A search text as the SQL reads it: how names are matched (part of the SQL's shape)
    and the LIKE patterns (its values), so that a search's SQL is built once per shape
    (`_SEARCH_FOUND`)."""

    # "contains": the name holds the text; "ends": the name ends with the text's part
    # before its "@"; "reversed": the same, read as the reversed name's start (PostgreSQL's
    # index of reversed names, mail migration 0013); "none": no name can match.
    names: str
    name_pattern: str
    destination_pattern: str
    # PostgreSQL reads names and destinations through their trigram indexes (migration
    # 0003) as one set of ids: the text has trigrams to look up.
    trigram: bool


def _search_terms(domain: Domain, text: str) -> _SearchTerms | None:
    """What `text` asks of the domain's names and destinations; None when it matches every
    address of the domain ("@" and the start of the domain's own name): no filter at all.

    An address is built in no SQL: a local part holds no "@", so a text with one matches
    when the local part ends with what precedes it and the domain name starts with what
    follows it. A destination holds the text as it is.
    """
    if not text:
        return None
    escaped = connection.ops.prep_for_like_query
    before, at, after = text.partition("@")
    postgresql = connection.vendor == "postgresql"
    if not at:
        names, name_pattern = "contains", f"%{escaped(text)}%"
    elif "@" in after or not domain.name.startswith(after.lower()):
        names, name_pattern = "none", ""
    elif not before:
        return None
    elif postgresql:
        # Names are stored lowercase: ending with `before` is starting with it reversed.
        names, name_pattern = "reversed", f"{escaped(before.lower()[::-1])}%"
    else:
        names, name_pattern = "ends", f"%{escaped(before)}"
    return _SearchTerms(
        names=names,
        name_pattern=name_pattern,
        destination_pattern=f"%{escaped(text)}%",
        trigram=postgresql and len(text.replace("@", "")) >= 3,
    )


def _name_match(field: str, terms: _SearchTerms) -> Q:
    """The rows whose `field` (a local part) the search's names match."""
    if terms.names == "none":
        return Q(pk__in=[])
    if terms.names == "reversed":
        return Q(Like(Reverse(field), terms.name_pattern))
    return Q(ILike(F(field), terms.name_pattern))


def _search_filter(domain_id: int, terms: _SearchTerms) -> Q:
    """Part of an address, of an alias, or of a forwarding destination.

    The alias and destination matches are uncorrelated subqueries limited to the domain, so
    the database runs each once per search rather than once per address of the domain.
    """
    destination_owners = (
        Destination.objects.filter(
            address__domain_id=domain_id,
            address__kind__in=[AddressKind.MAILBOX, AddressKind.FORWARD],
        )
        .filter(ILike(F("email"), terms.destination_pattern))
        .values("address_id")
    )
    if terms.trigram:
        # One set of ids, each part read through its trigram index (mail migration 0003):
        # an OR with the subqueries makes PostgreSQL test every address of the domain
        # instead (one match at 12,000 rows: 10 ms, against 3 ms for the union). Shorter
        # texts have no trigram to look up: the union would only add its own cost.
        # The names (the rows' own and their aliases') are read in one pass of the trigram
        # index, not two: an alias stands for its mailbox's address.
        named = (
            Address.objects.filter(domain_id=domain_id)
            .filter(_name_match("local_part", terms))
            .annotate(
                owner=Case(
                    When(kind=AddressKind.ALIAS, then=F("alias__mailbox__address_id")),
                    default=F("pk"),
                )
            )
        )
        return Q(pk__in=named.values("owner").order_by().union(destination_owners.order_by()))
    alias_owners = (
        Alias.objects.filter(address__domain_id=domain_id, address__kind=AddressKind.ALIAS)
        .filter(_name_match("address__local_part", terms))
        .values("mailbox__address_id")
    )
    return _name_match("local_part", terms) | Q(pk__in=alias_owners) | Q(pk__in=destination_owners)


def address_list(
    *,
    actor: Actor,
    domain: Domain,
    search: str = "",
    type: str = AddressListType.ALL,
    sort: str = AddressListSort.ADDRESS,
    page: int = 1,
    per_page: int | None = None,
    cursor: str | None = None,
) -> AddressPage:
    """A page of the domain's mailboxes and forwards: one query (two for a search or a page
    by number), whatever the size.

    With a `cursor` (a page's `next_cursor` or `previous_cursor`), or on the first page, the
    page is read from where the cursor points (keyset paging: a few index seeks however far
    into the list); a `page` number past the first is read by offset, as before cursors.
    """
    require_client_access(actor, domain.client_id, write=False)
    per_page = per_page or settings.POSTDESK_PAGE_SIZE
    # No name holds a NUL, and PostgreSQL refuses one in a text: it is dropped.
    search = (search or "").replace("\0", "").strip()
    if type not in AddressListType.values:
        raise InvalidInput("type_invalid", _("Unknown address type filter."), "type")
    if sort not in AddressListSort.values:
        raise InvalidInput("sort_invalid", _("Unknown sort order."), "sort")
    listing = _Listing(domain, search, type, sort, _search_terms(domain, search))
    if cursor:
        position, backward = listing.position_of(cursor)
        return listing.keyset_page(position, backward, per_page)
    if int(page) <= 1:
        return listing.keyset_page(None, False, per_page)
    return listing.offset_page(int(page), per_page)


_CURSOR_SALT = "postdesk.mail.address_list.cursor"
_TOTALS_OF_KIND = {AddressKind.MAILBOX: "mailboxes", AddressKind.FORWARD: "forwards"}


@dataclass(frozen=True)
class _Position:
    """Where a row stands in a sort: its segment (mailboxes with a sort value, then the rows
    without one, by name), its sort value and its name (unique in the domain)."""

    segment: int
    value: int | None
    name: str


@dataclass(frozen=True)
class _Stream:
    """One run of the list in order, which one index gives: the domain's rows of one kind
    (or its mailboxes with or without a sort value), `key` then name. A page is merged from
    the streams, each read from the position on, at most a page each."""

    rows: QuerySet
    segment: int
    key: str | None = None
    descending: bool = False

    def from_position(self, position: _Position | None, backward: bool, limit: int) -> list:
        """Querysets of this stream's address ids past `position` (before it, `backward`),
        each ordered as the index and cut at `limit`: one without a position or in a later
        segment, two in the position's own segment (the ties of its value by name, then
        the values beyond it), none in an earlier one."""
        after = "lt" if backward else "gt"
        if position is not None and self.segment != position.segment:
            ahead = self.segment < position.segment if backward else self.segment > position.segment
            return [self._ordered(self.rows, backward)[:limit]] if ahead else []
        if position is None:
            return [self._ordered(self.rows, backward)[:limit]]
        ties = self.rows.filter(**{f"local_part__{after}": position.name})
        if self.key is None:
            return [self._ordered(ties, backward)[:limit]]
        beyond = ("gt" if backward else "lt") if self.descending else after
        return [
            self._ordered(ties.filter(**{self.key: position.value}), backward)[:limit],
            self._ordered(self.rows.filter(**{f"{self.key}__{beyond}": position.value}), backward)[
                :limit
            ],
        ]

    def _ordered(self, rows: QuerySet, backward: bool) -> QuerySet:
        keys = [] if self.key is None else [(self.key, self.descending)]
        keys.append(("local_part", False))
        order = [
            F(key).desc() if descending != backward else F(key).asc() for key, descending in keys
        ]
        # Each id with what orders it, for the merge (`_merged`) to order and cut the union.
        return rows.order_by(*order).values(
            row_id=F(self.id_field),
            sort_name=F("local_part"),
            sort_value=F(self.key) if self.key else Cast(Value(None), BigIntegerField()),
        )

    @property
    def id_field(self) -> str:
        return "address_id" if self.rows.model is Mailbox else "pk"


def _ordering(sort: str, filtered: bool, backward: bool = False) -> list:
    """Each row's place in the order: by name; or by a mailbox column (forwards, and
    mailboxes without a value, after, by name)."""
    if sort in _MAILBOX_SORTS:
        column, descending = _MAILBOX_SORTS[sort]
        key = F(f"mailbox__{column}")
        if backward:
            keys = [key.asc(nulls_first=True) if descending else key.desc(nulls_first=True)]
        else:
            keys = [key.desc(nulls_last=True) if descending else key.asc(nulls_last=True)]
    else:
        keys = []
    # A search orders by lower(local_part), the same order (names are stored lowercase): no
    # index gives it, so the database finds every match once, then sorts the few, rather
    # than walking the domain's names in order to test each against the search.
    name = Lower("local_part") if filtered else F("local_part")
    return [*keys, name.desc() if backward else name.asc()]


_KINDS_OF_TYPE = {
    AddressListType.ALL: [AddressKind.MAILBOX, AddressKind.FORWARD],
    AddressListType.MAILBOX: [AddressKind.MAILBOX],
    AddressListType.FORWARD: [AddressKind.FORWARD],
}


class _Listing:
    """The address list of one domain in one filter and sort: its pages, its cursors."""

    def __init__(
        self,
        domain: Domain,
        search: str,
        type: str,
        sort: str,
        terms: _SearchTerms | None = None,
    ) -> None:
        """`terms`: the search as the SQL reads it (`_search_terms(domain, search)`), None
        for the whole list."""
        self.domain, self.search, self.type, self.sort = domain, search, type, sort
        self.terms = terms
        self.kinds = _KINDS_OF_TYPE[type]

    @cached_property
    def queryset(self) -> QuerySet[Address]:
        """The list's rows as a queryset: built only when read (a first page runs compiled
        SQL, and building a search's filter costs Django a millisecond)."""
        rows = Address.objects.filter(domain=self.domain, kind__in=self.kinds)
        if self.terms is not None:
            rows = rows.filter(_search_filter(self.domain.pk, self.terms))
        return rows

    @property
    def filtered(self) -> bool:
        return self.terms is not None

    def ordering(self, backward: bool = False) -> list:
        return _ordering(self.sort, self.filtered, backward)

    def position_of_row(self, row: AddressRow) -> _Position:
        if self.sort in _MAILBOX_SORTS and row.type == AddressKind.MAILBOX:
            value = getattr(row, _MAILBOX_SORTS[self.sort][0])
            if value is not None:
                return _Position(0, value, row.local_part)
        return _Position(1 if self.sort in _MAILBOX_SORTS else 0, None, row.local_part)

    def cursor(self, row: AddressRow, backward: bool) -> str:
        """A row's place, signed with the list it belongs to (domain, search, type, sort)."""
        position = self.position_of_row(row)
        return signing.dumps(
            {
                "list": [self.domain.pk, self.search, self.type, self.sort],
                "at": [position.segment, position.value, position.name],
                "back": backward,
            },
            salt=_CURSOR_SALT,
            compress=True,
        )

    def position_of(self, cursor: str) -> tuple[_Position, bool]:
        """The position a cursor points to. One of another list (another domain, whatever
        the client, or another search, type or sort) or altered is refused: a cursor never
        reads rows outside the list it was given with."""
        invalid = InvalidInput(
            "cursor_invalid",
            _("This page link is no longer valid: open the list again."),
            "cursor",
        )
        try:
            found = signing.loads(cursor, salt=_CURSOR_SALT)
            segment, value, name = found["at"]
            backward = bool(found["back"])
            same_list = found["list"] == [self.domain.pk, self.search, self.type, self.sort]
        except (signing.BadSignature, KeyError, TypeError, ValueError):
            raise invalid from None
        if not same_list:
            raise invalid
        return _Position(int(segment), value, str(name)), backward

    def streams(self) -> list[_Stream]:
        """The runs of the order, each read off an index (see `_Stream`)."""
        named = [
            _Stream(Address.objects.filter(domain=self.domain, kind=kind), segment=0)
            for kind in self.kinds
        ]
        if self.sort not in _MAILBOX_SORTS:
            return named
        column, descending = _MAILBOX_SORTS[self.sort]
        mailboxes = Mailbox.objects.filter(domain=self.domain)
        streams = []
        if AddressKind.MAILBOX in self.kinds:
            streams += [
                _Stream(mailboxes.filter(**{f"{column}__isnull": False}), 0, column, descending),
                _Stream(mailboxes.filter(**{f"{column}__isnull": True}), 1),
            ]
        if AddressKind.FORWARD in self.kinds:
            streams.append(
                _Stream(Address.objects.filter(domain=self.domain, kind=AddressKind.FORWARD), 1)
            )
        return streams

    def keyset_page(self, position: _Position | None, backward: bool, per_page: int) -> AddressPage:
        """The page after `position` (before it, `backward`), or the first: one query (two
        for a search: its matches, then their rows)."""
        limit = per_page + 1  # one more row says whether another page follows
        if self.terms is None and position is None:
            # The whole list's first page, which every visit opens: SQL compiled once.
            read, shape, values = _first_page_read(
                self.type, self.sort, per_page, (self.domain.pk, self.domain.client_id)
            )
            return self.first_page_of(read.values(*shape, **values), per_page)
        if self.terms is not None and position is None:
            # A search's first page: the matches are found once, the page's ids with the
            # number of all matches beside them (a window count), then the page's rows; both
            # from SQL compiled once per shape of search (`_SEARCH_FOUND`, `_FOUND_ROWS`).
            terms = self.terms
            found = _SEARCH_FOUND.values(
                self.type,
                self.sort,
                limit,
                terms.names,
                terms.trigram,
                domain_id=self.domain.pk,
                name_pattern=terms.name_pattern,
                destination_pattern=terms.destination_pattern,
            )
            total = found[0]["matched"] if found else 0
            found_rows = (
                _FOUND_ROWS.values(
                    self.sort,
                    client_id=self.domain.client_id,
                    at=timezone.now(),
                    ids=[row["pk"] for row in found],
                )
                if found
                else []
            )
            rows = _rows_of(self.domain, found_rows)
        elif self.filtered:
            total = self.queryset.count()
            candidates = self.queryset.filter(self._past(position, backward))
            rows = _rows(self.domain, candidates.order_by(*self.ordering(backward)), limit=limit)
        else:
            # The whole list: its rows with its total beside them, in one query.
            page_rows = list(self.whole_list_values(position, backward, limit, timezone.now()))
            rows = _rows_of(self.domain, page_rows)
            # PostgreSQL sums integers as a numeric: Python's int, as the API shows it. No
            # row came: the total came with none, read it alone.
            total = int(page_rows[0]["list_total"]) if page_rows else self._total()
        more, rows = len(rows) > per_page, rows[:per_page]
        if backward:
            rows.reverse()
        has_next = position is not None if backward else more
        has_previous = more if backward else position is not None
        return self._page(rows, total, None if position else 1, per_page, has_next, has_previous)

    def first_page_of(self, page_rows: list[dict], per_page: int) -> AddressPage:
        """The whole list's first page from the values `_FIRST_PAGE` read (a page and one
        row more, each with the list's total)."""
        rows = _rows_of(self.domain, page_rows)
        # PostgreSQL sums integers as a numeric: Python's int, as the API shows it. No row
        # came: the total came with none, read it alone.
        total = int(page_rows[0]["list_total"]) if page_rows else self._total()
        more, rows = len(rows) > per_page, rows[:per_page]
        return self._page(rows, total, 1, per_page, more, False)

    def whole_list_values(
        self, position: _Position | None, backward: bool, limit: int, at: datetime
    ) -> QuerySet:
        """The values of the unfiltered list's rows after `position` (before it, `backward`),
        each with the list's total: the page's ids merged from the streams (`_Stream`)."""
        branches = [
            ids
            for stream in self.streams()
            for ids in stream.from_position(position, backward, limit)
        ]
        candidates = (
            Address.objects.filter(pk__in=_merged(branches, self.sort, backward, limit))
            if branches
            else Address.objects.none()
        )
        ordered = candidates.order_by(*self.ordering(backward))
        # Our own constant SQL (`_total_sql`), its one parameter kept apart.
        total = RawSQL(*self._total_sql())  # noqa: S611
        return _row_values(self.domain.client_id, ordered, at, list_total=total)[:limit]

    def offset_page(self, page: int, per_page: int) -> AddressPage:
        """Page `page` by offset (past the end: the last), for links made before cursors."""
        total = self.queryset.count() if self.filtered else self._total()
        page = page_within(min(page, _MAX_LISTED // per_page), total, per_page)
        start = (page - 1) * per_page
        # A deferred join: the database orders and cuts the page on the narrow columns alone,
        # then reads the other columns for the page's rows only.
        page_ids = self.queryset.order_by(*self.ordering()).values("pk")[start : start + per_page]
        if self.sort in (AddressListSort.STORAGE, AddressListSort.STORAGE_ASC):
            page_ids = _covering_storage(page_ids)
        rows = _rows(
            self.domain, Address.objects.filter(pk__in=page_ids).order_by(*self.ordering())
        )
        return self._page(rows, total, page, per_page, page < page_count(total, per_page), page > 1)

    def _page(
        self,
        rows: list[AddressRow],
        total: int,
        page: int | None,
        per_page: int,
        has_next: bool,
        has_previous: bool,
    ) -> AddressPage:
        return AddressPage(
            rows=rows,
            total=total,
            page=page,
            per_page=per_page,
            search=self.search,
            type=self.type,
            sort=self.sort,
            next_cursor=self.cursor(rows[-1], backward=False) if has_next and rows else None,
            previous_cursor=self.cursor(rows[0], backward=True) if has_previous and rows else None,
        )

    def _total(self) -> int:
        """The unfiltered list's length from the domain's totals (the sum of its few change
        rows, appended by triggers: mail migration 0009), not by counting the domain's rows."""
        sql, params = self._total_sql()
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT {sql}", params)
            return int(cursor.fetchone()[0])

    def _total_sql(self) -> tuple[str, list]:
        """`_total` as a scalar subquery, for a page to read along with its rows."""
        counted = " + ".join(f'COALESCE(SUM("{_TOTALS_OF_KIND[kind]}"), 0)' for kind in self.kinds)
        return (
            f'(SELECT {counted} FROM "{DomainTotalsChange._meta.db_table}" '  # noqa: S608
            "WHERE domain_id = %s)",
            [self.domain.pk],
        )

    def _past(self, position: _Position, backward: bool) -> Q:
        """The rows after `position` in the order (before it, `backward`), as one filter: a
        search's matches are few enough to be sorted whole."""
        after = "lt" if backward else "gt"
        if self.sort not in _MAILBOX_SORTS:
            return Q(**{f"local_part__{after}": position.name})
        column, descending = _MAILBOX_SORTS[self.sort]
        key = f"mailbox__{column}"
        if position.segment == 1:  # among the rows without a value, by name
            named = Q(**{f"{key}__isnull": True, f"local_part__{after}": position.name})
            return Q(**{f"{key}__isnull": False}) | named if backward else named
        beyond = ("gt" if backward else "lt") if descending else after
        past = Q(**{f"{key}__{beyond}": position.value}) | Q(
            **{key: position.value, f"local_part__{after}": position.name}
        )
        return past if backward else past | Q(**{f"{key}__isnull": True})


def _first_page_values(
    type: str, sort: str, limit: int, *, domain_id: int, client_id: int, at: datetime
) -> QuerySet:
    stand_in = Domain(pk=domain_id, client_id=client_id)
    return _Listing(stand_in, "", type, sort).whole_list_values(None, False, limit, at)


# The first page of a domain's whole list in each type and sort, compiled once (compiled.py):
# stand-ins no domain, client or plan change ever has.
_FIRST_PAGE = CompiledRead(
    _first_page_values,
    prepared=True,
    domain_id=-(2**40) - 1,
    client_id=-(2**40) - 2,
    at=datetime(1901, 1, 1, tzinfo=UTC),
)


def _first_page_read(
    type: str, sort: str, per_page: int, domain: tuple[int, int]
) -> tuple[CompiledRead, tuple, dict]:
    """The whole list's first page of the domain (its id, its client's) as a compiled read,
    its shape and its values: a page and one row more, each with the list's total."""
    domain_id, client_id = domain
    values = {"domain_id": domain_id, "client_id": client_id, "at": timezone.now()}
    return _FIRST_PAGE, (type, sort, per_page + 1), values


def _search_found_values(
    type: str,
    sort: str,
    limit: int,
    names: str,
    trigram: bool,
    *,
    domain_id: int,
    name_pattern: str,
    destination_pattern: str,
) -> QuerySet:
    """A search's first page of matches: their ids in the list's order, each with the
    number of all matches (a window count)."""
    terms = _SearchTerms(names, name_pattern, destination_pattern, trigram)
    listing = _Listing(Domain(pk=domain_id), "", type, sort, terms)
    return (
        listing.queryset.annotate(matched=Window(Count("pk")))
        .order_by(*listing.ordering())
        .values("pk", "matched")[:limit]
    )


def _found_rows_values(sort: str, *, client_id: int, at: datetime, ids: list[int]) -> QuerySet:
    """The rows of a search's matches `ids`, in the list's order."""
    ordered = Address.objects.filter(pk__in=values_in(ids, connection.vendor)).order_by(
        *_ordering(sort, filtered=True)
    )
    return _row_values(client_id, ordered, at)


# A search's first page, its matches then their rows, compiled once per shape of search, its
# patterns stand-ins no search makes (a LIKE pattern with a NUL never reaches the database).
_SEARCH_FOUND = CompiledRead(
    _search_found_values,
    optional=frozenset({"name_pattern"}),
    domain_id=-(2**40) - 1,
    name_pattern="\0name pattern",
    destination_pattern="\0destination pattern",
)
_FOUND_ROWS = CompiledRead(
    _found_rows_values,
    prepared=True,
    client_id=-(2**40) - 2,
    at=datetime(1901, 1, 1, tzinfo=UTC),
    ids=[-(2**40) - 3],
)


def _merged(branches: list[QuerySet], sort: str, backward: bool, limit: int) -> RawSQL:
    """The ids of the `limit` first rows of every branch (each ordered and cut by its index)
    together, in the list's order (`_ordering`, here on the branches' `sort_value` and
    `sort_name`): a page's rows are then read for those ids alone, not for every branch's.

    Each branch is wrapped as a derived table: SQLite allows no ORDER BY or LIMIT in a
    compound's parts, so Django's `union` refuses them; and an OR of one IN per branch makes
    PostgreSQL test every address of the table against each (85 ms at 100,000 mailboxes,
    against the union's few)."""
    parts, params = [], []
    for number, branch in enumerate(branches):
        sql, branch_params = branch.query.sql_with_params()
        parts.append(f"SELECT * FROM ({sql}) AS branch{number}")  # noqa: S608 (Django's SQL)
        params.extend(branch_params)
    name = "sort_name DESC" if backward else "sort_name ASC"
    order = [name]
    if sort in _MAILBOX_SORTS:
        descending = _MAILBOX_SORTS[sort][1]
        if backward:
            value = "ASC NULLS FIRST" if descending else "DESC NULLS FIRST"
        else:
            value = "DESC NULLS LAST" if descending else "ASC NULLS LAST"
        order.insert(0, f"sort_value {value}")
    union = " UNION ALL ".join(parts)
    # Django's own SQL, its parameters still kept apart; the rest is constant.
    return RawSQL(  # noqa: S611
        f"SELECT row_id FROM ({union}) AS merged ORDER BY {', '.join(order)} LIMIT {int(limit)}",  # noqa: S608
        params,
    )


# The sorts by a mailbox column (column, descending), ties by name: mailboxes first, then
# forwards. An index of the mailboxes gives each order (`mail_mailbox_storage_idx`,
# `mail_mailbox_storage_asc_idx`, `mail_mailbox_growth_idx`).
_MAILBOX_SORTS = {
    AddressListSort.STORAGE: ("used_bytes", True),
    AddressListSort.STORAGE_ASC: ("used_bytes", False),
    AddressListSort.GROWTH: ("growth_7d_bytes", True),
}


_MAX_LISTED = 10**9
_MAILBOX_JOIN = f'LEFT OUTER JOIN "{Mailbox._meta.db_table}" ON'
_MAILBOX_JOIN_HINTED = _MAILBOX_JOIN.replace(" ON", " INDEXED BY mail_mailbox_usage_idx ON")


def _covering_storage(page_ids: QuerySet) -> QuerySet | RawSQL:
    """On SQLite, the page's ids sorted by storage read through the covering
    `mail_mailbox_usage_idx` (SQLite without statistics prefers the unique index on
    `address_id`, then fetches every mailbox row): one index seek per row instead of a seek
    and a row fetch, 2.4 times less at 10,000 mailboxes. Other databases, and any query that
    does not join the mailboxes, are left as they are."""
    if connection.vendor != "sqlite":
        return page_ids
    sql, params = page_ids.query.sql_with_params()
    if sql.count(_MAILBOX_JOIN) != 1:
        return page_ids
    # Django's own SQL, its parameters still kept apart.
    return RawSQL(sql.replace(_MAILBOX_JOIN, _MAILBOX_JOIN_HINTED), params)  # noqa: S611


def _rows(domain: Domain, ordered: QuerySet[Address], limit: int | None = None) -> list[AddressRow]:
    """The rows of an ordered address queryset (a page's ids, or one address): one query."""
    values = _row_values(domain.client_id, ordered, timezone.now())
    return _rows_of(domain, list(values[:limit]))


def _row_values(
    client_id: int, ordered: QuerySet[Address], at: datetime, **also: RawSQL
) -> QuerySet:
    """What the rows of `ordered` show, as values: `_rows_of` makes them rows.

    Plain values, not model instances: a page is 50 rows of a dozen columns, and building
    Address/Mailbox objects plus Django's prefetch machinery cost more than the SQL itself.
    The plan's storage limit (at `at`) rides along (a subquery run once), and so do each
    row's aliases and destinations (two correlated subqueries, one index lookup a row each):
    one round trip to the database, and one query for Django to build, instead of three.
    """
    return ordered.annotate(
        plan_limit_mb=plan_storage_limit_mb(client_id, at),
        alias_names=RawSQL(_ALIAS_NAMES_SQL[connection.vendor], ()),  # noqa: S611 (constant)
        destination_list=RawSQL(_DESTINATIONS_SQL[connection.vendor], ()),  # noqa: S611
        **also,
    ).values(*_ROW_FIELDS, "plan_limit_mb", "alias_names", "destination_list", *also)


def _rows_of(domain: Domain, page_rows: list[dict]) -> list[AddressRow]:
    """The rows of `_row_values`' values."""
    aliases: dict[int, list[str]] = {}
    destinations: dict[int, list[str]] = {}
    for row in page_rows:
        names = _json_list(row["alias_names"])
        if names:
            aliases[row["mailbox__id"]] = [f"{name}@{domain.name}" for name in sorted(names)]
        pairs = _json_list(row["destination_list"])
        if pairs:
            destinations[row["id"]] = [email for _position, email in sorted(pairs)]
    return [_row(domain, r, aliases, destinations) for r in page_rows]


def _json_list(value: list | str | None) -> list:
    """A JSON array from the database: already decoded (psycopg decodes `json`), a string
    (SQLite's JSON functions return text), or NULL (PostgreSQL's json_agg of no row)."""
    if value is None:
        return []
    return json.loads(value) if isinstance(value, str) else value


# A row's aliases (their local parts) and destinations ([position, email] pairs) as JSON arrays,
# beside the row: correlated to the outer query's "mail_mailbox" and "mail_address", the names
# Django gives the address list's read (`_rows`). Unordered (SQLite 3.40 has no ORDER BY in an
# aggregate): `_rows` sorts the few of each row.
_ALIAS_NAMES_SQL = {
    "postgresql": (
        'SELECT json_agg(alias_address.local_part) FROM "mail_alias" AS alias '
        'JOIN "mail_address" AS alias_address ON alias_address.id = alias.address_id '
        'WHERE alias.mailbox_id = "mail_mailbox"."id"'
    ),
    "sqlite": (
        'SELECT json_group_array(alias_address.local_part) FROM "mail_alias" AS alias '
        'JOIN "mail_address" AS alias_address ON alias_address.id = alias.address_id '
        'WHERE alias.mailbox_id = "mail_mailbox"."id"'
    ),
}
_DESTINATIONS_SQL = {
    "postgresql": (
        "SELECT json_agg(json_build_array(destination.position, destination.email)) "
        'FROM "mail_destination" AS destination '
        'WHERE destination.address_id = "mail_address"."id"'
    ),
    "sqlite": (
        "SELECT json_group_array(json_array(destination.position, destination.email)) "
        'FROM "mail_destination" AS destination '
        'WHERE destination.address_id = "mail_address"."id"'
    ),
}


def _rows_of_values(domain: Domain, page_rows: list[dict]) -> list[AddressRow]:
    """The rows of `_ROW_FIELDS` values already read (a mailbox or forward in hand): their
    aliases and destinations, two queries (one for a forward)."""
    mailbox_ids = [r["mailbox__id"] for r in page_rows if r["mailbox__id"] is not None]
    aliases: dict[int, list[str]] = {}
    if mailbox_ids:  # a forward needs no alias query
        for mailbox_id, local_part in (
            Alias.objects.filter(mailbox_id__in=mailbox_ids)
            .order_by("address__local_part")
            .values_list("mailbox_id", "address__local_part")
        ):
            aliases.setdefault(mailbox_id, []).append(f"{local_part}@{domain.name}")
    destinations: dict[int, list[str]] = {}
    for address_id, email in (
        Destination.objects.filter(address_id__in=[r["id"] for r in page_rows])
        .order_by("position")
        .values_list("address_id", "email")
    ):
        destinations.setdefault(address_id, []).append(email)
    return [_row(domain, r, aliases, destinations) for r in page_rows]


_ROW_FIELDS = (
    "id",
    "local_part",
    "kind",
    "mailbox__id",
    "mailbox__quota_mb",
    "mailbox__used_bytes",
    "mailbox__eas_enabled",
    "mailbox__mapi_enabled",
    "mailbox__delete_after_forwarding",
    "mailbox__keep_original_sender",
    "mailbox__growth_7d_bytes",
)


def _values_of(mailbox: Mailbox) -> dict:
    """A mailbox in hand (its address loaded) as the `_ROW_FIELDS` values the list reads, so
    that one `_row` renders it without reading it again."""
    address = mailbox.address
    return {
        field: (
            getattr(mailbox, field.removeprefix("mailbox__"))
            if field.startswith("mailbox__")
            else getattr(address, field)
        )
        for field in _ROW_FIELDS
    }


def _row(
    domain: Domain,
    row: dict,
    aliases: dict[int, list[str]],
    destinations: dict[int, list[str]],
) -> AddressRow:
    email = f"{row['local_part']}@{domain.name}"
    if row["kind"] == AddressKind.FORWARD:
        return AddressRow(
            address=email,
            local_part=row["local_part"],
            type=AddressKind.FORWARD,
            aliases=[],
            destinations=destinations.get(row["id"], []),
        )
    return AddressRow(
        address=email,
        local_part=row["local_part"],
        type=AddressKind.MAILBOX,
        aliases=aliases.get(row["mailbox__id"], []),
        destinations=destinations.get(row["id"], []),
        quota_mb=row["mailbox__quota_mb"],
        used_bytes=row["mailbox__used_bytes"],
        eas_enabled=row["mailbox__eas_enabled"],
        mapi_enabled=row["mailbox__mapi_enabled"],
        delete_after_forwarding=row["mailbox__delete_after_forwarding"],
        keep_original_sender=row["mailbox__keep_original_sender"],
        growth_7d_bytes=row["mailbox__growth_7d_bytes"],
        limit_mb=row["mailbox__quota_mb"] or row.get("plan_limit_mb") or None,
    )


# --- The dashboard -----------------------------------------------------------------------------


@dataclass(frozen=True)
class DomainSummary:
    """The dashboard's usage statistics of one domain."""

    used_bytes: int
    mailboxes: int
    aliases: int
    forwards: int
    eas_accounts: int
    mapi_accounts: int
    # When the usage collector last measured a mailbox of the domain (None: never).
    used_measured_at: datetime | None = None


def domain_summary(*, actor: Actor, domain: Domain) -> DomainSummary:
    """Disk used and the counts of the dashboard: the sum of the domain's totals changes (a
    few rows, appended by triggers in every write's transaction: mail migration 0009),
    whatever the size, and its latest usage measure, in one query."""
    require_client_access(actor, domain.client_id, write=False)
    # None: the domain was deleted meanwhile.
    found = Domain.objects.filter(pk=domain.pk).values(**domain_summary_columns()).first()
    return domain_summary_of(found or {})


def domain_summary_columns() -> dict[str, Subquery]:
    """DomainSummary's fields as columns of a read of domains, each a subquery of the row's
    domain: `domain_summary` reads them alone, the dashboard along its other values
    (dns.selectors.domain_overview). Give what was read to `domain_summary_of`."""
    changes = DomainTotalsChange.objects.filter(domain=OuterRef("pk")).values("domain")
    last_measure = (
        Mailbox.objects.filter(domain=OuterRef("pk"), used_measured_at__isnull=False)
        .order_by("-used_measured_at")
        .values("used_measured_at")[:1]
    )
    return {
        **{
            field: Subquery(changes.annotate(total=Sum(field)).values("total"))
            for field in DomainTotalsChange.SUMMED
        },
        "used_measured_at": Subquery(last_measure),
    }


def domain_summary_of(values: dict) -> DomainSummary:
    """The summary from the values `domain_summary_columns` read (none: no change yet)."""
    return DomainSummary(
        **{field: int(values.get(field) or 0) for field in DomainTotalsChange.SUMMED},
        used_measured_at=values.get("used_measured_at"),
    )


def address_detail(*, actor: Actor, address: str, type: str) -> AddressRow:
    """One mailbox or forward as the address list shows it, for its edit page."""
    if type == AddressKind.MAILBOX:
        not_found = _("No mailbox %(address)s.") % {"address": address}
    else:
        not_found = _("No forward %(address)s.") % {"address": address}
    found = _address_get(actor, address, type, not_found)
    rows = _rows(found.domain, Address.objects.filter(pk=found.pk))
    if not rows:  # deleted between the two reads
        raise NotFound(not_found, "address")
    return rows[0]


@dataclass(frozen=True)
class MailboxDetail:
    """One mailbox as every interface shows it: the mailbox (its address and domain loaded)
    and its row as the address list shows it. The web edit page, its form's initial values
    and the API's mailbox all read this, so a mailbox is rendered from one read."""

    mailbox: Mailbox
    row: AddressRow

    @property
    def domain(self) -> Domain:
        return self.mailbox.address.domain


def mailbox_detail(*, actor: Actor, address: str) -> MailboxDetail:
    """One mailbox by its address: one lookup and one access check, then its aliases and
    destinations."""
    not_found = _("No mailbox %(address)s.") % {"address": address}
    found = _address_get(actor, address, AddressKind.MAILBOX, not_found)
    mailbox = Mailbox.objects.filter(address=found).first()
    if mailbox is None:  # deleted between the reads
        raise NotFound(not_found, "address")
    mailbox.address = found
    return mailbox_detail_of(actor=actor, mailbox=mailbox)


def mailbox_detail_of(*, actor: Actor, mailbox: Mailbox) -> MailboxDetail:
    """A mailbox already in hand (its address and domain loaded: from `mailbox_get` or a
    service's return) as `mailbox_detail` shows it. Its columns are read off the instance, so
    only its aliases and destinations are queried; the access check reuses the role the
    actor's earlier lookup cached."""
    domain = mailbox.address.domain
    require_client_access(actor, domain.client_id, write=False)
    return MailboxDetail(mailbox, _rows_of_values(domain, [_values_of(mailbox)])[0])


@dataclass(frozen=True)
class ForwardDetail:
    """One standalone forward as every interface shows it: the forward and its row as the
    address list shows it (the API's forward and the web's forward page read this)."""

    forward: Forward
    row: AddressRow


def forward_detail_of(*, actor: Actor, forward: Forward) -> ForwardDetail:
    """A forward in hand (its address and domain loaded: from `forward_get` or a service's
    return): its destinations are the one query."""
    address = forward.address
    require_client_access(actor, address.domain.client_id, write=False)
    values = {
        field: None if field.startswith("mailbox__") else getattr(address, field)
        for field in _ROW_FIELDS
    }
    return ForwardDetail(forward, _rows_of_values(address.domain, [values])[0])


def client_addresses_among(client_id: int, emails: Iterable[str]) -> QuerySet[Address]:
    """The client's live addresses (mailboxes, aliases, forwards) among `emails`, in one
    query: matched by local part and domain name apart, so the caller keeps those whose
    whole address is one of `emails` (a system read: the caller checked access)."""
    parts = [email.rpartition("@") for email in emails]
    return Address.objects.filter(
        domain__client_id=client_id,
        local_part__in={local for local, _at, _name in parts},
        domain__name__in={name for _local, _at, name in parts},
    ).exclude(kind=AddressKind.RELEASED)


def destinations_missing(*, actor: Actor, domain: Domain, destinations: list[str]) -> list[str]:
    """The destinations in the client's own domains that no address answers yet: worth a
    warning, not an error (the customer may be about to create it). At most two queries."""
    require_client_access(actor, domain.client_id, write=False)
    own = set(
        Domain.objects.filter(
            client_id=domain.client_id, name__in={d.rpartition("@")[2] for d in destinations}
        ).values_list("name", flat=True)
    )
    ours = [d for d in destinations if d.rpartition("@")[2] in own]
    if not ours:
        return []
    existing = {
        f"{local}@{name}"
        for local, name in client_addresses_among(domain.client_id, ours).values_list(
            "local_part", "domain__name"
        )
    }
    return [d for d in ours if d not in existing]


# --- What the mail servers have not applied yet --------------------------------------------------

_PENDING = [TaskResultStatus.READY, TaskResultStatus.RUNNING]


def mailbox_changes_pending(mailbox: Mailbox) -> bool:
    """True while a disconnection after this mailbox's password change is still queued.

    Never while no mail server is connected: there is no session to disconnect, the new
    password already holds, and the operator is told once that mail servers are missing
    (`postdesk serve`, `postdesk jobs list`) rather than each mailbox saying "pending" forever.
    """
    if not provisioner.connected():
        return False
    return DBTaskResult.objects.filter(
        task_path=mailbox_sessions_kick.module_path,
        status__in=_PENDING,
        args_kwargs__args__0=mailbox.address.email,
    ).exists()


def mailbox_created_since(moment: datetime) -> bool:
    """Whether a mailbox was created after `moment` (a system read: no actor). One index
    seek: the newest mailbox is the one with the highest key."""
    newest = Mailbox.objects.order_by("-pk").values_list("created_at", flat=True).first()
    return newest is not None and newest > moment


def mailboxes_by_address(*, home: str | None = None) -> dict[str, Mailbox]:
    """Every mailbox of every client whose home is the host named `home` (None: those
    without a home, every mailbox of a single-host install), by address, for the usage
    collector (a system read: no actor). Only what matching and recording read is loaded:
    converting the rows' other columns (hashes, times, UUIDs) made loading the mailboxes cost
    as much as recording them.
    """
    at_home = Q(home__name=home) if home else Q(home__isnull=True)
    loaded = (
        Mailbox.objects.filter(at_home)
        .select_related("address__domain")
        .only("address__local_part", "address__domain__name")
    )
    return {m.address.email: m for m in loaded.iterator()}

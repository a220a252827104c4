"""Every read that pages, the API and the CLI share.

Each selector checks that the actor may see what it returns, and runs a fixed number of
queries whatever the number of rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.db import connection
from django.db.models import (
    Count,
    F,
    Q,
    QuerySet,
    Window,
)
from django.db.models.expressions import RawSQL
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _
from django_tasks.base import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from postdesk.billing.selectors import plan_storage_limit_mb
from postdesk.dataplane import provisioner
from postdesk.errors import InvalidInput, NotFound
from postdesk.paging import Page, page_count, page_of, page_within
from postdesk.tenancy.access import Actor, require_client_access, visible_clients_filter

from .addresses import normalize_domain_name, split_address
from .choices import AddressKind, AddressListSort, AddressListType
from .models import Address, Alias, Destination, Domain, Forward, Mailbox
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
    not_found = _("No domain %(domain)s in your account.") % {"domain": name}
    try:
        stored_name = normalize_domain_name(name)
    except InvalidInput:
        raise NotFound(not_found, "domain") from None
    domain = Domain.objects.filter(name=stored_name).first()
    if domain is None:
        raise NotFound(not_found, "domain")
    require_client_access(actor, domain.client_id, write=False, not_found_message=not_found)
    return domain


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
    rows: list[AddressRow]
    search: str = ""
    type: str = AddressListType.ALL
    sort: str = AddressListSort.ADDRESS


def _contains(field: str, domain: Domain, text: str) -> Q:
    """Rows whose `field`@domain contains `text`, without building that address in SQL.

    A local part holds no "@": a text with one "@" matches when the local part ends with
    what precedes it and the domain name starts with what follows it.
    """
    before, at, after = text.partition("@")
    if not at:
        return Q(**{f"{field}__icontains": text})
    if "@" in after or not domain.name.startswith(after.lower()):
        return Q(pk__in=[])
    return Q(**{f"{field}__iendswith": before})


def _matches_everything(domain: Domain, text: str) -> bool:
    """Whether `text` is "@" and the start of the domain's own name, which every address of
    the domain matches (see `_contains`): the list is then read unfiltered."""
    before, at, after = text.partition("@")
    return bool(at) and not before and "@" not in after and domain.name.startswith(after.lower())


def _search_filter(domain: Domain, text: str) -> Q:
    """Part of an address, of an alias, or of a forwarding destination.

    The alias and destination matches are uncorrelated subqueries limited to the domain, so
    the database runs each once per search rather than once per address of the domain.
    """
    alias_owners = (
        Alias.objects.filter(address__domain=domain, address__kind=AddressKind.ALIAS)
        .filter(_contains("address__local_part", domain, text))
        .values("mailbox__address_id")
    )
    destination_owners = Destination.objects.filter(
        address__domain=domain,
        address__kind__in=[AddressKind.MAILBOX, AddressKind.FORWARD],
        email__icontains=text,
    ).values("address_id")
    if connection.vendor == "postgresql" and len(text.replace("@", "")) >= 3:
        # One set of ids, each part read through its trigram index (mail migration 0003):
        # an OR with the subqueries makes PostgreSQL test every address of the domain
        # instead (one match at 12,000 rows: 10 ms, against 3 ms for the union). Shorter
        # texts have no trigram to look up: the union would only add its own cost.
        own = Address.objects.filter(domain=domain).filter(_contains("local_part", domain, text))
        return Q(
            pk__in=own.values("pk")
            .order_by()
            .union(alias_owners.order_by(), destination_owners.order_by())
        )
    return (
        _contains("local_part", domain, text)
        | Q(pk__in=alias_owners)
        | Q(pk__in=destination_owners)
    )


def address_list(
    *,
    actor: Actor,
    domain: Domain,
    search: str = "",
    type: str = AddressListType.ALL,
    sort: str = AddressListSort.ADDRESS,
    page: int = 1,
    per_page: int | None = None,
) -> AddressPage:
    """A page of the domain's mailboxes and forwards: four queries, whatever the size."""
    require_client_access(actor, domain.client_id, write=False)
    per_page = per_page or settings.POSTDESK_PAGE_SIZE
    search = (search or "").strip()
    if type not in AddressListType.values:
        raise InvalidInput("type_invalid", _("Unknown address type filter."), "type")
    if sort not in AddressListSort.values:
        raise InvalidInput("sort_invalid", _("Unknown sort order."), "sort")

    kinds = {
        AddressListType.ALL: [AddressKind.MAILBOX, AddressKind.FORWARD],
        AddressListType.MAILBOX: [AddressKind.MAILBOX],
        AddressListType.FORWARD: [AddressKind.FORWARD],
    }[type]
    if sort in _MAILBOX_SORTS:
        column, descending = _MAILBOX_SORTS[sort]
        key = F(f"mailbox__{column}")
        # Forwards have no mailbox: last, by name.
        ordering = [key.desc(nulls_last=True) if descending else key.asc(nulls_last=True)]
        ordering.append("local_part")
    else:
        ordering = ["local_part"]

    queryset = Address.objects.filter(domain=domain, kind__in=kinds)
    filtered = bool(search) and not _matches_everything(domain, search)
    if filtered:
        # A text inside a name can use no B-tree index: the filter reads the domain's names,
        # aliases and destinations. Evaluate it once, the page's ids with the number of all
        # matches beside them (a window count), rather than once to count and again for the
        # page; the rows themselves are read after, for the page's ids only.
        matches = queryset.filter(_search_filter(domain, search))
        # By lower(local_part), the same order (names are stored lowercase): otherwise SQLite
        # walks the (domain, local_part) index for its order and fetches every address row
        # to test its kind, where the (domain, kind, local_part) index answers alone.
        by_key = [Lower("local_part") if key == "local_part" else key for key in ordering]
        counted = (
            matches.annotate(matched=Window(Count("pk")))
            .order_by(*by_key)
            .values_list("pk", "matched")
        )
        # Any page past the end is read as the last one: the offset is bounded so that SQL
        # integers cannot overflow (no domain holds a billion addresses).
        page = max(1, min(int(page), _MAX_LISTED // per_page))
        found = list(counted[(page - 1) * per_page : page * per_page])
        if not found and page > 1:  # past the end (a stale link): the last page, two more
            page = page_count(matches.count(), per_page)
            found = list(counted[(page - 1) * per_page : page * per_page])
        total = found[0][1] if found else 0
        page_ids = [pk for pk, _matched in found]
        rows = _rows(domain, Address.objects.filter(pk__in=page_ids).order_by(*ordering))
    else:
        by_mailbox_index = sort in _MAILBOX_SORTS
        if by_mailbox_index:
            # Sorted by storage or growth, the mailboxes come first (forwards have neither):
            # a page within them is read off one of the domain's mailbox indexes.
            counts = queryset.aggregate(
                total=Count("pk"), mailboxes=Count("pk", filter=Q(kind=AddressKind.MAILBOX))
            )
            total, mailboxes = counts["total"], counts["mailboxes"]
        else:
            total = queryset.count()
        page = page_within(page, total, per_page)
        start, stop = (page - 1) * per_page, page * per_page
        if by_mailbox_index and stop <= mailboxes:
            page_ids = _mailboxes_in_order(domain, sort)[start:stop]
        else:
            # A deferred join: the database orders and cuts the page on the narrow columns
            # alone, then reads the other columns for the page's rows only.
            page_ids = queryset.order_by(*ordering).values("pk")[start:stop]
            if sort in (AddressListSort.STORAGE, AddressListSort.STORAGE_ASC):
                page_ids = _covering_storage(page_ids)
        rows = _rows(domain, Address.objects.filter(pk__in=page_ids).order_by(*ordering))
    return AddressPage(
        rows=rows, total=total, page=page, per_page=per_page, search=search, type=type, sort=sort
    )


# The sorts by a mailbox column (column, descending), ties by name: mailboxes first, then
# forwards. An index of the mailboxes gives each order (`mail_mailbox_storage_idx`,
# `mail_mailbox_growth_idx`).
_MAILBOX_SORTS = {
    AddressListSort.STORAGE: ("used_bytes", True),
    AddressListSort.STORAGE_ASC: ("used_bytes", False),
    AddressListSort.GROWTH: ("growth_7d_bytes", True),
}


def _mailboxes_in_order(domain: Domain, sort: str) -> QuerySet:
    """The address ids of the domain's mailboxes in a `_MAILBOX_SORTS` order, read off the
    index that gives it (the name is the mailbox's copy): a page reads little more than its
    own rows, where joining and sorting every mailbox of the domain costs milliseconds."""
    column, descending = _MAILBOX_SORTS[sort]
    key = F(column).desc() if descending else F(column).asc()
    return Mailbox.objects.filter(domain=domain).order_by(key, "local_part").values("address_id")


_MAX_LISTED = 10**9
_MAILBOX_JOIN = f'LEFT OUTER JOIN "{Mailbox._meta.db_table}" ON'
_MAILBOX_JOIN_HINTED = _MAILBOX_JOIN.replace(" ON", " INDEXED BY mail_mailbox_usage_idx ON")


def _covering_storage(page_ids: QuerySet) -> QuerySet | RawSQL:
    """On SQLite, the page's ids sorted by storage read through the covering
    `mail_mailbox_usage_idx` (see `_summary_sql`): one index seek per row instead of a seek
    and a row fetch, 2.4 times less at 10,000 mailboxes. Other databases, and any query that
    does not join the mailboxes, are left as they are."""
    if connection.vendor != "sqlite":
        return page_ids
    sql, params = page_ids.query.sql_with_params()
    if sql.count(_MAILBOX_JOIN) != 1:
        return page_ids
    # Django's own SQL, its parameters still kept apart.
    return RawSQL(sql.replace(_MAILBOX_JOIN, _MAILBOX_JOIN_HINTED), params)  # noqa: S611


def _rows(domain: Domain, ordered: QuerySet[Address]) -> list[AddressRow]:
    """The rows of an ordered address queryset (a page's ids, or one address): three queries
    (two for forwards only).

    Plain values, not model instances: a page is 50 rows of a dozen columns, and building
    Address/Mailbox objects plus Django's prefetch machinery cost more than the SQL itself.
    The plan's storage limit rides along in the same query (a subquery run once).
    """
    return _rows_of_values(
        domain,
        list(
            ordered.annotate(plan_limit_mb=plan_storage_limit_mb(domain.client_id)).values(
                *_ROW_FIELDS, "plan_limit_mb"
            )
        ),
    )


def _rows_of_values(domain: Domain, page_rows: list[dict]) -> list[AddressRow]:
    """The rows of `_ROW_FIELDS` values already read (with `plan_limit_mb` when the read
    had it): their aliases and destinations, two queries (one for forwards only)."""
    mailbox_ids = [r["mailbox__id"] for r in page_rows if r["mailbox__id"] is not None]
    aliases: dict[int, list[str]] = {}
    if mailbox_ids:  # a page of forwards only needs no alias query
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
    """Disk used and the counts of the dashboard: one query, whatever the size."""
    require_client_access(actor, domain.client_id, write=False)
    params = [
        domain.pk,
        AddressKind.ALIAS,
        domain.pk,
        AddressKind.FORWARD,
        domain.pk,
        AddressKind.MAILBOX,
    ]
    with connection.cursor() as cursor:
        cursor.execute(_summary_sql(connection.vendor), params)
        mailboxes, used, eas, mapi, measured, aliases, forwards = cursor.fetchone()
    if isinstance(measured, str):  # SQLite: Django's text format, naive UTC
        measured = parse_datetime(measured)
    if measured is not None and settings.USE_TZ and timezone.is_naive(measured):
        measured = timezone.make_aware(measured, UTC)
    return DomainSummary(
        used_bytes=int(used),
        mailboxes=mailboxes,
        aliases=aliases,
        forwards=forwards,
        eas_accounts=int(eas),
        mapi_accounts=int(mapi),
        used_measured_at=measured,
    )


def _summary_sql(vendor: str) -> str:
    """The mailbox aggregate joined through the covering `mail_mailbox_usage_idx` (one index
    seek per mailbox, no row fetch), and the alias and forward counts as index-only counts.

    SQLite without statistics (production runs no ANALYZE) prefers the unique index on
    `address_id` and then fetches every mailbox row: 2.4 times slower at 10,000 mailboxes;
    hence the INDEXED BY. PostgreSQL chooses the covering index itself.
    """
    address, mailbox = Address._meta.db_table, Mailbox._meta.db_table
    hint = " INDEXED BY mail_mailbox_usage_idx" if vendor == "sqlite" else ""
    # Only table and index names are formatted in; values are parameters.
    return f"""
SELECT COUNT(*), COALESCE(SUM(m.used_bytes), 0),
       COALESCE(SUM(CASE WHEN m.eas_enabled THEN 1 ELSE 0 END), 0),
       COALESCE(SUM(CASE WHEN m.mapi_enabled THEN 1 ELSE 0 END), 0),
       MAX(m.used_measured_at),
       (SELECT COUNT(*) FROM {address} WHERE domain_id = %s AND kind = %s),
       (SELECT COUNT(*) FROM {address} WHERE domain_id = %s AND kind = %s)
  FROM {address} a JOIN {mailbox} m{hint} ON m.address_id = a.id
 WHERE a.domain_id = %s AND a.kind = %s
"""  # noqa: S608


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


def mailboxes_by_address() -> dict[str, Mailbox]:
    """Every mailbox of every client by address, for the usage collector (a system read: no
    actor). Only what matching and recording read is loaded: converting the rows' other
    columns (hashes, times, UUIDs) made loading the mailboxes cost as much as recording them.
    """
    loaded = Mailbox.objects.select_related("address__domain").only(
        "address__local_part", "address__domain__name"
    )
    return {m.address.email: m for m in loaded.iterator()}

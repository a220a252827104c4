"""Every read that pages, the API and the CLI share.

Each selector checks that the actor may see what it returns, and runs a fixed number of
queries whatever the number of rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db.models import (
    BigIntegerField,
    Case,
    Count,
    F,
    Max,
    Q,
    QuerySet,
    Sum,
    When,
)
from django.utils import timezone
from django.utils.translation import gettext as _

from postdesk.billing.selectors import usage_growth
from postdesk.errors import InvalidInput, NotFound
from postdesk.tenancy.access import Actor, require_client_access, visible_clients_filter
from postdesk.tenancy.models import Client

from .addresses import normalize_domain_name, split_address
from .choices import AddressKind, AddressListSort, AddressListType
from .models import Address, Alias, Destination, Domain, Forward, Mailbox


def client_get_by_name(*, actor: Actor, name: str) -> Client:
    client = (
        Client.objects.filter(visible_clients_filter(actor))
        .filter(name__iexact=" ".join((name or "").split()))
        .first()
    )
    if client is None:
        raise NotFound(_("No client named %(name)s.") % {"name": name}, "client")
    return client


def domain_list(*, actor: Actor) -> QuerySet[Domain]:
    return (
        Domain.objects.filter(visible_clients_filter(actor, prefix="client__"))
        .select_related("client")
        .order_by("name")
        .distinct()
    )


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
class AddressPage:
    rows: list[AddressRow]
    total: int
    page: int
    per_page: int
    search: str = ""
    type: str = AddressListType.ALL
    sort: str = AddressListSort.ADDRESS

    @property
    def num_pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    @property
    def has_next(self) -> bool:
        return self.page < self.num_pages

    @property
    def has_previous(self) -> bool:
        return self.page > 1


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
    queryset = Address.objects.filter(domain=domain, kind__in=kinds)
    if search:
        queryset = queryset.filter(_search_filter(domain, search))
    total = queryset.count()
    page = max(1, min(int(page), max(1, -(-total // per_page))))

    if sort == AddressListSort.STORAGE:
        ordering = [F("mailbox__used_bytes").desc(nulls_last=True), "local_part"]
    elif sort == AddressListSort.STORAGE_ASC:
        ordering = [F("mailbox__used_bytes").asc(nulls_last=True), "local_part"]
    elif sort == AddressListSort.GROWTH:
        ordering = [F("growth_7d").desc(nulls_last=True), "local_part"]
    else:
        ordering = ["local_part"]
    start = (page - 1) * per_page
    rows = _rows(domain, queryset.order_by(*ordering), start, start + per_page)
    return AddressPage(
        rows=rows, total=total, page=page, per_page=per_page, search=search, type=type, sort=sort
    )


def _rows(domain: Domain, ordered: QuerySet[Address], start: int, stop: int) -> list[AddressRow]:
    """Rows start..stop of an ordered address queryset: three queries (two for forwards only).

    Plain values, not model instances: a page is 50 rows of a dozen columns, and building
    Address/Mailbox objects plus Django's prefetch machinery cost more than the SQL itself.
    """
    page_rows = list(ordered.annotate(growth_7d=_growth_7d()).values(*_ROW_FIELDS)[start:stop])
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
    "growth_7d",
    "mailbox__id",
    "mailbox__quota_mb",
    "mailbox__used_bytes",
    "mailbox__eas_enabled",
    "mailbox__mapi_enabled",
    "mailbox__delete_after_forwarding",
    "mailbox__keep_original_sender",
)


def _growth_7d() -> Case:
    """Each mailbox's growth over the last 7 days, in the row's own query (two index seeks
    per mailbox); NULL for a forward."""
    return Case(
        When(kind=AddressKind.MAILBOX, then=usage_growth("mailbox__id", timezone.now())),
        default=None,
        output_field=BigIntegerField(),
    )


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
        growth_7d_bytes=row["growth_7d"],
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
    """Disk used and the counts of the dashboard: one aggregate query, whatever the size."""
    require_client_access(actor, domain.client_id, write=False)
    is_mailbox = Q(kind=AddressKind.MAILBOX)
    totals = Address.objects.filter(domain=domain).aggregate(
        used_bytes=Sum("mailbox__used_bytes", filter=is_mailbox, default=0),
        mailboxes=Count("pk", filter=is_mailbox),
        aliases=Count("pk", filter=Q(kind=AddressKind.ALIAS)),
        forwards=Count("pk", filter=Q(kind=AddressKind.FORWARD)),
        eas_accounts=Count("pk", filter=is_mailbox & Q(mailbox__eas_enabled=True)),
        mapi_accounts=Count("pk", filter=is_mailbox & Q(mailbox__mapi_enabled=True)),
        used_measured_at=Max("mailbox__used_measured_at", filter=is_mailbox),
    )
    return DomainSummary(**totals)


def address_detail(*, actor: Actor, address: str, type: str) -> AddressRow:
    """One mailbox or forward as the address list shows it, for its edit page."""
    if type == AddressKind.MAILBOX:
        not_found = _("No mailbox %(address)s.") % {"address": address}
    else:
        not_found = _("No forward %(address)s.") % {"address": address}
    found = _address_get(actor, address, type, not_found)
    rows = _rows(found.domain, Address.objects.filter(pk=found.pk), 0, 1)
    if not rows:  # deleted between the two reads
        raise NotFound(not_found, "address")
    return rows[0]

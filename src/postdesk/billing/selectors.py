"""Reads of the billing area: plans and the estimate of a domain's current cycle.

The estimate gathers its inputs in three queries whatever the domain's size (the client's
plan history, the protocol periods that touch the cycle, the storage aggregate) and leaves
every money rule to the pure `estimate` module.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Protocol

from django.db import connection
from django.db.models import (
    BigIntegerField,
    Count,
    Exists,
    Expression,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.functions import Coalesce
from django.utils.translation import gettext as _

from postdesk.clock import resolve_at
from postdesk.errors import InvalidInput, NotFound, PermissionDenied
from postdesk.tenancy.access import Actor, require_client_access

from . import estimate as rules
from .models import ClientPlan, Plan, ProtocolActivation, UsageSample


class Domain(Protocol):
    """What the ledger needs of a domain (mail's Domain is one): its id and its client's."""

    @property
    def pk(self) -> int: ...

    @property
    def client_id(self) -> int: ...


def plan_get(*, actor: Actor, name: str) -> Plan:
    """A plan by name (case-insensitive). Plans are the provider's: operators only."""
    plan = None
    if actor.is_operator:
        plan = Plan.objects.filter(name__iexact=" ".join((name or "").split())).first()
    if plan is None:
        raise NotFound(_("No plan named %(name)s.") % {"name": name}, "plan")
    return plan


def plan_list(*, actor: Actor, at: datetime | None = None) -> list[Plan]:
    """Every plan by name, each annotated with `clients`: how many clients it is the plan in
    force of at `at` (default now). Operators only; one query, whatever the number of plans
    and clients."""
    if not actor.is_operator:
        raise PermissionDenied(_("Only the provider can manage plans."))
    at = resolve_at(at, allow_future=True)
    # A client's row in force at `at`: started by then, and no later start by then.
    superseded = ClientPlan.objects.filter(
        client_id=OuterRef("client_id"), starts_at__gt=OuterRef("starts_at"), starts_at__lte=at
    )
    in_force = ClientPlan.objects.filter(starts_at__lte=at).exclude(Exists(superseded))
    return list(
        Plan.objects.annotate(
            clients=Count("client_plans", filter=Q(client_plans__in=in_force.values("pk")))
        ).order_by("name")
    )


def _plan_terms(client_id: int) -> list[rules.PlanTerm]:
    return [
        rules.PlanTerm(
            starts_at=row.starts_at,
            cycle_months=row.plan.cycle_months,
            prices=rules.Prices(
                currency=row.plan.currency,
                storage_gb=row.plan.storage_gb_price,
                eas=row.plan.eas_price,
                mapi=row.plan.mapi_price,
                eas_mapi=row.plan.eas_mapi_price,
            ),
        )
        for row in ClientPlan.objects.filter(client_id=client_id).select_related("plan")
    ]


def _protocol_periods(
    domain_ids: list[int], cycle: rules.Cycle, at: datetime, *, mailboxes: bool = False
) -> dict[int, list[rules.ProtocolPeriod]]:
    """Each domain's protocol periods that touch the cycle up to `at`: one query. With
    `mailboxes`, each period also says its mailbox's address and whether it was deleted."""
    periods: dict[int, list[rules.ProtocolPeriod]] = {domain_id: [] for domain_id in domain_ids}
    fields = ["domain_id", "mailbox_key", "protocol", "started_at", "ended_at"]
    rows = (
        ProtocolActivation.objects.filter(
            domain_id__in=domain_ids, started_at__lte=at, started_at__lt=cycle.end
        )
        .filter(Q(ended_at__isnull=True) | Q(ended_at__gt=cycle.start))
        .values_list(*fields, *(["address", "mailbox_id"] if mailboxes else []))
    )
    for domain_id, *period in rows:
        if mailboxes:
            *period, address, mailbox_id = period
            period += [address, mailbox_id is None]
        periods[domain_id].append(rules.ProtocolPeriod(*period))
    return periods


def _storage_sql(vendor: str, domains: int | None = None) -> str:
    """The domain's usage over [start, at] as two numbers, in one statement.

    The same step function as `estimate.storage_use` (its tests compare the two): a sample
    holds from its time until the mailbox's next sample (`until`, kept by the services), so
    the samples that count are those measured by `at` that still held after `start`: each
    mailbox's last one at or before the start, its samples in the period, and the 0 that a
    deletion wrote. Two range scans of the covering (domain, until, at, bytes) index; no
    pairing of samples at read time.

    With `domains` (a number), the same sums for that many domains, one row each, led by its
    id; without, one domain's and no GROUP BY (which would sort the samples).
    """
    if vendor == "postgresql":
        ts = "CAST(%s AS timestamptz)"
        seconds = "EXTRACT(EPOCH FROM ({end} - {start}))"
        greatest, least = "GREATEST", "LEAST"
    else:
        ts = "%s"
        # julianday() is a double: about 40 µs of resolution, far below what is billed.
        seconds = "((julianday({end}) - julianday({start})) * 86400.0)"
        # SQLite's two-argument MAX/MIN; the values share Django's one text format.
        greatest, least = "MAX", "MIN"
    usage = UsageSample._meta.db_table
    held = seconds.format(
        start=f"{greatest}(at, {ts})", end=f"{least}(COALESCE(until, {ts}), {ts})"
    )
    # Only table names and the dialect's expressions are formatted in; values are parameters.
    # Two index range scans rather than one OR, which planners answer with a scan of `at`.
    if domains is None:
        key, where, group = "", "domain_id = %s", ""
    else:
        key, group = "domain_id, ", " GROUP BY domain_id"
        where = f"domain_id IN ({', '.join(['%s'] * domains)})"
    return f"""
SELECT {key}COALESCE(SUM(held), 0), COALESCE(SUM(current_bytes), 0) FROM (
    SELECT {key}bytes * {held} AS held,
           CASE WHEN until > {ts} THEN bytes ELSE 0 END AS current_bytes
      FROM {usage}
     WHERE {where} AND until > {ts} AND at <= {ts}
    UNION ALL
    SELECT {key}bytes * {held}, bytes
      FROM {usage}
     WHERE {where} AND until IS NULL AND at <= {ts}
) AS held_samples{group}
"""  # noqa: S608


def _storage_rows(
    domain_ids: list[int], start: datetime, at: datetime, *, grouped: bool
) -> list[tuple]:
    """`_storage_sql` run for these domains: one row, or with `grouped` one per domain that
    has samples, led by its id."""
    ops = connection.ops
    s = ops.adapt_datetimefield_value(start)
    t = ops.adapt_datetimefield_value(at)
    # In the order the placeholders appear: the `held` expression names its end first.
    held = [t, t, s]
    params = [*held, t, *domain_ids, s, t, *held, *domain_ids, t]
    sql = _storage_sql(connection.vendor, len(domain_ids) if grouped else None)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _storage_use(byte_seconds, current) -> rules.StorageUse:
    # SQLite returns a float, PostgreSQL an exact numeric; either becomes a Decimal here.
    return rules.StorageUse(byte_seconds=Decimal(str(byte_seconds)), current_bytes=int(current))


def domain_storage_use(domain_id: int, start: datetime, at: datetime) -> rules.StorageUse:
    """The domain's usage aggregated by the database (one query), for `estimate.estimate`."""
    ((byte_seconds, current),) = _storage_rows([domain_id], start, at, grouped=False)
    return _storage_use(byte_seconds, current)


def _cycle(client_id: int, at: datetime) -> tuple[rules.PlanTerm, rules.Cycle]:
    """The client's plan term and billing cycle at `at`, or the error that no plan applies."""
    try:
        return rules.billing_cycle(_plan_terms(client_id), at)
    except LookupError:
        raise InvalidInput(
            "no_plan",
            _("No plan applies to this domain's client at %(time)s.") % {"time": at.isoformat()},
            "at",
        ) from None


def billing_estimate(*, actor: Actor, domain: Domain, at: datetime | None = None):
    """The estimate of the domain's billing cycle that contains `at` (default now), under the
    client's plan in force then: accrued so far, projected to the cycle's end, line items."""
    require_client_access(actor, domain.client_id, write=False)
    # A read: "as of" a later time is a projection of what is known now.
    at = resolve_at(at, allow_future=True)
    term, cycle = _cycle(domain.client_id, at)
    periods = _protocol_periods([domain.pk], cycle, at)[domain.pk]
    storage = domain_storage_use(domain.pk, cycle.start, at)
    return rules.estimate(term.prices, cycle, at, periods, storage)


# The mailboxes the billing page names under each protocol line; the others are counted.
STATEMENT_MAILBOXES = 20


@dataclass(frozen=True)
class Statement:
    """The estimate of the current cycle, and for each protocol line the mailboxes it charges
    for (`estimate.charged_mailboxes`): the same periods make both, so they always agree."""

    estimate: rules.Estimate
    charged: dict[str, rules.ChargedMailboxes]


def billing_statement(
    *,
    actor: Actor,
    domain: Domain,
    at: datetime | None = None,
    shown: int = STATEMENT_MAILBOXES,
) -> Statement:
    """`billing_estimate`, and which mailboxes each protocol line charges for, deleted and
    switched-off ones included: the first `shown` of each line by address, and how many more.
    The same three queries as `billing_estimate`, whatever the number of mailboxes."""
    require_client_access(actor, domain.client_id, write=False)
    at = resolve_at(at, allow_future=True)
    term, cycle = _cycle(domain.client_id, at)
    periods = _protocol_periods([domain.pk], cycle, at, mailboxes=True)[domain.pk]
    storage = domain_storage_use(domain.pk, cycle.start, at)
    return Statement(
        estimate=rules.estimate(term.prices, cycle, at, periods, storage),
        charged=rules.charged_mailboxes(periods, cycle, at, shown=shown),
    )


def domains_storage_use(
    domain_ids: list[int], start: datetime, at: datetime
) -> dict[int, rules.StorageUse]:
    """`domain_storage_use` of several domains over the same period, in one query."""
    if not domain_ids:
        return {}
    found = {
        domain_id: _storage_use(byte_seconds, current)
        for domain_id, byte_seconds, current in _storage_rows(domain_ids, start, at, grouped=True)
    }
    nothing = _storage_use(0, 0)
    return {domain_id: found.get(domain_id, nothing) for domain_id in domain_ids}


def billing_estimates(
    *, actor: Actor, client_id: int, domains: list[Domain], at: datetime | None = None
) -> list[rules.Estimate]:
    """`billing_estimate` of each of a client's `domains` (in their order) as of `at`, in
    three queries whatever their number: the plan history, the protocol periods of every
    domain, and the storage aggregate grouped by domain. The same figures as one
    `billing_estimate` per domain (a test compares them)."""
    require_client_access(actor, client_id, write=False)
    if any(domain.client_id != client_id for domain in domains):
        raise ValueError("every domain must belong to the client")
    at = resolve_at(at, allow_future=True)
    if not domains:
        return []
    term, cycle = _cycle(client_id, at)
    ids = [domain.pk for domain in domains]
    periods = _protocol_periods(ids, cycle, at)
    storage = domains_storage_use(ids, cycle.start, at)
    return [
        rules.estimate(term.prices, cycle, at, periods[domain_id], storage[domain_id])
        for domain_id in ids
    ]


# --- For the client area: whether a plan applies, and the closed cycles -------------------------


def plan_storage_limit_mb(client_id: int, at: datetime | None = None) -> Subquery:
    """The storage limit in MiB of the client's plan in force at `at` (default now), as a
    scalar subquery to annotate a read with: NULL without a plan or with an unlimited one.
    It refers to no outer row, so the database runs it once per query, whatever the number
    of rows (the limit a mailbox quota of 0 falls back to, as the dataplane's view reads it).
    """
    at = resolve_at(at, allow_future=True)
    in_force = ClientPlan.objects.filter(client_id=client_id, starts_at__lte=at).order_by(
        "-starts_at"
    )
    return Subquery(in_force.values("plan__storage_limit_mb")[:1], output_field=BigIntegerField())


# The most closed cycles the billing page lists: each costs one storage aggregate.
HISTORY_CYCLES = 12
_MICROSECOND = timedelta(microseconds=1)


def billing_has_plan(*, actor: Actor, domain: Domain, at: datetime | None = None) -> bool:
    """Whether a plan applies to the domain's client at `at` (default now): one query."""
    require_client_access(actor, domain.client_id, write=False)
    at = resolve_at(at, allow_future=True)
    return _plans_applying(domain.client_id, at).exists()


def plan_applies(client_id: int | OuterRef, at: datetime) -> Exists:
    """`billing_has_plan` as an expression, for a read that asks it along other values (the
    dashboard's, dns.selectors.domain_overview): `client_id` is a value or an OuterRef."""
    return Exists(_plans_applying(client_id, at))


def _plans_applying(client_id: int | OuterRef, at: datetime) -> QuerySet:
    return ClientPlan.objects.filter(client_id=client_id, starts_at__lte=at)


@dataclass(frozen=True)
class ProtocolPrices:
    """What switching a protocol on costs under the plan in force: unit prices as shown
    (`estimate.price_text`), per mailbox and per cycle of `cycle_months`."""

    currency: str
    cycle_months: int
    eas: Decimal
    mapi: Decimal
    eas_mapi: Decimal
    # What the combined rate saves per mailbox against the two apart (0: no discount).
    combined_saving_each: Decimal


def billing_protocol_prices(
    *, actor: Actor, domain: Domain, at: datetime | None = None
) -> ProtocolPrices | None:
    """The EAS, MAPI and combined prices of the plan in force at `at` (default now) for the
    domain's client, or None when no plan applies: one query."""
    require_client_access(actor, domain.client_id, write=False)
    at = resolve_at(at, allow_future=True)
    row = (
        ClientPlan.objects.filter(client_id=domain.client_id, starts_at__lte=at)
        .select_related("plan")
        .order_by("-starts_at")
        .first()
    )
    if row is None:
        return None
    plan = row.plan
    prices = rules.Prices(
        currency=plan.currency,
        storage_gb=plan.storage_gb_price,
        eas=plan.eas_price,
        mapi=plan.mapi_price,
        eas_mapi=plan.eas_mapi_price,
    )
    return ProtocolPrices(
        currency=plan.currency,
        cycle_months=plan.cycle_months,
        eas=rules.price_text(prices.eas, plan.currency),
        mapi=rules.price_text(prices.mapi, plan.currency),
        eas_mapi=rules.price_text(prices.eas_mapi, plan.currency),
        combined_saving_each=rules.price_text(
            rules.combined_rate_saving(prices, 1).each, plan.currency
        ),
    )


def billing_history(
    *, actor: Actor, domain: Domain, at: datetime | None = None, cycles: int = HISTORY_CYCLES
) -> list[rules.Estimate]:
    """The domain's closed cycles before the one containing `at`, most recent first (at most
    `cycles`), each as billed at its last instant (nothing left to project).

    2 + one query per cycle listed, whatever the domain's size: the plan history, the protocol
    periods touching the whole range (each cycle's are picked by `estimate.protocol_counts`),
    and one storage aggregate per cycle.
    """
    require_client_access(actor, domain.client_id, write=False)
    at = resolve_at(at, allow_future=True)
    terms = _plan_terms(domain.client_id)
    if not terms:
        return []
    first_start = min(term.starts_at for term in terms)
    closed: list[tuple[rules.PlanTerm, rules.Cycle]] = []
    moment = at
    while len(closed) < cycles:
        try:
            _term, cycle = rules.billing_cycle(terms, moment)
        except LookupError:
            break
        moment = cycle.start - _MICROSECOND
        if moment < first_start:
            break
        closed.append(rules.billing_cycle(terms, moment))
    if not closed:
        return []
    oldest, newest = closed[-1][1], closed[0][1]
    rows = (
        ProtocolActivation.objects.filter(domain_id=domain.pk, started_at__lt=newest.end)
        .filter(Q(ended_at__isnull=True) | Q(ended_at__gt=oldest.start))
        .values_list("mailbox_key", "protocol", "started_at", "ended_at")
    )
    periods = [rules.ProtocolPeriod(*row) for row in rows]
    history = []
    for term, cycle in closed:
        last = cycle.end - _MICROSECOND
        storage = domain_storage_use(domain.pk, cycle.start, last)
        history.append(rules.estimate(term.prices, cycle, last, periods, storage))
    return history


# --- Usage as the address list shows it ----------------------------------------------------------

# "Growing unusually fast" (the guide): the address list's growth is over this window.
GROWTH_WINDOW = timedelta(days=7)


def usage_growth(mailbox_key: OuterRef) -> Expression:
    """A mailbox's growth as of its latest measure, for an UPDATE or annotation of the
    mailbox `mailbox_key` points at: the bytes of its latest sample minus its usage
    `GROWTH_WINDOW` before that sample (its latest sample by then, 0 without one), so 0 for a
    mailbox never measured. Two index seeks per mailbox (docs/billing.md, "Growth over 7
    days"); the mail services store it (mail.services.mailbox_growth_refresh)."""
    latest = UsageSample.objects.filter(mailbox_id=mailbox_key).order_by("-at")
    latest_at = (
        UsageSample.objects.filter(mailbox_id=OuterRef(mailbox_key))
        .order_by("-at")
        .values("at")[:1]
    )
    before = UsageSample.objects.filter(
        mailbox_id=mailbox_key, at__lte=Subquery(latest_at) - Value(GROWTH_WINDOW)
    ).order_by("-at")

    def bytes_of(samples: QuerySet) -> Coalesce:
        return Coalesce(
            Subquery(samples.values("bytes")[:1]), Value(0), output_field=BigIntegerField()
        )

    return bytes_of(latest) - bytes_of(before)


def usage_keys_sampled_since(mailbox_keys: list[int], at: datetime) -> set[int]:
    """Which of these mailboxes have a sample at or after `at`: one query."""
    return set(
        UsageSample.objects.filter(mailbox_key__in=mailbox_keys, at__gte=at).values_list(
            "mailbox_key", flat=True
        )
    )


def usage_sampled_bytes(mailbox_key: OuterRef, at: datetime) -> Subquery:
    """The bytes of the mailbox's sample at `at` (NULL without one), for an UPDATE of the
    mailbox `mailbox_key` points at."""
    return Subquery(UsageSample.objects.filter(mailbox_key=mailbox_key, at=at).values("bytes")[:1])

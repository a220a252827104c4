"""Reads of the billing area: plans and the estimate of a domain's current cycle.

The estimate gathers its inputs in three queries whatever the domain's size (the client's
plan history, the protocol periods that touch the cycle, the storage aggregate) and leaves
every money rule to the pure `estimate` module.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.db import connection
from django.db.models import Q
from django.utils.translation import gettext as _

from postdesk.errors import InvalidInput, NotFound
from postdesk.mail.models import Domain
from postdesk.tenancy.access import Actor, require_client_access

from . import estimate as rules
from .models import ClientPlan, Plan, ProtocolActivation, UsageSample
from .services import resolve_at


def plan_get(*, actor: Actor, name: str) -> Plan:
    """A plan by name (case-insensitive). Plans are the provider's: operators only."""
    plan = None
    if actor.is_operator:
        plan = Plan.objects.filter(name__iexact=" ".join((name or "").split())).first()
    if plan is None:
        raise NotFound(_("No plan named %(name)s.") % {"name": name}, "plan")
    return plan


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


def _protocol_periods(domain: Domain, cycle: rules.Cycle, at: datetime):
    rows = (
        ProtocolActivation.objects.filter(
            domain_id=domain.pk, started_at__lte=at, started_at__lt=cycle.end
        )
        .filter(Q(ended_at__isnull=True) | Q(ended_at__gt=cycle.start))
        .values_list("mailbox_key", "protocol", "started_at", "ended_at")
    )
    return [rules.ProtocolPeriod(*row) for row in rows]


def _storage_sql(vendor: str) -> str:
    """The domain's usage over [start, at] as two numbers, in one statement.

    The same step function as `estimate.storage_use` (its tests compare the two): a sample
    holds from its time until the mailbox's next sample (`until`, kept by the services), so
    the samples that count are those measured by `at` that still held after `start`: each
    mailbox's last one at or before the start, its samples in the period, and the 0 that a
    deletion wrote. Two range scans of the covering (domain, until, at, bytes) index; no
    pairing of samples at read time.
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
    return f"""
SELECT COALESCE(SUM(held), 0), COALESCE(SUM(current_bytes), 0) FROM (
    SELECT bytes * {held} AS held,
           CASE WHEN until > {ts} THEN bytes ELSE 0 END AS current_bytes
      FROM {usage}
     WHERE domain_id = %s AND until > {ts} AND at <= {ts}
    UNION ALL
    SELECT bytes * {held}, bytes
      FROM {usage}
     WHERE domain_id = %s AND until IS NULL AND at <= {ts}
) AS held_samples
"""  # noqa: S608


def domain_storage_use(domain_id: int, start: datetime, at: datetime) -> rules.StorageUse:
    """The domain's usage aggregated by the database (one query), for `estimate.estimate`."""
    ops = connection.ops
    s = ops.adapt_datetimefield_value(start)
    t = ops.adapt_datetimefield_value(at)
    # In the order the placeholders appear: the `held` expression names its end first.
    held = [t, t, s]
    params = [*held, t, domain_id, s, t, *held, domain_id, t]
    with connection.cursor() as cursor:
        cursor.execute(_storage_sql(connection.vendor), params)
        byte_seconds, current = cursor.fetchone()
    # SQLite returns a float, PostgreSQL an exact numeric; either becomes a Decimal here.
    return rules.StorageUse(byte_seconds=Decimal(str(byte_seconds)), current_bytes=int(current))


def billing_estimate(*, actor: Actor, domain: Domain, at: datetime | None = None):
    """The estimate of the domain's billing cycle that contains `at` (default now), under the
    client's plan in force then: accrued so far, projected to the cycle's end, line items."""
    require_client_access(actor, domain.client_id, write=False)
    at = resolve_at(at)
    try:
        term, cycle = rules.billing_cycle(_plan_terms(domain.client_id), at)
    except LookupError:
        raise InvalidInput(
            "no_plan",
            _("No plan applies to this domain's client at %(time)s.") % {"time": at.isoformat()},
            "at",
        ) from None
    periods = _protocol_periods(domain, cycle, at)
    storage = domain_storage_use(domain.pk, cycle.start, at)
    return rules.estimate(term.prices, cycle, at, periods, storage)

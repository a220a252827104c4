"""Every write of the billing area: plans, client plans, usage samples, protocol periods.

Plans and client plans are the provider's (operator only). Usage samples are measurements
(the usage collector's, or a script's through `postdesk usage record`). Protocol activation
periods are written by the mail services, in the same transaction as the mailbox change
that switches a protocol, so a bill can never disagree with the mailbox's history.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import BigIntegerField, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext as _

from postdesk.audit.services import audit_record
from postdesk.errors import (
    ErrorCollector,
    InvalidInput,
    NotFound,
    PermissionDenied,
    PostdeskError,
)
from postdesk.tenancy.access import Actor
from postdesk.tenancy.models import Client

from .choices import Protocol
from .models import ClientPlan, Plan, ProtocolActivation, UsageSample

MAX_CYCLE_MONTHS = 120
# DecimalField(max_digits=12, decimal_places=4).
PRICE_PLACES = 4
MAX_PRICE = Decimal("99999999.9999")
MAX_BYTES = 2**63 - 1
_CURRENCY = re.compile(r"[A-Z]{3}")


# How far ahead of this server's clock a dated change may be: the clocks of the machines that
# write (a usage collector, a script) may run a little ahead of ours.
CLOCK_SKEW = timedelta(minutes=5)


def resolve_at(at: datetime | None, field: str = "at", *, allow_future: bool = False) -> datetime:
    """`at`, or now; a time without a zone is refused (which instant it means is unknown).

    A change dates what has happened: a time later than now plus `CLOCK_SKEW` is refused,
    unless `allow_future` (a plan scheduled ahead, an estimate as of a later time).
    """
    now = timezone.now()
    if at is None:
        return now
    if timezone.is_naive(at):
        raise InvalidInput(
            "time_without_zone",
            _("Give the time with its time zone, for example 2024-05-01T00:00:00Z."),
            field,
        )
    if not allow_future and at > now + CLOCK_SKEW:
        raise InvalidInput(
            "time_in_future",
            _(
                "%(time)s is in the future: a change can only be dated now or in the past "
                "(up to %(minutes)d minutes ahead, for clocks that run fast)."
            )
            % {"time": at.isoformat(), "minutes": int(CLOCK_SKEW.total_seconds() // 60)},
            field,
        )
    return at


def _require_operator(actor: Actor, message: str) -> None:
    if not actor.is_operator:
        raise PermissionDenied(message)


# --- Plans -------------------------------------------------------------------------------------


def _price(value: Decimal | str, field: str, errors: ErrorCollector) -> Decimal | None:
    try:
        price = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        price = None
    if (
        price is None
        or not price.is_finite()
        or price < 0
        or price > MAX_PRICE
        or -price.as_tuple().exponent > PRICE_PLACES
    ):
        errors.add(
            InvalidInput(
                "price_invalid",
                _("Enter a price of 0 or more, with at most %(places)d decimal places.")
                % {"places": PRICE_PLACES},
                field,
            )
        )
        return None
    return price


def plan_create(
    *,
    actor: Actor,
    name: str,
    currency: str,
    storage_gb_price: Decimal | str,
    eas_price: Decimal | str,
    mapi_price: Decimal | str,
    eas_mapi_price: Decimal | str,
    cycle_months: int = 1,
    storage_limit_mb: int | None = None,
) -> Plan:
    """A plan. Every price is per cycle; storage is priced per GB (1024³ bytes) on average."""
    _require_operator(actor, _("Only the provider can manage plans."))
    errors = ErrorCollector()
    clean_name = " ".join((name or "").split())
    if not clean_name or len(clean_name) > 100:
        errors.add(
            InvalidInput(
                "plan_name_invalid", _("Enter a plan name of 1 to 100 characters."), "name"
            )
        )
    clean_currency = (currency or "").strip().upper()
    if not _CURRENCY.fullmatch(clean_currency):
        errors.add(
            InvalidInput(
                "currency_invalid",
                _("Enter the currency as its three-letter ISO 4217 code, for example CAD."),
                "currency",
            )
        )
    if (
        isinstance(cycle_months, bool)
        or not isinstance(cycle_months, int)
        or not 1 <= cycle_months <= MAX_CYCLE_MONTHS
    ):
        errors.add(
            InvalidInput(
                "cycle_invalid",
                _("A billing cycle lasts a whole number of months, from 1 to %(max)d.")
                % {"max": MAX_CYCLE_MONTHS},
                "cycle_months",
            )
        )
    prices = {
        field: _price(value, field, errors)
        for field, value in (
            ("storage_gb_price", storage_gb_price),
            ("eas_price", eas_price),
            ("mapi_price", mapi_price),
            ("eas_mapi_price", eas_mapi_price),
        )
    }
    if storage_limit_mb is not None and (
        isinstance(storage_limit_mb, bool)
        or not isinstance(storage_limit_mb, int)
        or not 1 <= storage_limit_mb <= MAX_BYTES // 2**20
    ):
        errors.add(
            InvalidInput(
                "storage_limit_invalid",
                _("Enter the plan's storage limit as a whole number of megabytes, or none."),
                "storage_limit_mb",
            )
        )
    errors.raise_if_any()
    try:
        with transaction.atomic():
            plan = Plan.objects.create(
                name=clean_name,
                cycle_months=cycle_months,
                currency=clean_currency,
                storage_limit_mb=storage_limit_mb,
                **prices,
            )
            audit_record(
                actor=actor,
                action="plan.create",
                client_id=None,
                target=clean_name,
                changes={
                    "cycle_months": cycle_months,
                    "currency": clean_currency,
                    "storage_limit_mb": storage_limit_mb,
                    **{k: str(v) for k, v in prices.items()},
                },
            )
    except IntegrityError:
        raise InvalidInput(
            "plan_exists", _("A plan named %(name)s already exists.") % {"name": clean_name}, "name"
        ) from None
    return plan


def client_set_plan(
    *, actor: Actor, client: Client, plan: Plan, at: datetime | None = None
) -> ClientPlan:
    """The client's plan from `at` on (default now). Earlier plans stay in the history, and a
    new plan starts a new billing cycle at `at`."""
    _require_operator(actor, _("Only the provider can change a client's plan."))
    # A plan change may be scheduled ahead: it then shortens the running cycle.
    starts_at = resolve_at(at, allow_future=True)
    try:
        with transaction.atomic():
            client_plan = ClientPlan.objects.create(client=client, plan=plan, starts_at=starts_at)
            audit_record(
                actor=actor,
                action="client.set_plan",
                client_id=client.pk,
                target=client.name,
                changes={"plan": plan.name, "starts_at": starts_at.isoformat()},
            )
    except IntegrityError:
        raise InvalidInput(
            "plan_start_taken",
            _("%(client)s already has a plan starting at %(time)s.")
            % {"client": client.name, "time": starts_at.isoformat()},
            "at",
        ) from None
    return client_plan


# --- Usage -------------------------------------------------------------------------------------


def usage_record(
    *,
    actor: Actor,
    mailbox,
    used_bytes: int,
    at: datetime | None = None,
    messages: int | None = None,
) -> UsageSample:
    """A measure of a mailbox's disk use at `at` (default now), as the collector writes it.

    The mailbox's current usage follows only when the sample is newer than the last one, so
    samples may arrive late or out of order (a replayed history); its 7-day growth is
    recomputed from its samples either way (`usage_growth_refresh`).
    """
    # mail.services imports this module (protocols_record): import it when called.
    from postdesk.mail.models import Mailbox
    from postdesk.mail.services import mailbox_usage_set

    _require_operator(actor, _("Only the provider records usage."))
    moment = resolve_at(at)
    _check_measure(used_bytes, messages)
    address = mailbox.address
    try:
        with transaction.atomic():
            # One writer per mailbox at a time: the chain of `until` stays consistent.
            exists = (
                Mailbox.objects.select_for_update().filter(pk=mailbox.pk).values_list("pk").first()
            )
            if exists is None:
                # Deleted since the caller read it (a collector's measure arriving late).
                sample = _sample_insert_deleted(mailbox, moment, used_bytes, messages)
            else:
                sample = _sample_insert(mailbox, moment, used_bytes, messages)
                mailbox_usage_set(mailbox=mailbox, used_bytes=used_bytes, at=moment)
                # Even a late sample can change it: it may be the one in force 7 days
                # before the latest.
                usage_growth_refresh(Mailbox.objects.filter(pk=mailbox.pk))
    except IntegrityError:
        raise InvalidInput(
            "usage_sample_exists",
            _("A usage sample of %(address)s at %(time)s is already recorded.")
            % {"address": address.email, "time": moment.isoformat()},
            "at",
        ) from None
    return sample


def _check_measure(used_bytes: int, messages: int | None) -> None:
    errors = ErrorCollector()
    for field, value in (("bytes", used_bytes), ("messages", messages)):
        if value is None and field == "messages":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_BYTES:
            errors.add(
                InvalidInput("usage_invalid", _("Enter a whole number of 0 or more."), field)
            )
    errors.raise_if_any()


@dataclass(frozen=True)
class Measure:
    """One mailbox's disk use as a collector's run read it."""

    mailbox: Any  # mail.models.Mailbox, its address loaded
    used_bytes: int
    messages: int | None = None


@dataclass(frozen=True)
class BatchResult:
    recorded: int
    # (address, error) of each measure refused, as `usage_record` would refuse it.
    refused: list[tuple[str, PostdeskError]]


def _is_valid(measure: Measure) -> bool:
    try:
        _check_measure(measure.used_bytes, measure.messages)
    except PostdeskError:
        return False
    return True


# Mailboxes per transaction of `usage_record_batch`: a run of 100,000 mailboxes commits 200
# times instead of 100,000, and holds no mailbox's lock longer than one chunk's writes.
BATCH_SIZE = 500


def usage_record_batch(
    *, actor: Actor, measures: Iterable[Measure], at: datetime | None = None
) -> BatchResult:
    """Every measure of a collector's run, all at `at` (default now): what `usage_record`
    would write for each, in a handful of queries per `BATCH_SIZE` mailboxes.

    Set-wise for a measure newer than every sample of its mailbox (a collector's run, every
    time but the first of a replayed history): the previous latest sample now holds until
    `at`, the new samples are inserted, and the mailboxes' usage and growth are set from
    them. Any other measure (a sample already at or after `at`, a mailbox deleted since it
    was read, an invalid value) goes through `usage_record` on its own, so the result is the
    same as calling it for each; one refused measure does not stop the others.
    """
    from postdesk.mail.models import Mailbox

    _require_operator(actor, _("Only the provider records usage."))
    moment = resolve_at(at)
    recorded, refused = 0, []
    pending = list(measures)
    for start in range(0, len(pending), BATCH_SIZE):
        chunk: dict[int, Measure] = {}
        one_by_one = []
        for measure in pending[start : start + BATCH_SIZE]:
            # A second measure of a mailbox at the same time is usage_record's to refuse.
            if measure.mailbox.pk in chunk:
                one_by_one.append(measure)
            else:
                chunk[measure.mailbox.pk] = measure
        with transaction.atomic():
            # The same lock as usage_record's, taken in one order (no deadlock between runs).
            present = dict(
                Mailbox.objects.select_for_update(of=("self",))
                .filter(pk__in=chunk)
                .order_by("pk")
                .values_list("pk", "address__domain_id")
            )
            later = set(
                UsageSample.objects.filter(mailbox_key__in=present, at__gte=moment).values_list(
                    "mailbox_key", flat=True
                )
            )
            newest = []
            for pk, measure in chunk.items():
                if pk in present and pk not in later and _is_valid(measure):
                    newest.append(pk)
                else:
                    one_by_one.append(measure)
            if newest:
                UsageSample.objects.filter(mailbox_key__in=newest, until__isnull=True).update(
                    until=moment
                )
                UsageSample.objects.bulk_create(
                    UsageSample(
                        mailbox_id=pk,
                        mailbox_key=pk,
                        domain_id=present[pk],
                        at=moment,
                        until=None,
                        bytes=chunk[pk].used_bytes,
                        messages=chunk[pk].messages,
                    )
                    for pk in newest
                )
                mailboxes = Mailbox.objects.filter(pk__in=newest)
                # As mailbox_usage_set: unless a newer measure is stored.
                mailboxes.filter(
                    Q(used_measured_at__isnull=True) | Q(used_measured_at__lt=moment)
                ).update(
                    used_bytes=Subquery(
                        UsageSample.objects.filter(mailbox_key=OuterRef("pk"), at=moment).values(
                            "bytes"
                        )[:1]
                    ),
                    used_measured_at=moment,
                )
                usage_growth_refresh(mailboxes)
                recorded += len(newest)
        for measure in one_by_one:
            try:
                usage_record(
                    actor=actor,
                    mailbox=measure.mailbox,
                    used_bytes=measure.used_bytes,
                    messages=measure.messages,
                    at=moment,
                )
            except PostdeskError as error:
                refused.append((measure.mailbox.address.email, error))
            else:
                recorded += 1
    return BatchResult(recorded=recorded, refused=refused)


# "Growing unusually fast" (the guide): the address list's growth is over this window.
GROWTH_WINDOW = timedelta(days=7)


def usage_growth_refresh(mailboxes: QuerySet) -> int:
    """Set each mailbox's `growth_7d_bytes` from its samples: the bytes of its latest sample
    minus its usage 7 days before that sample (its latest sample by then, 0 without one), so
    0 for a mailbox never measured. One UPDATE whatever the number of mailboxes (two index
    seeks each); returns how many it updated.

    As of the latest measure, not of the moment of reading: stored, the list can sort by it
    from an index (docs/billing.md). `usage_record` calls it for the mailbox it measured;
    a bulk load of samples (a benchmark, a migration) calls it for every mailbox it wrote.
    """
    latest = UsageSample.objects.filter(mailbox_id=OuterRef("pk")).order_by("-at")
    latest_at = (
        UsageSample.objects.filter(mailbox_id=OuterRef(OuterRef("pk")))
        .order_by("-at")
        .values("at")[:1]
    )
    before = UsageSample.objects.filter(
        mailbox_id=OuterRef("pk"), at__lte=Subquery(latest_at) - Value(GROWTH_WINDOW)
    ).order_by("-at")

    def bytes_of(samples: QuerySet) -> Coalesce:
        return Coalesce(
            Subquery(samples.values("bytes")[:1]), Value(0), output_field=BigIntegerField()
        )

    return mailboxes.update(growth_7d_bytes=bytes_of(latest) - bytes_of(before))


def _sample_insert_deleted(
    mailbox, at: datetime, used_bytes: int, messages: int | None
) -> UsageSample:
    """A late measure of a deleted mailbox: kept when dated before its deletion (the 0-byte
    sample that `usage_end` wrote, always its last), refused after it."""
    deleted_at = (
        UsageSample.objects.filter(mailbox_key=mailbox.pk, until__isnull=True)
        .values_list("at", flat=True)
        .first()
    )
    if deleted_at is None:
        raise NotFound(_("No mailbox %(address)s.") % {"address": mailbox.address.email}, "address")
    if at >= deleted_at:
        raise InvalidInput(
            "usage_after_deletion",
            _("%(address)s was deleted at %(deleted)s: it stores nothing from then on.")
            % {"address": mailbox.address.email, "deleted": deleted_at.isoformat()},
            "at",
        )
    return _sample_insert(mailbox, at, used_bytes, messages, link=False)


def _sample_insert(
    mailbox, at: datetime, used_bytes: int, messages: int | None, *, link: bool = True
) -> UsageSample:
    """Insert a sample into the mailbox's chain: it holds until the next sample (if one
    arrived earlier, out of order), and the previous sample now holds until it. `link`: the
    mailbox row still exists (a deleted one is known by its key only)."""
    later = (
        UsageSample.objects.filter(mailbox_key=mailbox.pk, at__gt=at)
        .order_by("at")
        .values_list("at", flat=True)
        .first()
    )
    sample = UsageSample.objects.create(
        mailbox=mailbox if link else None,
        mailbox_key=mailbox.pk,
        domain_id=mailbox.address.domain_id,
        at=at,
        until=later,
        bytes=used_bytes,
        messages=messages,
    )
    earlier = (
        UsageSample.objects.filter(mailbox_key=mailbox.pk, at__lt=at)
        .order_by("-at")
        .values_list("pk", flat=True)
        .first()
    )
    if earlier is not None:
        UsageSample.objects.filter(pk=earlier).update(until=at)
    return sample


def usage_end(*, mailbox, at: datetime) -> None:
    """A deleted mailbox stores nothing from `at` on: its last sample, 0 bytes.

    Call inside the deleting transaction (which holds the mailbox's lock), before the
    mailbox row goes. A deletion dated before one of the mailbox's samples is refused: the
    mailbox was measured after it, so it was not deleted then.
    """
    latest = (
        UsageSample.objects.filter(mailbox_key=mailbox.pk, at__gt=at)
        .order_by("-at")
        .values_list("at", flat=True)
        .first()
    )
    if latest is not None:
        raise InvalidInput(
            "time_before_usage",
            _(
                "This deletion is dated %(time)s, before the mailbox's latest usage sample "
                "(%(sample)s)."
            )
            % {"time": at.isoformat(), "sample": latest.isoformat()},
            "at",
        )
    if not UsageSample.objects.filter(mailbox_key=mailbox.pk, at=at).update(bytes=0):
        _sample_insert(mailbox, at, 0, None)


# --- Protocol activation periods ---------------------------------------------------------------


def protocols_record(*, mailbox, eas_enabled: bool, mapi_enabled: bool, at: datetime) -> None:
    """Open a period for each protocol switched on at `at`, close the open period of each one
    switched off. Call inside the transaction of the mailbox change; `mailbox.address.domain`
    must be loaded."""
    open_periods = {
        period.protocol: period
        for period in ProtocolActivation.objects.filter(
            mailbox_key=mailbox.pk, ended_at__isnull=True
        )
    }
    address = mailbox.address
    for protocol, enabled in ((Protocol.EAS, eas_enabled), (Protocol.MAPI, mapi_enabled)):
        period = open_periods.get(protocol)
        if enabled and period is None:
            ProtocolActivation.objects.create(
                mailbox=mailbox,
                mailbox_key=mailbox.pk,
                address=address.email,
                domain_id=address.domain_id,
                client_id=address.domain.client_id,
                protocol=protocol,
                started_at=at,
            )
        elif not enabled and period is not None:
            if at < period.started_at:
                raise InvalidInput(
                    "time_before_activation",
                    _(
                        "This change is dated %(time)s, before %(protocol)s was switched on "
                        "(%(started)s)."
                    )
                    % {
                        "time": at.isoformat(),
                        "protocol": period.get_protocol_display(),
                        "started": period.started_at.isoformat(),
                    },
                    "at",
                )
            period.ended_at = at
            period.save(update_fields=["ended_at"])

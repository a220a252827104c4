"""Every write of the billing area: plans, client plans, usage samples, protocol periods.

Plans and client plans are the provider's (operator only). Usage samples are measurements
(the usage collector's, or a script's through `postdesk usage record`). Protocol activation
periods are written by the mail services, in the same transaction as the mailbox change
that switches a protocol, so a bill can never disagree with the mailbox's history.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation

from django.db import IntegrityError, transaction
from django.db.models import F, Value
from django.db.models.functions import Greatest
from django.utils.translation import gettext as _

from postdesk.audit.choices import Action
from postdesk.audit.services import audit_record
from postdesk.clock import resolve_at
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
    """A plan. Every price is per cycle; storage is priced per GiB (1024³ bytes) on average."""
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
                action=Action.PLAN_CREATE,
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
                action=Action.CLIENT_SET_PLAN,
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
#
# The ledger's side of a measure: samples keyed by the mailbox's id (`mailbox_key`), kept after
# the mailbox goes. The mail services record a measure (mail.services.mailbox_usage_record):
# they lock the mailbox, call these in the same transaction, and set the mailbox's own usage
# and growth; these functions write only billing's tables.


def usage_measure_check(used_bytes: int, messages: int | None) -> None:
    """Refuse a measure that is not a whole number of 0 or more (bytes; messages if given)."""
    errors = ErrorCollector()
    for field, value in (("bytes", used_bytes), ("messages", messages)):
        if value is None and field == "messages":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_BYTES:
            errors.add(
                InvalidInput("usage_invalid", _("Enter a whole number of 0 or more."), field)
            )
    errors.raise_if_any()


def usage_measure_is_valid(used_bytes: int, messages: int | None) -> bool:
    try:
        usage_measure_check(used_bytes, messages)
    except PostdeskError:
        return False
    return True


@dataclass(frozen=True)
class SampledMailbox:
    """What the ledger keeps of a mailbox: its id and its domain's, and its address for the
    messages (a ledger row outlives the mailbox)."""

    key: int
    domain_id: int
    address: str
    # False for a mailbox already deleted: its samples keep only the key.
    exists: bool = True


def usage_sample_add(
    *, mailbox: SampledMailbox, at: datetime, used_bytes: int, messages: int | None = None
) -> UsageSample:
    """Insert a sample into the mailbox's chain: it holds until the next sample (if one
    arrived earlier, out of order), and the previous sample now holds until it.

    For a deleted mailbox, only a late measure dated before its deletion is kept (the 0-byte
    sample that `usage_end` wrote is always its last); one after it is refused. A second
    sample at the same time breaks a unique constraint (IntegrityError): call inside the
    caller's transaction, which holds the mailbox's lock, and answer it with
    `usage_sample_exists`.
    """
    if not mailbox.exists:
        # No mailbox row to lock: the deletion's sample, always the chain's last, is locked
        # instead, so two late measures of one deleted mailbox insert one after the other
        # (else each links itself to the deletion and the chain breaks).
        deleted_at = (
            UsageSample.objects.select_for_update()
            .filter(mailbox_key=mailbox.key, until__isnull=True)
            .values_list("at", flat=True)
            .first()
        )
        if deleted_at is None:
            raise NotFound(_("No mailbox %(address)s.") % {"address": mailbox.address}, "address")
        if at >= deleted_at:
            raise InvalidInput(
                "usage_after_deletion",
                _("%(address)s was deleted at %(deleted)s: it stores nothing from then on.")
                % {"address": mailbox.address, "deleted": deleted_at.isoformat()},
                "at",
            )
    later = (
        UsageSample.objects.filter(mailbox_key=mailbox.key, at__gt=at)
        .order_by("at")
        .values_list("at", flat=True)
        .first()
    )
    sample = UsageSample.objects.create(
        mailbox_id=mailbox.key if mailbox.exists else None,
        mailbox_key=mailbox.key,
        domain_id=mailbox.domain_id,
        at=at,
        until=later,
        bytes=used_bytes,
        messages=messages,
    )
    earlier = (
        UsageSample.objects.filter(mailbox_key=mailbox.key, at__lt=at)
        .order_by("-at")
        .values_list("pk", flat=True)
        .first()
    )
    if earlier is not None:
        UsageSample.objects.filter(pk=earlier).update(until=at)
    return sample


def usage_sample_exists(mailbox: SampledMailbox, at: datetime) -> InvalidInput:
    """The error for a second sample of a mailbox at the same time."""
    return InvalidInput(
        "usage_sample_exists",
        _("A usage sample of %(address)s at %(time)s is already recorded.")
        % {"address": mailbox.address, "time": at.isoformat()},
        "at",
    )


@dataclass(frozen=True)
class NewestSample:
    """A measure newer than every sample of its mailbox, for `usage_samples_append`."""

    mailbox_key: int
    domain_id: int
    used_bytes: int
    messages: int | None = None


def usage_samples_append(samples: list[NewestSample], *, at: datetime) -> None:
    """Append one sample at `at` to each mailbox's chain, set-wise (two statements whatever
    their number): each mailbox's latest sample now holds until `at`.

    Only for samples newer than every sample of their mailbox (`usage_keys_sampled_since`
    finds the others), inside the caller's transaction, which holds the mailboxes' locks.
    """
    if not samples:
        return
    UsageSample.objects.filter(
        mailbox_key__in=[s.mailbox_key for s in samples], until__isnull=True
    ).update(until=at)
    UsageSample.objects.bulk_create(
        UsageSample(
            mailbox_id=s.mailbox_key,
            mailbox_key=s.mailbox_key,
            domain_id=s.domain_id,
            at=at,
            until=None,
            bytes=s.used_bytes,
            messages=s.messages,
        )
        for s in samples
    )


def usage_end(*, mailbox: SampledMailbox, at: datetime) -> None:
    """A deleted mailbox stores nothing from `at` on: its last sample, 0 bytes.

    Call inside the deleting transaction (which holds the mailbox's lock), before the
    mailbox row goes. A deletion dated before one of the mailbox's samples is refused: the
    mailbox was measured after it, so it was not deleted then.
    """
    usage_end_many([mailbox], at=at)


def usage_end_many(mailboxes: list[SampledMailbox], *, at: datetime) -> None:
    """`usage_end` of several mailboxes deleted at the same time (a client's termination),
    in four statements whatever their number; refused as a whole when one of them has a
    sample after `at`."""
    keys = {m.key: m for m in mailboxes}
    if not keys:
        return
    latest = (
        UsageSample.objects.filter(mailbox_key__in=keys, at__gt=at)
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
    same_time = UsageSample.objects.filter(mailbox_key__in=keys, at=at)
    ended = set(same_time.values_list("mailbox_key", flat=True))
    same_time.update(bytes=0)
    usage_samples_append(
        [
            NewestSample(mailbox_key=key, domain_id=m.domain_id, used_bytes=0)
            for key, m in keys.items()
            if key not in ended
        ],
        at=at,
    )


# --- Protocol activation periods ---------------------------------------------------------------


@dataclass(frozen=True)
class BilledMailbox:
    """What a protocol period keeps of its mailbox, so it bills after the mailbox goes."""

    key: int
    address: str
    domain_id: int
    client_id: int


def protocols_record(
    *, mailbox: BilledMailbox, eas_enabled: bool, mapi_enabled: bool, at: datetime
) -> None:
    """Open a period for each protocol switched on at `at`, close the open period of each one
    switched off. Call inside the transaction of the mailbox change."""
    open_periods = {
        period.protocol: period
        for period in ProtocolActivation.objects.filter(
            mailbox_key=mailbox.key, ended_at__isnull=True
        )
    }
    for protocol, enabled in ((Protocol.EAS, eas_enabled), (Protocol.MAPI, mapi_enabled)):
        period = open_periods.get(protocol)
        if enabled and period is None:
            ProtocolActivation.objects.create(
                mailbox_id=mailbox.key,
                mailbox_key=mailbox.key,
                address=mailbox.address,
                domain_id=mailbox.domain_id,
                client_id=mailbox.client_id,
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


def protocols_end_many(*, mailbox_keys: list[int], at: datetime) -> None:
    """Close every open protocol period of these mailboxes at `at` (a client's termination),
    in one statement; a period opened after `at` (a clock running ahead) ends as it starts."""
    ProtocolActivation.objects.filter(mailbox_key__in=mailbox_keys, ended_at__isnull=True).update(
        ended_at=Greatest(F("started_at"), Value(at))
    )

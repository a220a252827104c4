"""The money rules: billing cycles, protocol charges, storage on actual use, rounding.

Pure functions over plain data (no Django, no database), so that every rule is tested
without either, and every interface (client area, API, CLI) shows the same figures. The
database side only gathers the inputs: the plan history, the protocol activation periods and
the usage (either the samples themselves, or their already-aggregated byte-seconds, see
`storage_use`).

The rules (docs/billing.md says why):

- A cycle lasts the plan's `cycle_months`. Cycles are anchored at the start of the plan in
  force, in UTC: cycle k starts at anchor + k x cycle_months months, the day clamped to the
  month's length (a plan starting Jan 31 has cycles starting Feb 28 (29), Mar 31, Apr 30…:
  always computed from the anchor, never from the previous cycle). A plan change starts a new
  anchor, and cuts the running cycle short at that instant.
- EAS and MAPI are billed per mailbox, once per cycle, when an activation period of the
  protocol overlaps the cycle; a mailbox with both protocols in the cycle is billed the
  combined rate instead of the two. What that saves (the two prices minus the combined one,
  never negative) is part of the estimate, so every interface shows the same discount.
- Storage is billed on actual use: the time-weighted average of the usage over the cycle,
  in GiB (1024³ bytes), times the price per GiB per cycle.
- Every line's amount is rounded half up to the currency's minor unit (cents), per line.
"""

from __future__ import annotations

import calendar
import decimal
import heapq
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

GIB = 1024**3
EAS = "eas"
MAPI = "mapi"
PROTOCOLS = (EAS, MAPI)
# Line items, in the order they are shown.
STORAGE_LINE = "storage"
EAS_LINE = "eas"
MAPI_LINE = "mapi"
EAS_MAPI_LINE = "eas_mapi"
LINE_ITEMS = (STORAGE_LINE, EAS_LINE, MAPI_LINE, EAS_MAPI_LINE)
# Storage quantities (GiB averaged over the cycle) are shown, and priced, to 0.001 GiB.
STORAGE_QUANTITY_EXPONENT = Decimal("0.001")
# ISO 4217 currencies whose minor unit is not the cent; every other currency has two decimals.
_MINOR_UNITS = {
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0, "PYG": 0,
    "RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
    "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
}  # fmt: skip
_MICROSECOND = timedelta(microseconds=1)


class NaiveDatetime(ValueError):
    """A time without a zone: which instant it means is unknown, so it is refused."""


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise NaiveDatetime(f"a time without a zone is ambiguous: {value.isoformat()}")
    return value.astimezone(UTC)


def _microseconds(delta: timedelta) -> int:
    return delta // _MICROSECOND


def minor_unit(currency: str) -> Decimal:
    """The smallest amount of the currency: Decimal('0.01') for CAD, Decimal('1') for JPY."""
    return Decimal(1).scaleb(-_MINOR_UNITS.get(currency.upper(), 2))


def round_money(amount: Decimal, currency: str) -> Decimal:
    """Half up to the currency's minor unit: 0.125 CAD → 0.13, 0.124999 → 0.12."""
    return amount.quantize(minor_unit(currency), rounding=ROUND_HALF_UP)


# --- Cycles ------------------------------------------------------------------------------------


def add_months(moment: datetime, months: int) -> datetime:
    """The same day and time `months` later, the day clamped to the target month's length."""
    index = moment.year * 12 + (moment.month - 1) + months
    year, month = divmod(index, 12)
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)


@dataclass(frozen=True)
class Prices:
    """A plan's prices, each per cycle: per GiB stored (on average), per mailbox per protocol."""

    currency: str
    storage_gb: Decimal
    eas: Decimal
    mapi: Decimal
    eas_mapi: Decimal


@dataclass(frozen=True)
class PlanTerm:
    """One row of a client's plan history: `prices` and `cycle_months` apply from `starts_at`
    until the next row's start."""

    starts_at: datetime
    cycle_months: int
    prices: Prices


@dataclass(frozen=True)
class Cycle:
    """A billing period [start, end)."""

    start: datetime
    end: datetime

    @property
    def microseconds(self) -> int:
        return _microseconds(self.end - self.start)


def plan_term_at(history: Iterable[PlanTerm], at: datetime) -> tuple[PlanTerm, datetime | None]:
    """The plan term in force at `at` (the latest start ≤ at) and the next term's start, if
    any. Raises LookupError when no plan had started by then."""
    at = _utc(at)
    ordered = sorted(history, key=lambda t: _utc(t.starts_at))
    current = None
    following = None
    for term in ordered:
        if _utc(term.starts_at) <= at:
            current = term
        elif following is None:
            following = _utc(term.starts_at)
    if current is None:
        raise LookupError("no plan in force")
    return current, following


def cycle_at(anchor: datetime, cycle_months: int, at: datetime, *, cut: datetime | None = None):
    """The cycle containing `at`, for cycles anchored at `anchor` (see the module's rules).

    `cut`: when the next plan starts (it ends the running cycle early).
    """
    anchor = _utc(anchor)
    at = _utc(at)
    if cycle_months < 1:
        raise ValueError("a cycle lasts at least one month")
    if at < anchor:
        raise ValueError("the time is before the plan's start")
    elapsed_months = (at.year - anchor.year) * 12 + (at.month - anchor.month)
    k = max(0, elapsed_months // cycle_months)
    # The estimate above is off by at most one cycle either way (day and time of the month).
    while k > 0 and add_months(anchor, k * cycle_months) > at:
        k -= 1
    while add_months(anchor, (k + 1) * cycle_months) <= at:
        k += 1
    start = add_months(anchor, k * cycle_months)
    end = add_months(anchor, (k + 1) * cycle_months)
    if cut is not None and start < _utc(cut) < end:
        end = _utc(cut)
    return Cycle(start, end)


def billing_cycle(history: Iterable[PlanTerm], at: datetime) -> tuple[PlanTerm, Cycle]:
    """The plan in force at `at` and the cycle of it that contains `at`."""
    term, following = plan_term_at(history, at)
    return term, cycle_at(term.starts_at, term.cycle_months, at, cut=following)


# --- Protocols ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProtocolPeriod:
    """A protocol was usable on a mailbox from `started_at` until `ended_at` (None: still on).

    `mailbox` is any stable key of the mailbox (its id, kept after it is deleted)."""

    mailbox: int
    protocol: str
    started_at: datetime
    ended_at: datetime | None = None
    # What the statement shows of the mailbox (the ledger's snapshot): its address, and
    # whether it still exists. Money rules ignore both.
    address: str = field(default="", compare=False)
    deleted: bool = field(default=False, compare=False)


@dataclass(frozen=True)
class ProtocolCounts:
    eas: int = 0
    mapi: int = 0
    eas_mapi: int = 0


def _billed_periods(
    periods: Iterable[ProtocolPeriod], cycle: Cycle, at: datetime
) -> dict[int, list[ProtocolPeriod]]:
    """Each billed mailbox's periods that count in the cycle as of `at` (see
    `protocol_counts`), in the order given."""
    at = _utc(at)
    billed: dict[int, list[ProtocolPeriod]] = defaultdict(list)
    for period in periods:
        if period.protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {period.protocol!r}")
        started = _utc(period.started_at)
        ended = None if period.ended_at is None else _utc(period.ended_at)
        if ended is not None and ended <= started:
            continue
        if started > at or started >= cycle.end:
            continue
        if ended is not None and ended <= cycle.start:
            continue
        billed[period.mailbox].append(period)
    return billed


def _line_of(periods: Iterable[ProtocolPeriod]) -> str:
    protocols = {period.protocol for period in periods}
    if len(protocols) == 2:
        return EAS_MAPI_LINE
    return EAS_LINE if protocols == {EAS} else MAPI_LINE


def protocol_counts(
    periods: Iterable[ProtocolPeriod], cycle: Cycle, at: datetime
) -> ProtocolCounts:
    """How many mailboxes to bill for EAS only, MAPI only, and both, as of `at`.

    A mailbox counts once per protocol when any of its periods overlaps the part of the cycle
    elapsed by `at` (the instant `at` included, so a protocol switched on now is billed now),
    however often it was switched; an empty period (on and off at the same instant) never
    counts. A mailbox with both protocols in the cycle counts only under `eas_mapi`, even when
    the two were never on at the same time.
    """
    billed = _billed_periods(periods, cycle, at)
    seen = {key: {period.protocol for period in found} for key, found in billed.items()}
    both = sum(1 for protocols in seen.values() if len(protocols) == 2)
    eas = sum(1 for protocols in seen.values() if protocols == {EAS})
    mapi = sum(1 for protocols in seen.values() if protocols == {MAPI})
    return ProtocolCounts(eas=eas, mapi=mapi, eas_mapi=both)


@dataclass(frozen=True)
class ChargedMailbox:
    """A mailbox a protocol line charges for: its address as the ledger kept it, whether it
    was deleted since, and its periods that count in the cycle (oldest first)."""

    key: int
    address: str
    deleted: bool
    periods: tuple[ProtocolPeriod, ...]


@dataclass(frozen=True)
class ChargedMailboxes:
    """The first mailboxes of a protocol line (by address) and how many more it charges for:
    `len(shown) + more` is the line's quantity."""

    shown: tuple[ChargedMailbox, ...] = ()
    more: int = 0


def charged_mailboxes(
    periods: Iterable[ProtocolPeriod], cycle: Cycle, at: datetime, *, shown: int
) -> dict[str, ChargedMailboxes]:
    """For each protocol line (eas, mapi, eas_mapi), the mailboxes it charges for as of `at`,
    by the rule of `protocol_counts` (so each line's count is its quantity): the first
    `shown` by address, and how many more."""
    lines: dict[str, list[ChargedMailbox]] = {EAS_LINE: [], MAPI_LINE: [], EAS_MAPI_LINE: []}
    for key, found in _billed_periods(periods, cycle, at).items():
        found.sort(key=lambda p: (_utc(p.started_at), p.protocol))
        # A deleted mailbox's rows all lost their link; any row says so.
        lines[_line_of(found)].append(
            ChargedMailbox(key, found[0].address, found[0].deleted, tuple(found))
        )
    return {
        item: ChargedMailboxes(
            tuple(heapq.nsmallest(shown, charged, key=lambda c: (c.address, c.key))),
            max(0, len(charged) - shown),
        )
        for item, charged in lines.items()
    }


# --- Storage -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class UsageSample:
    """A measure of a mailbox's disk use: `bytes` from `at` until the next sample."""

    mailbox: int
    at: datetime
    bytes: int


@dataclass(frozen=True)
class StorageUse:
    """A domain's usage over the elapsed part of a cycle, as plain numbers.

    byte_seconds: the integral of the stored bytes over [cycle start, at).
    current_bytes: the bytes stored at `at` (the projection holds it until the cycle's end).
    """

    byte_seconds: Decimal
    current_bytes: int


def storage_use(samples: Iterable[UsageSample], start: datetime, at: datetime) -> StorageUse:
    """Sum, over the mailboxes, of the step function their samples draw, over [start, at).

    A sample's value holds until the mailbox's next sample. Before its first sample in the
    period, a mailbox holds its last sample before the period (or at its start), else 0.
    Samples after `at` are ignored. The reference for the SQL that does the same at scale.
    """
    start = _utc(start)
    at = _utc(at)
    if at < start:
        raise ValueError("the time is before the period's start")
    by_mailbox: dict[int, list[tuple[datetime, int]]] = defaultdict(list)
    for sample in samples:
        moment = _utc(sample.at)
        if moment <= at:
            by_mailbox[sample.mailbox].append((moment, sample.bytes))
    byte_microseconds = 0
    current = 0
    for series in by_mailbox.values():
        series.sort(key=lambda item: item[0])
        value = 0
        since = start
        for moment, size in series:
            if moment <= start:
                value = size
                continue
            byte_microseconds += value * _microseconds(moment - since)
            value, since = size, moment
        byte_microseconds += value * _microseconds(at - since)
        current += value
    with decimal.localcontext(prec=60):
        byte_seconds = Decimal(byte_microseconds) / Decimal(1_000_000)
    return StorageUse(byte_seconds=byte_seconds, current_bytes=current)


# --- The estimate ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    """One line item. `amount` = quantity x unit_price rounded to the minor unit; `accrued`
    is what the elapsed part of the cycle has cost, `projected` = amount - accrued."""

    item: str
    quantity: Decimal
    unit_price: Decimal
    amount: Decimal
    accrued: Decimal
    projected: Decimal


@dataclass(frozen=True)
class CombinedSaving:
    """What the combined rate saves against EAS and MAPI billed apart.

    each: per mailbox, a difference of unit prices (kept to the prices' precision, as a unit
    price is). total: for the mailboxes billed the combined rate in the cycle, money rounded
    half up to the minor unit, as a line's amount is.
    """

    each: Decimal
    total: Decimal


def combined_rate_saving(prices: Prices, mailboxes: int) -> CombinedSaving:
    """The combined rate's saving for `mailboxes` mailboxes billed it: none (0) when the
    combined price is not below EAS + MAPI.

    A saving is never negative: a combined price above the two apart is what the plan says
    to bill (the eas_mapi line does), not a discount to show.
    """
    each = max(prices.eas + prices.mapi - prices.eas_mapi, Decimal(0))
    return CombinedSaving(each=each, total=round_money(each * mailboxes, prices.currency))


@dataclass(frozen=True)
class Estimate:
    period_start: datetime
    period_end: datetime
    at: datetime
    currency: str
    lines: list[Line] = field(default_factory=list)
    # What the combined rate saves, per mailbox and for this cycle's eas_mapi mailboxes; the
    # guide promises the discount is visible, so it travels with the figures it explains.
    combined_saving: CombinedSaving = field(kw_only=True)

    @property
    def accrued(self) -> Decimal:
        return sum((line.accrued for line in self.lines), Decimal(0)) + self._zero

    @property
    def projected(self) -> Decimal:
        return sum((line.projected for line in self.lines), Decimal(0)) + self._zero

    @property
    def total(self) -> Decimal:
        return sum((line.amount for line in self.lines), Decimal(0)) + self._zero

    @property
    def _zero(self) -> Decimal:
        # Keeps the currency's exponent on an empty sum: "0.00", not "0".
        return Decimal(0).quantize(minor_unit(self.currency))

    def line(self, item: str) -> Line:
        return next(line for line in self.lines if line.item == item)

    def as_dict(self) -> dict:
        """The CLI and API shape: amounts as decimal strings, times ISO 8601 in UTC."""
        return {
            "period_start": self.period_start.isoformat(),
            "period_end": self.period_end.isoformat(),
            "at": self.at.isoformat(),
            "currency": self.currency,
            "accrued": str(self.accrued),
            "projected": str(self.projected),
            "total": str(self.total),
            "combined_saving": str(self.combined_saving.total),
            "combined_saving_each": str(price_text(self.combined_saving.each, self.currency)),
            "lines": [
                {
                    "item": line.item,
                    "quantity": str(line.quantity),
                    "unit_price": str(price_text(line.unit_price, self.currency)),
                    "amount": str(line.amount),
                    "accrued": str(line.accrued),
                    "projected": str(line.projected),
                }
                for line in self.lines
            ],
        }


def price_text(price: Decimal, currency: str) -> Decimal:
    """A unit price without trailing zeros beyond the minor unit: 5.0000 → 5.00, 0.0125 kept."""
    unit = minor_unit(currency)
    normalized = price.normalize()
    if normalized.as_tuple().exponent > unit.as_tuple().exponent:
        return price.quantize(unit)
    return normalized


def _storage_quantity(byte_microseconds_like: Decimal, cycle: Cycle) -> Decimal:
    with decimal.localcontext(prec=60):
        gb_cycles = byte_microseconds_like / (Decimal(GIB) * Decimal(cycle.microseconds))
        return gb_cycles.quantize(STORAGE_QUANTITY_EXPONENT, rounding=ROUND_HALF_UP)


def _line(item: str, accrued_qty: Decimal, total_qty: Decimal, price: Decimal, currency: str):
    amount = round_money(total_qty * price, currency)
    accrued = round_money(accrued_qty * price, currency)
    return Line(item, total_qty, price, amount, accrued, amount - accrued)


def estimate(
    prices: Prices,
    cycle: Cycle,
    at: datetime,
    protocols: Sequence[ProtocolPeriod] | ProtocolCounts,
    storage: StorageUse,
) -> Estimate:
    """The estimate of `cycle` as of `at`: what has accrued, plus a projection to the end.

    Protocol lines are whole-cycle charges from the moment a protocol is on, so they project
    nothing more. Storage projects the current usage held until the cycle's end.
    """
    at = _utc(at)
    if not cycle.start <= at < cycle.end:
        raise ValueError("the time is outside the cycle")
    currency = prices.currency
    counts = (
        protocols
        if isinstance(protocols, ProtocolCounts)
        else protocol_counts(protocols, cycle, at)
    )
    with decimal.localcontext(prec=60):
        accrued_us = storage.byte_seconds * 1_000_000
        projected_us = Decimal(storage.current_bytes) * _microseconds(cycle.end - at)
        accrued_storage = _storage_quantity(accrued_us, cycle)
        total_storage = _storage_quantity(accrued_us + projected_us, cycle)
    lines = [_line(STORAGE_LINE, accrued_storage, total_storage, prices.storage_gb, currency)]
    for item, count, price in (
        (EAS_LINE, counts.eas, prices.eas),
        (MAPI_LINE, counts.mapi, prices.mapi),
        (EAS_MAPI_LINE, counts.eas_mapi, prices.eas_mapi),
    ):
        lines.append(_line(item, Decimal(count), Decimal(count), price, currency))
    saving = combined_rate_saving(prices, counts.eas_mapi)
    return Estimate(cycle.start, cycle.end, at, currency, lines, combined_saving=saving)

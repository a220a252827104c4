"""The money rules of billing/estimate.py: pure functions, no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postdesk.billing.estimate import (
    GIB,
    Cycle,
    NaiveDatetime,
    PlanTerm,
    Prices,
    ProtocolCounts,
    ProtocolPeriod,
    StorageUse,
    UsageSample,
    add_months,
    billing_cycle,
    charged_mailboxes,
    combined_rate_saving,
    cycle_at,
    estimate,
    minor_unit,
    price_text,
    protocol_counts,
    round_money,
    storage_use,
)

D = Decimal


def t(text: str) -> datetime:
    """An aware UTC time from a short ISO string."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


PRICES = Prices(currency="CAD", storage_gb=D("0.50"), eas=D("4"), mapi=D("6"), eas_mapi=D("8.5"))
FEB_2024 = Cycle(t("2024-02-01"), t("2024-03-01"))  # 29 days
NO_STORAGE = StorageUse(byte_seconds=D(0), current_bytes=0)


# --- Cycles ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "months", "expected"),
    [
        ("2024-01-31", 1, "2024-02-29"),  # leap year: clamped to the 29th
        ("2023-01-31", 1, "2023-02-28"),
        ("2024-01-31", 2, "2024-03-31"),  # from the anchor: the 31st comes back
        ("2024-03-31", 1, "2024-04-30"),
        ("2024-02-29", 12, "2025-02-28"),
        ("2024-02-29", 48, "2028-02-29"),
        ("2024-12-15", 1, "2025-01-15"),
        ("2024-11-30", 3, "2025-02-28"),
        ("2024-05-10", -5, "2023-12-10"),
    ],
)
def test_add_months_clamps_the_day(start, months, expected):
    assert add_months(t(start), months) == t(expected)


def test_add_months_keeps_the_time_of_day():
    assert add_months(t("2024-01-31T17:45:12.5"), 1) == t("2024-02-29T17:45:12.5")


@pytest.mark.parametrize(
    ("at", "start", "end"),
    [
        # Anchored Jan 31: Feb 29 (leap), then Mar 31 again, Apr 30, May 31.
        ("2024-01-31T00:00", "2024-01-31", "2024-02-29"),
        ("2024-02-28T23:59:59", "2024-01-31", "2024-02-29"),
        ("2024-02-29T00:00", "2024-02-29", "2024-03-31"),  # the boundary belongs to the next
        ("2024-03-30T12:00", "2024-02-29", "2024-03-31"),
        ("2024-03-31T00:00", "2024-03-31", "2024-04-30"),
        ("2024-05-15T00:00", "2024-04-30", "2024-05-31"),
        ("2025-02-28T00:00", "2025-02-28", "2025-03-31"),
        ("2025-02-27T23:59:59.999999", "2025-01-31", "2025-02-28"),
    ],
)
def test_monthly_cycles_anchored_at_month_end(at, start, end):
    assert cycle_at(t("2024-01-31"), 1, t(at)) == Cycle(t(start), t(end))


def test_cycles_of_several_months_and_a_year_from_a_leap_day():
    assert cycle_at(t("2024-01-15"), 3, t("2024-06-01")) == Cycle(t("2024-04-15"), t("2024-07-15"))
    assert cycle_at(t("2024-02-29"), 12, t("2025-03-01")) == Cycle(t("2025-02-28"), t("2026-02-28"))
    assert cycle_at(t("2024-02-29"), 12, t("2028-02-29")) == Cycle(t("2028-02-29"), t("2029-02-28"))


def test_a_cycle_far_from_its_anchor():
    assert cycle_at(t("2000-01-31T06:00"), 1, t("2031-03-31T05:59")) == Cycle(
        t("2031-02-28T06:00"), t("2031-03-31T06:00")
    )


@given(
    anchor=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2040, 1, 1)),
    offset=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=4000)),
    months=st.sampled_from([1, 2, 3, 6, 12]),
)
def test_the_cycle_always_contains_the_time_and_starts_on_an_anchor_step(anchor, offset, months):
    anchor = anchor.replace(tzinfo=UTC)
    at = anchor + offset
    cycle = cycle_at(anchor, months, at)
    assert cycle.start <= at < cycle.end
    steps = [add_months(anchor, k * months) for k in range(0, 140)]
    index = steps.index(cycle.start)
    assert cycle.end == steps[index + 1]


def test_cycles_are_computed_in_utc():
    # 20:00 in Montréal on Jan 31 is Feb 1 in UTC: the anchor's day is the 1st.
    montreal = timezone(timedelta(hours=-5))
    anchor = datetime(2024, 1, 31, 20, 0, tzinfo=montreal)
    cycle = cycle_at(anchor, 1, datetime(2024, 2, 29, 19, 0, tzinfo=montreal))
    assert cycle == Cycle(t("2024-02-01T01:00"), t("2024-03-01T01:00"))
    assert cycle.start.tzinfo == UTC
    # Feb 29 at 20:00 in Montréal is already the next cycle (Mar 1 01:00 UTC).
    next_cycle = cycle_at(anchor, 1, datetime(2024, 2, 29, 20, 0, tzinfo=montreal))
    assert next_cycle.start == t("2024-03-01T01:00")


def test_naive_times_are_refused_everywhere():
    naive = datetime(2024, 2, 10)
    with pytest.raises(NaiveDatetime):
        cycle_at(naive, 1, t("2024-03-01"))
    with pytest.raises(NaiveDatetime):
        cycle_at(t("2024-01-01"), 1, naive)
    with pytest.raises(NaiveDatetime):
        protocol_counts([ProtocolPeriod(1, "eas", naive)], FEB_2024, t("2024-02-10"))
    with pytest.raises(NaiveDatetime):
        storage_use([UsageSample(1, naive, 5)], FEB_2024.start, t("2024-02-10"))
    with pytest.raises(NaiveDatetime):
        estimate(PRICES, FEB_2024, naive, [], NO_STORAGE)


def test_a_time_before_the_plan_or_a_cycle_of_no_months_is_refused():
    with pytest.raises(ValueError):
        cycle_at(t("2024-02-01"), 1, t("2024-01-31"))
    with pytest.raises(ValueError):
        cycle_at(t("2024-02-01"), 0, t("2024-03-01"))


def _term(start: str, months: int = 1, currency: str = "CAD") -> PlanTerm:
    return PlanTerm(t(start), months, Prices(currency, D(1), D(2), D(3), D(4)))


def test_the_plan_in_force_is_the_latest_started():
    history = [_term("2024-01-10"), _term("2024-03-20", currency="EUR"), _term("2023-06-01")]
    term, cycle = billing_cycle(history, t("2024-03-25"))
    assert term.prices.currency == "EUR"
    assert cycle == Cycle(t("2024-03-20"), t("2024-04-20"))  # a new plan anchors anew
    term, cycle = billing_cycle(history, t("2024-02-01"))
    assert term.starts_at == t("2024-01-10")
    with pytest.raises(LookupError):
        billing_cycle(history, t("2023-05-31"))
    with pytest.raises(LookupError):
        billing_cycle([], t("2024-01-01"))


def test_a_plan_change_cuts_the_running_cycle_short():
    history = [_term("2024-01-10"), _term("2024-03-20", currency="EUR")]
    term, cycle = billing_cycle(history, t("2024-03-15"))
    assert term.prices.currency == "CAD"
    assert cycle == Cycle(t("2024-03-10"), t("2024-03-20"))
    # A change starting exactly at a natural boundary cuts nothing.
    history = [_term("2024-01-10"), _term("2024-04-10", currency="EUR")]
    assert billing_cycle(history, t("2024-03-15"))[1] == Cycle(t("2024-03-10"), t("2024-04-10"))


# --- Protocols -------------------------------------------------------------------------------


def _counts(periods, at="2024-02-15", cycle=FEB_2024) -> ProtocolCounts:
    return protocol_counts(periods, cycle, t(at))


def test_each_protocol_counts_once_per_mailbox_however_often_it_is_toggled():
    start = t("2024-02-01")
    toggles = [
        ProtocolPeriod(1, "eas", start + timedelta(hours=h), start + timedelta(hours=h, minutes=30))
        for h in range(0, 200, 2)
    ]
    assert _counts(toggles) == ProtocolCounts(eas=1)
    assert _counts([*toggles, ProtocolPeriod(2, "mapi", t("2024-02-03"))]) == ProtocolCounts(
        eas=1, mapi=1
    )


def test_both_protocols_on_one_mailbox_count_once_at_the_combined_rate():
    periods = [
        ProtocolPeriod(7, "eas", t("2024-01-01")),
        ProtocolPeriod(7, "mapi", t("2024-02-02")),
    ]
    assert _counts(periods) == ProtocolCounts(eas_mapi=1)


def test_eas_early_and_mapi_late_in_the_cycle_still_count_as_combined():
    periods = [
        ProtocolPeriod(7, "eas", t("2024-02-01"), t("2024-02-05")),
        ProtocolPeriod(7, "mapi", t("2024-02-20"), None),
    ]
    assert _counts(periods, at="2024-02-25") == ProtocolCounts(eas_mapi=1)
    # Before MAPI came on, the mailbox was an EAS mailbox.
    assert _counts(periods, at="2024-02-10") == ProtocolCounts(eas=1)


def test_overlap_with_the_cycle_boundaries():
    cases = {
        # (start, end) of an EAS period → counted in February (estimate at Feb 29 23:00)?
        ("2024-01-01", "2024-02-01"): False,  # ended exactly when the cycle started
        ("2024-01-01", "2024-02-01T00:00:01"): True,
        ("2024-02-29T23:00", None): True,  # switched on at the estimate's instant
        ("2024-03-01", None): False,  # the next cycle's
        ("2023-01-01", None): True,  # on since long before, never switched off
        ("2024-02-10", "2024-02-10"): False,  # on and off at the same instant: never usable
    }
    for (start, end), counted in cases.items():
        period = ProtocolPeriod(1, "eas", t(start), None if end is None else t(end))
        assert _counts([period], at="2024-02-29T23:00") == ProtocolCounts(eas=int(counted)), (
            start,
            end,
        )


def test_periods_after_the_estimates_time_are_not_counted_yet():
    periods = [ProtocolPeriod(1, "eas", t("2024-02-20"))]
    assert _counts(periods, at="2024-02-19T23:59:59") == ProtocolCounts()
    assert _counts(periods, at="2024-02-20") == ProtocolCounts(eas=1)


def test_a_deleted_mailbox_still_counts_for_its_cycle():
    # Deletion closes its periods; the key stays the mailbox's id.
    periods = [
        ProtocolPeriod(3, "mapi", t("2024-01-05"), t("2024-02-03")),
        ProtocolPeriod(3, "eas", t("2024-01-05"), t("2024-02-03")),
    ]
    assert _counts(periods) == ProtocolCounts(eas_mapi=1)
    assert _counts(periods, cycle=Cycle(t("2024-03-01"), t("2024-04-01")), at="2024-03-02") == (
        ProtocolCounts()
    )


_PERIOD = st.builds(
    lambda key, protocol, start, length, deleted: ProtocolPeriod(
        key,
        protocol,
        t("2024-01-20") + timedelta(days=start),
        None if length is None else t("2024-01-20") + timedelta(days=start + length),
        address=f"m{key}@example.com",
        deleted=deleted,
    ),
    st.integers(1, 12),
    st.sampled_from(["eas", "mapi"]),
    st.integers(0, 45),
    st.none() | st.integers(0, 20),
    st.booleans(),
)


@given(st.lists(_PERIOD, max_size=30), st.integers(0, 5))
def test_each_line_names_exactly_the_mailboxes_it_counts(periods, shown):
    """The billing page's lists and the lines' quantities come from one rule."""
    at = t("2024-02-20")
    counts = _counts(periods, at="2024-02-20")
    charged = charged_mailboxes(periods, FEB_2024, at, shown=shown)
    for item in ("eas", "mapi", "eas_mapi"):
        line = charged[item]
        assert len(line.shown) + line.more == getattr(counts, item)
        assert len(line.shown) == min(shown, getattr(counts, item))
        addresses = [mailbox.address for mailbox in line.shown]
        assert addresses == sorted(addresses)
        for mailbox in line.shown:
            protocols = {period.protocol for period in mailbox.periods}
            assert (protocols == {"eas", "mapi"}) == (item == "eas_mapi")
            assert all(period.mailbox == mailbox.key for period in mailbox.periods)


def test_a_deleted_mailbox_is_named_on_its_line_with_its_periods():
    periods = [
        ProtocolPeriod(3, "eas", t("2024-02-10T10:00"), t("2024-02-10T10:02"), "temp@x.ca", True),
        ProtocolPeriod(3, "mapi", t("2024-02-10T10:00"), t("2024-02-10T10:02"), "temp@x.ca", True),
        ProtocolPeriod(4, "eas", t("2024-01-01"), None, "marie@x.ca"),
        # Switched off before the cycle: not billed, not named.
        ProtocolPeriod(5, "mapi", t("2024-01-01"), t("2024-01-20"), "old@x.ca"),
    ]
    charged = charged_mailboxes(periods, FEB_2024, t("2024-02-20"), shown=10)
    (temp,) = charged["eas_mapi"].shown
    assert (temp.address, temp.deleted, len(temp.periods)) == ("temp@x.ca", True, 2)
    (marie,) = charged["eas"].shown
    assert (marie.address, marie.deleted) == ("marie@x.ca", False)
    assert charged["mapi"].shown == () and charged["mapi"].more == 0


def test_an_unknown_protocol_is_a_programming_error():
    with pytest.raises(ValueError):
        _counts([ProtocolPeriod(1, "pop3", t("2024-02-02"))])


# --- Storage ---------------------------------------------------------------------------------

DAY = 86_400


def test_storage_is_a_step_function_of_the_samples():
    samples = [
        UsageSample(1, t("2024-02-03"), 100),  # holds 2024-02-03 → 02-05
        UsageSample(1, t("2024-02-05"), 300),  # holds 02-05 → 02-10 (the estimate's time)
        UsageSample(1, t("2024-02-20"), 999),  # after the estimate: ignored
    ]
    use = storage_use(samples, t("2024-02-01"), t("2024-02-10"))
    assert use == StorageUse(byte_seconds=D(100 * 2 * DAY + 300 * 5 * DAY), current_bytes=300)


def test_before_its_first_sample_a_mailbox_holds_its_last_one_before_the_cycle():
    samples = [
        UsageSample(1, t("2023-12-01"), 7),
        UsageSample(1, t("2024-01-20"), 50),  # the last before the cycle: holds until 02-04
        UsageSample(1, t("2024-02-04"), 10),
        UsageSample(2, t("2024-02-01"), 40),  # exactly at the start: holds from the start
    ]
    use = storage_use(samples, t("2024-02-01"), t("2024-02-06"))
    assert use.byte_seconds == D(50 * 3 * DAY + 10 * 2 * DAY + 40 * 5 * DAY)
    assert use.current_bytes == 50


def test_without_any_sample_before_it_a_mailbox_holds_nothing():
    use = storage_use([UsageSample(1, t("2024-02-11"), 1000)], t("2024-02-01"), t("2024-02-12"))
    assert use == StorageUse(byte_seconds=D(1000 * DAY), current_bytes=1000)
    assert storage_use([], t("2024-02-01"), t("2024-02-12")) == NO_STORAGE


def test_a_deleted_mailbox_stores_nothing_after_its_last_sample_of_zero():
    samples = [UsageSample(9, t("2024-01-01"), GIB), UsageSample(9, t("2024-02-03"), 0)]
    use = storage_use(samples, t("2024-02-01"), t("2024-02-20"))
    assert use == StorageUse(byte_seconds=D(GIB * 2 * DAY), current_bytes=0)


def test_storage_times_keep_microseconds():
    samples = [UsageSample(1, t("2024-02-01T00:00:00.000001"), 10**12)]
    use = storage_use(samples, t("2024-02-01"), t("2024-02-01T00:00:01"))
    assert use.byte_seconds == D(10**12) * D("0.999999")


# --- The estimate and its rounding -----------------------------------------------------------


def test_an_estimate_with_every_line():
    periods = [
        ProtocolPeriod(1, "eas", t("2024-01-01")),
        ProtocolPeriod(2, "eas", t("2024-02-02"), t("2024-02-03")),
        ProtocolPeriod(3, "mapi", t("2024-02-02")),
        ProtocolPeriod(4, "eas", t("2024-02-02")),
        ProtocolPeriod(4, "mapi", t("2024-02-02")),
    ]
    # 2 GB held from the start to the 15th (14 days), then still 2 GB: 2 GB for the cycle.
    storage = StorageUse(byte_seconds=D(2 * GIB * 14 * DAY), current_bytes=2 * GIB)
    result = estimate(PRICES, FEB_2024, t("2024-02-15"), periods, storage)
    rows = {line.item: line for line in result.lines}
    assert [line.item for line in result.lines] == ["storage", "eas", "mapi", "eas_mapi"]
    # Storage: 2 GB x 0.50 = 1.00; accrued 2 x 14/29 = 0.966 GB → 0.483 → 0.48.
    assert rows["storage"].quantity == D("2.000")
    assert (rows["storage"].amount, rows["storage"].accrued) == (D("1.00"), D("0.48"))
    assert rows["storage"].projected == D("0.52")
    assert (rows["eas"].quantity, rows["eas"].amount) == (D(2), D("8.00"))
    assert (rows["mapi"].quantity, rows["mapi"].amount) == (D(1), D("6.00"))
    assert (rows["eas_mapi"].quantity, rows["eas_mapi"].amount) == (D(1), D("8.50"))
    for item in ("eas", "mapi", "eas_mapi"):
        assert rows[item].projected == D("0.00")  # already whole-cycle charges
    assert result.accrued == D("22.98")
    assert result.projected == D("0.52")
    assert result.total == D("23.50") == result.accrued + result.projected
    assert (result.period_start, result.period_end) == (FEB_2024.start, FEB_2024.end)


def test_the_json_shape():
    result = estimate(PRICES, FEB_2024, t("2024-02-15"), ProtocolCounts(eas=1), NO_STORAGE)
    data = result.as_dict()
    assert data["period_start"] == "2024-02-01T00:00:00+00:00"
    assert data["period_end"] == "2024-03-01T00:00:00+00:00"
    assert (data["currency"], data["accrued"], data["projected"]) == ("CAD", "4.00", "0.00")
    assert data["lines"][1] == {
        "item": "eas",
        "quantity": "1",
        "unit_price": "4.00",
        "amount": "4.00",
        "accrued": "4.00",
        "projected": "0.00",
    }
    assert data["lines"][0]["quantity"] == "0.000"
    # No mailbox billed the combined rate: nothing saved yet, but the rate's saving is shown.
    assert (data["combined_saving"], data["combined_saving_each"]) == ("0.00", "1.50")


def test_zero_prices_bill_nothing_but_still_count():
    free = Prices("CAD", D("0"), D("0"), D("0"), D("0.0000"))
    storage = StorageUse(byte_seconds=D(50 * GIB * DAY), current_bytes=50 * GIB)
    result = estimate(free, FEB_2024, t("2024-02-15"), ProtocolCounts(3, 2, 1), storage)
    assert [str(line.amount) for line in result.lines] == ["0.00"] * 4
    assert [line.quantity for line in result.lines][1:] == [3, 2, 1]
    assert result.line("storage").quantity > 0
    assert (str(result.accrued), str(result.projected), str(result.total)) == ("0.00",) * 3


def test_an_empty_domain_costs_zero_with_the_currencys_decimals():
    result = estimate(PRICES, FEB_2024, t("2024-02-01"), [], NO_STORAGE)
    assert str(result.total) == "0.00"


def test_money_rounds_half_up_per_line_to_the_currencys_minor_unit():
    assert round_money(D("0.125"), "CAD") == D("0.13")
    assert round_money(D("0.124999"), "CAD") == D("0.12")
    assert round_money(D("2.5"), "JPY") == D("3")
    assert round_money(D("0.0005"), "KWD") == D("0.001")
    assert minor_unit("eur") == D("0.01")
    # Three lines of 1 x 0.125 each round to 0.13: 0.39, not round(0.375) = 0.38.
    prices = Prices("CAD", D(0), D("0.125"), D("0.125"), D("0.125"))
    result = estimate(prices, FEB_2024, t("2024-02-10"), ProtocolCounts(1, 1, 1), NO_STORAGE)
    assert result.total == D("0.39")


def test_storage_quantity_rounds_to_a_thousandth_of_a_gb_then_prices():
    # 0.0005 GB for the whole cycle rounds up to 0.001; at 1000/GB that is 1.00.
    cycle_seconds = 29 * DAY
    storage = StorageUse(byte_seconds=D(GIB) * D("0.0005") * cycle_seconds, current_bytes=0)
    prices = Prices("CAD", D(1000), D(0), D(0), D(0))
    result = estimate(prices, FEB_2024, t("2024-02-29"), [], storage)
    assert result.line("storage").quantity == D("0.001")
    assert result.line("storage").amount == D("1.00")


def test_projected_storage_holds_the_current_usage_until_the_cycles_end():
    # Nothing stored so far; 29 GB from the 16th on, 14 of February 2024's 29 days are
    # left: 29 GB x 14/29 = 14 GB for the cycle, all of it projected.
    storage = StorageUse(byte_seconds=D(0), current_bytes=29 * GIB)
    prices = Prices("CAD", D(1), D(0), D(0), D(0))
    result = estimate(prices, FEB_2024, t("2024-02-16"), [], storage)
    assert result.line("storage").quantity == D("14.000")
    assert (result.accrued, result.projected) == (D("0.00"), D("14.00"))


def test_a_full_month_of_constant_use_bills_exactly_that_use_in_any_month():
    prices = Prices("CAD", D("0.10"), D(0), D(0), D(0))
    for cycle in (
        FEB_2024,
        Cycle(t("2023-02-01"), t("2023-03-01")),
        Cycle(t("2024-03-01"), t("2024-04-01")),
    ):
        at = cycle.start + timedelta(days=9, hours=3)
        samples = [UsageSample(1, cycle.start - timedelta(days=3), 10 * GIB)]
        result = estimate(prices, cycle, at, [], storage_use(samples, cycle.start, at))
        assert result.line("storage").quantity == D("10.000")
        assert result.total == D("1.00")


def test_the_estimates_time_must_fall_in_its_cycle():
    with pytest.raises(ValueError):
        estimate(PRICES, FEB_2024, t("2024-03-01"), [], NO_STORAGE)


def test_an_estimate_in_another_zone_is_the_same_instant():
    montreal = timezone(timedelta(hours=-5))
    at = datetime(2024, 2, 14, 19, 0, tzinfo=montreal)
    result = estimate(PRICES, FEB_2024, at, [], NO_STORAGE)
    assert result.at == t("2024-02-15")


def test_unit_prices_show_the_minor_unit_at_least():
    assert str(price_text(D("5.0000"), "CAD")) == "5.00"
    assert str(price_text(D("0.0125"), "CAD")) == "0.0125"
    assert str(price_text(D("100"), "CAD")) == "100.00"
    assert str(price_text(D("0E-4"), "CAD")) == "0.00"
    assert str(price_text(D("500.0000"), "JPY")) == "500"


# --- The combined rate's saving ------------------------------------------------------------


def test_the_combined_rate_saves_the_two_prices_minus_the_combined_one():
    saving = combined_rate_saving(PRICES, 3)
    assert saving.each == D("1.5")  # 4 + 6 - 8.5
    assert saving.total == D("4.50")
    assert combined_rate_saving(PRICES, 0).total == D("0.00")


@pytest.mark.parametrize("combined", ["10", "10.0000", "10.01", "25"])
def test_a_combined_price_at_or_above_the_two_saves_nothing(combined):
    prices = Prices("CAD", D(0), D("4"), D("6"), D(combined))
    saving = combined_rate_saving(prices, 2)
    assert saving.each == 0 and saving.each >= 0
    assert str(saving.total) == "0.00"
    # The estimate bills the combined price as the plan says, and shows no (negative) saving.
    result = estimate(prices, FEB_2024, t("2024-02-15"), ProtocolCounts(eas_mapi=2), NO_STORAGE)
    assert result.line("eas_mapi").amount == round_money(2 * D(combined), "CAD")
    assert (result.as_dict()["combined_saving"], result.as_dict()["combined_saving_each"]) == (
        "0.00",
        "0.00",
    )


def test_the_saving_rounds_half_up_to_the_minor_unit_and_keeps_the_prices_precision():
    # 0.0125 saved per mailbox: shown to the prices' precision, like a unit price; the total
    # is money, rounded half up to the cent.
    prices = Prices("CAD", D(0), D("1.0125"), D("1"), D("2"))
    saving = combined_rate_saving(prices, 3)
    assert str(price_text(saving.each, "CAD")) == "0.0125"
    assert saving.total == D("0.04")
    assert combined_rate_saving(prices, 1).total == D("0.01")  # 0.0125 → 0.01
    assert combined_rate_saving(prices, 2).total == D("0.03")  # 0.025 → 0.03 (banker's: 0.02)
    jpy = Prices("JPY", D(0), D("400"), D("600"), D("850"))
    assert str(combined_rate_saving(jpy, 2).total) == "300"
    kwd = Prices("KWD", D(0), D("1.0005"), D("1"), D("2"))
    assert str(combined_rate_saving(kwd, 1).total) == "0.001"  # 0.0005 → 0.001


def test_the_estimate_carries_the_saving_of_its_combined_rate_mailboxes():
    result = estimate(PRICES, FEB_2024, t("2024-02-15"), ProtocolCounts(1, 1, 2), NO_STORAGE)
    assert result.combined_saving == combined_rate_saving(PRICES, 2)
    data = result.as_dict()
    assert (data["combined_saving"], data["combined_saving_each"]) == ("3.00", "1.50")
    # The saving explains the lines, it is not one: the total is unchanged by it.
    assert result.total == D("4.00") + D("6.00") + D("17.00")


@given(
    prices=st.tuples(*[st.decimals(0, 1000, places=4)] * 3),
    mailboxes=st.integers(0, 10_000),
)
def test_a_saving_is_never_negative_and_is_what_the_lines_would_differ_by(prices, mailboxes):
    eas, mapi, both = prices
    saving = combined_rate_saving(Prices("CAD", D(0), eas, mapi, both), mailboxes)
    assert saving.each >= 0 and saving.total >= 0
    if both < eas + mapi:
        assert saving.each == eas + mapi - both
        assert saving.total == round_money((eas + mapi - both) * mailboxes, "CAD")
    else:
        assert saving.total == 0

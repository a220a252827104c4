"""The billing CLI as scripts drive it: real `postdesk` processes, one-line errors, and a
replayed history (`--at`) that yields a known estimate."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.cli import assert_fails, assert_ok, run_postdesk

pytestmark = pytest.mark.own_database
GIB = 1024**3


@pytest.fixture(scope="module")
def migrated(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("billing-migrated")
    assert_ok(run_postdesk(data, "migrate", "--noinput"))
    for args in (
        ["client", "create", "Acme"],
        ["domain", "add", "acme.example", "--client", "Acme"],
        [
            *("plan", "create", "Basic", "--cycle", "monthly", "--currency", "CAD"),
            *("--storage-gb", "0.50", "--eas", "4", "--mapi", "6", "--eas-mapi", "8.5"),
        ],
    ):
        assert_ok(run_postdesk(data, *args))
    return data


@pytest.fixture
def pd(migrated, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(migrated, data)

    def run(*args: str, input: str | None = None):
        return run_postdesk(data, *args, input=input)

    return run


def test_a_replayed_history_yields_a_known_estimate(pd):
    steps = [
        ["client", "set-plan", "Acme", "basic", "--at", "2024-01-31T00:00:00Z"],
        [
            *("mailbox", "create", "marie@acme.example", "--generate-password", "--eas"),
            *("--at", "2024-02-01T00:00:00Z"),
        ],
        [
            *("mailbox", "create", "paul@acme.example", "--generate-password", "--eas"),
            *("--mapi", "--at", "2024-02-01T00:00:00Z"),
        ],
        # Toggled many times: still one EAS charge; then MAPI late: the combined rate.
        ["mailbox", "edit", "marie@acme.example", "--no-eas", "--at", "2024-02-02T00:00:00Z"],
        ["mailbox", "edit", "marie@acme.example", "--eas", "--at", "2024-02-03T00:00:00Z"],
        ["mailbox", "edit", "marie@acme.example", "--no-eas", "--at", "2024-02-04T00:00:00Z"],
        ["mailbox", "edit", "marie@acme.example", "--mapi", "--at", "2024-02-20T00:00:00-05:00"],
        ["usage", "record", "paul@acme.example", str(29 * GIB), "--at", "2024-01-31T00:00:00Z"],
        # Deleted after 10 of the cycle's 29 days: billed for EAS+MAPI, 10/29 of its storage.
        ["mailbox", "delete", "paul@acme.example", "--yes", "--at", "2024-02-10T00:00:00Z"],
        ["usage", "record", "marie@acme.example", str(2 * GIB), "--at", "2024-02-24T00:00:00Z"],
    ]
    for args in steps:
        assert_ok(pd(*args))
    result = pd("billing", "estimate", "acme.example", "--at", "2024-02-25T00:00:00Z", "--json")
    assert_ok(result)
    data = json.loads(result.stdout)
    # Storage: paul 29 GB x 10 days + marie 2 GB x 1 day accrued, marie 2 GB x 4 days
    # projected; over 29 days: (290 + 2) / 29 = 10.069 GB-cycles accrued, +8/29 = 10.345.
    assert data == {
        "period_start": "2024-01-31T00:00:00+00:00",
        "period_end": "2024-02-29T00:00:00+00:00",
        "at": "2024-02-25T00:00:00+00:00",
        "currency": "CAD",
        "accrued": "22.03",
        "projected": "0.14",
        "total": "22.17",
        # Two mailboxes billed the combined rate: each saves 4 + 6 - 8.50.
        "combined_saving": "3.00",
        "combined_saving_each": "1.50",
        "lines": [
            {
                "item": "storage",
                "quantity": "10.345",
                "unit_price": "0.50",
                "amount": "5.17",
                "accrued": "5.03",
                "projected": "0.14",
            },
            *(
                {
                    "item": item,
                    "quantity": "0",
                    "unit_price": price,
                    "amount": "0.00",
                    "accrued": "0.00",
                    "projected": "0.00",
                }
                for item, price in (("eas", "4.00"), ("mapi", "6.00"))
            ),
            {
                "item": "eas_mapi",
                "quantity": "2",
                "unit_price": "8.50",
                "amount": "17.00",
                "accrued": "17.00",
                "projected": "0.00",
            },
        ],
    }
    text = pd("billing", "estimate", "acme.example", "--at", "2024-02-25T00:00:00Z")
    assert_ok(text)
    assert "accrued 22.03 + projected 0.14 = 22.17 CAD" in text.stdout
    assert "combined rate saves 3.00 CAD (1.50 each)" in text.stdout


def test_times_without_a_zone_are_refused_in_one_line(pd):
    for args in (
        ["billing", "estimate", "acme.example", "--at", "2024-02-25T00:00:00"],
        ["client", "set-plan", "Acme", "Basic", "--at", "2024-02-25"],
        ["mailbox", "create", "a@acme.example", "--generate-password", "--at", "yesterday"],
        ["usage", "record", "a@acme.example", "5", "--at", "2024-02-25 10:00"],
    ):
        result = pd(*args)
        line = assert_fails(result, "usage")
        assert result.returncode == 2
        assert "zone" in line
    assert_fails(pd("mailbox", "edit", "nobody@acme.example", "--at", "2024"), "usage")


def test_errors_are_one_line_with_their_code(pd):
    assert_fails(pd("billing", "estimate", "acme.example"), "no_plan")
    assert_fails(pd("billing", "estimate", "other.example"), "not_found")
    assert_fails(pd("client", "set-plan", "Acme", "Gold"), "not_found")
    assert_fails(pd("client", "set-plan", "Nobody", "Basic"), "not_found")
    assert_fails(pd("usage", "record", "nobody@acme.example", "5"), "not_found")
    assert_fails(
        pd(
            *("plan", "create", "Basic", "--currency", "CAD", "--storage-gb", "1"),
            *("--eas", "1", "--mapi", "1", "--eas-mapi", "1"),
        ),
        "plan_exists",
    )
    assert_fails(
        pd(
            *("plan", "create", "Odd", "--currency", "CA$", "--storage-gb", "-1"),
            *("--eas", "1", "--mapi", "1", "--eas-mapi", "1"),
        ),
        "currency_invalid",
    )
    assert_fails(
        pd(
            *("plan", "create", "Odd", "--currency", "CAD", "--storage-gb", "lots"),
            *("--eas", "1", "--mapi", "1", "--eas-mapi", "1"),
        ),
        "usage",
    )
    assert_ok(pd("mailbox", "create", "a@acme.example", "--generate-password"))
    assert_fails(pd("usage", "record", "a@acme.example", "-5"), "usage_invalid")
    future = "2999-01-01T00:00:00Z"
    assert_fails(pd("usage", "record", "a@acme.example", "5", "--at", future), "time_in_future")
    assert_fails(pd("mailbox", "edit", "a@acme.example", "--eas", "--at", future), "time_in_future")
    assert_fails(
        pd("mailbox", "delete", "a@acme.example", "--yes", "--at", future), "time_in_future"
    )


def test_a_quarterly_plan_and_the_usage_sample_updates_the_listing(pd):
    assert_ok(
        pd(
            *("plan", "create", "Quarter", "--cycle", "quarterly", "--currency", "EUR"),
            *("--storage-gb", "0.0125", "--eas", "0", "--mapi", "0", "--eas-mapi", "0"),
            *("--storage-limit-mb", "10240"),
        )
    )
    assert_ok(pd("client", "set-plan", "Acme", "Quarter", "--at", "2024-01-31T00:00:00Z"))
    assert_ok(pd("mailbox", "create", "a@acme.example", "--generate-password"))
    assert_ok(pd("usage", "record", "a@acme.example", str(GIB), "--at", "2024-01-01T00:00:00Z"))
    listing = json.loads(pd("address", "list", "acme.example", "--json").stdout)
    assert listing[0]["used_bytes"] == GIB
    result = pd("billing", "estimate", "acme.example", "--at", "2024-05-01T00:00:00Z", "--json")
    assert_ok(result)
    data = json.loads(result.stdout)
    assert (data["period_start"], data["period_end"]) == (
        "2024-04-30T00:00:00+00:00",
        "2024-07-31T00:00:00+00:00",
    )
    assert data["lines"][0] == {
        "item": "storage",
        "quantity": "1.000",
        "unit_price": "0.0125",
        "amount": "0.01",
        "accrued": "0.00",
        "projected": "0.01",
    }


def test_address_list_sorted_by_growth_over_7_days(pd):
    now = datetime.now(UTC)

    def ago(days: float) -> str:
        return (now - timedelta(days=days)).isoformat()

    for name in ("big", "fast", "slow"):
        assert_ok(pd("mailbox", "create", f"{name}@acme.example", "--generate-password"))
    assert_ok(pd("forward", "create", "info@acme.example", "fast@acme.example"))
    for name, days, size in (
        ("big", 10, 50 * GIB),  # the largest, but it did not grow this week
        ("big", 1, 50 * GIB),
        ("fast", 9, GIB),
        ("fast", 1, 4 * GIB),
        ("slow", 10, GIB),
        ("slow", 1, GIB + 1024**2),
    ):
        assert_ok(pd("usage", "record", f"{name}@acme.example", str(size), "--at", ago(days)))

    result = pd("address", "list", "acme.example", "--sort", "growth", "--json")
    assert_ok(result)
    rows = [(row["address"], row["growth_7d_bytes"]) for row in json.loads(result.stdout)]
    assert rows == [
        ("fast@acme.example", 3 * GIB),
        ("slow@acme.example", 1024**2),
        ("big@acme.example", 0),
        ("info@acme.example", None),
    ]
    text = pd("address", "list", "acme.example", "--sort", "growth")
    assert_ok(text)
    first = text.stdout.splitlines()[0]
    assert first.startswith("fast@acme.example\tmailbox")
    assert "4.0 GB; +3.0 GB in 7 days" in first


def test_plan_list_with_the_clients_on_each_plan_now(pd):
    assert_ok(
        pd(
            *("plan", "create", "Annual", "--cycle", "yearly", "--currency", "EUR"),
            *("--storage-gb", "0.0125", "--eas", "40", "--mapi", "60", "--eas-mapi", "85"),
            *("--storage-limit-mb", "10240"),
        )
    )
    assert_ok(pd("client", "create", "Bravo"))
    for client, plan, at in (
        ("Acme", "Basic", "2024-01-01T00:00:00Z"),
        ("Acme", "Annual", "2024-06-01T00:00:00Z"),  # Acme's plan now
        ("Bravo", "Basic", "2024-01-01T00:00:00Z"),
    ):
        assert_ok(pd("client", "set-plan", client, plan, "--at", at))
    # Scheduled far ahead: not in force now.
    assert_ok(pd("client", "set-plan", "Bravo", "Annual", "--at", "2999-01-01T00:00:00Z"))

    result = pd("plan", "list", "--json")
    assert_ok(result)
    assert json.loads(result.stdout) == [
        {
            "name": "Annual",
            "cycle_months": 12,
            "currency": "EUR",
            "storage_gb_price": "0.0125",
            "eas_price": "40.00",
            "mapi_price": "60.00",
            "eas_mapi_price": "85.00",
            "storage_limit_mb": 10240,
            "clients": 1,
        },
        {
            "name": "Basic",
            "cycle_months": 1,
            "currency": "CAD",
            "storage_gb_price": "0.50",
            "eas_price": "4.00",
            "mapi_price": "6.00",
            "eas_mapi_price": "8.50",
            "storage_limit_mb": None,
            "clients": 1,
        },
    ]
    text = pd("plan", "list")
    assert_ok(text)
    assert text.stdout.splitlines()[1].startswith("Basic\t1 month(s)\tCAD\tstorage/GB 0.50")
    assert text.stdout.splitlines()[1].endswith("limit none\t1 client(s)")
    # Names are unique whatever their case.
    duplicate = pd(
        *("plan", "create", "BASIC", "--currency", "CAD", "--storage-gb", "1"),
        *("--eas", "1", "--mapi", "1", "--eas-mapi", "1"),
    )
    assert_fails(duplicate, "plan_exists")

"""Benchmark of the billing estimate: a domain of 10,000 mailboxes with a year of daily
usage samples (3.65 M rows), and the same history for 10 mailboxes.

    python bench/billing_estimate.py [--db-url URL] [--mailboxes 10000] [--days 365]
                                     [--runs 30] [--warmups 3]

Without --db-url, a fresh SQLite database (WAL, as in production) in a temporary directory
is migrated and thrown away. With --db-url that database is migrated and the bench rows are
added to it (use a throwaway database: they are not removed).

Exit status 0 when the estimate runs the same number of SQL queries at both sizes, 1 when
not. The p50 target (200 ms at 10,000 mailboxes) is reported, not enforced.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchsetup import setup_django

TARGET_P50_MS = 200.0
PLAN_START = datetime(2024, 1, 1, tzinfo=UTC)
# Mid-cycle of the last month of the year: 19.5 days of December's samples are in the cycle.
ESTIMATE_AT = datetime(2024, 12, 20, 12, 0, tzinfo=UTC)


def bench_plan():
    """A plan with every price set, under a name of its own (the billing benchmarks')."""
    from postdesk.billing.models import Plan

    return Plan.objects.create(
        name=f"Bench {time.time_ns()}",
        currency="CAD",
        storage_gb_price="0.0500",
        eas_price="4.0000",
        mapi_price="6.0000",
        eas_mapi_price="8.5000",
    )


def fill(
    name: str, mailboxes: int, days: int, plan, start: datetime = PLAN_START
) -> tuple[object, float]:
    """A client on `plan` (from `start`) with a domain of `mailboxes`, each with `days` daily
    samples from `start` and activation periods for its protocols. Returns the domain and
    the seconds it took."""
    from bench.dataset import make_domain
    from django.db import connection, transaction

    from postdesk.billing.models import ClientPlan, ProtocolActivation, UsageSample
    from postdesk.mail.models import Mailbox
    from postdesk.mail.services import mailbox_growth_refresh

    started = time.perf_counter()
    domain = make_domain(name, mailboxes=mailboxes, aliases=0, forwards=0)
    ClientPlan.objects.create(client_id=domain.client_id, plan=plan, starts_at=start)
    rng = random.Random(20240601)
    boxes = list(
        Mailbox.objects.filter(address__domain=domain)
        .order_by("pk")
        .values_list("pk", "address__local_part", "eas_enabled", "mapi_enabled", "used_bytes")
    )
    periods = []
    for pk, local_part, eas, mapi, _used in boxes:
        for protocol, on in (("eas", eas), ("mapi", mapi)):
            if on:
                periods.append(
                    ProtocolActivation(
                        mailbox_id=pk,
                        mailbox_key=pk,
                        address=f"{local_part}@{domain.name}",
                        domain_id=domain.pk,
                        client_id=domain.client_id,
                        protocol=protocol,
                        started_at=start + timedelta(days=rng.randrange(0, 300)),
                    )
                )
    ProtocolActivation.objects.bulk_create(periods, batch_size=2000)
    # The samples: executemany over plain tuples, far faster than model instances.
    table = UsageSample._meta.db_table
    ops = connection.ops
    sql = (
        f"INSERT INTO {table} (mailbox_id, mailbox_key, domain_id, at, until, bytes, messages)"  # noqa: S608
        " VALUES (%s, %s, %s, %s, %s, %s, NULL)"
    )
    moments = [
        ops.adapt_datetimefield_value(start + timedelta(days=d, hours=3)) for d in range(days)
    ]
    # Each sample holds until the next day's (the services keep `until` the same way).
    untils = [*moments[1:], None]
    with transaction.atomic(), connection.cursor() as cursor:
        for pk, _local, _eas, _mapi, used in boxes:
            # A mailbox grows through the year towards its current size.
            start = int(used * rng.uniform(0.3, 0.9))
            step = (used - start) // max(1, days)
            cursor.executemany(
                sql,
                [
                    (pk, pk, domain.pk, moment, until, start + step * d)
                    for d, (moment, until) in enumerate(zip(moments, untils, strict=True))
                ],
            )
    # Written around the services, so the growth they keep is set as a bulk load does.
    mailbox_growth_refresh(Mailbox.objects.filter(domain=domain))
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {table}")
    return domain, time.perf_counter() - started


def measure(domain, runs: int, warmups: int) -> tuple[float, float, int, object]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from postdesk.billing.selectors import billing_estimate
    from postdesk.tenancy.access import Actor

    actor = Actor.operator("bench")

    def call():
        return billing_estimate(actor=actor, domain=domain, at=ESTIMATE_AT)

    for _ in range(warmups):
        call()
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        timings.append((time.perf_counter() - start) * 1000)
    with CaptureQueriesContext(connection) as captured:
        result = call()
    ordered = sorted(timings)
    p95 = ordered[max(0, int(0.95 * len(ordered) + 0.999) - 1)]
    return statistics.median(timings), p95, len(captured), result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db-url")
    parser.add_argument("--mailboxes", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmups", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="postdesk-bench-") as tmp:
        setup_django(args.db_url, Path(tmp))
        from django.db import connection

        plan = bench_plan()
        suffix = time.time_ns()
        small, small_s = fill(f"small-{suffix}.example", 10, args.days, plan)
        large, large_s = fill(f"large-{suffix}.example", args.mailboxes, args.days, plan)
        version = connection.Database.sqlite_version if connection.vendor == "sqlite" else ""
        print(f"database: {connection.vendor} {version}".rstrip())
        samples = args.mailboxes * args.days
        print(
            f"generated: small in {small_s:.1f} s, large ({args.mailboxes:,} mailboxes x "
            f"{args.days} daily samples = {samples:,} samples) in {large_s:.1f} s"
        )
        results = {}
        for label, domain in (("small", small), ("large", large)):
            p50, p95, queries, estimate = measure(domain, args.runs, args.warmups)
            results[label] = queries
            lines = ", ".join(f"{line.item} {line.quantity}" for line in estimate.lines)
            print(
                f"{label:>5}: p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  {queries} queries  "
                f"total {estimate.total} {estimate.currency} ({lines})"
            )
            if label == "large" and p50 > TARGET_P50_MS:
                print(f"       over the {TARGET_P50_MS:.0f} ms target")
        if results["small"] != results["large"]:
            print("query count differs between the sizes")
            return 1
        print(f"same query count at both sizes ({results['large']}); target p50 <= 200 ms")
        return 0


if __name__ == "__main__":
    sys.exit(main())

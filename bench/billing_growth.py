"""Benchmark of the address list's growth over 7 days, from the usage samples: a domain of
10,000 mailboxes with a year of daily samples up to now (3.65 M rows), and the same history
for 10 mailboxes.

    python bench/billing_growth.py [--db-url URL] [--mailboxes 10000] [--days 365]
                                   [--runs 30] [--warmups 3]

Without --db-url, a fresh SQLite database (WAL, as in production) in a temporary directory
is migrated and thrown away. With --db-url that database is migrated and the bench rows are
added to it (use a throwaway database: they are not removed).

Times `address_list` by address, by storage and by growth, a page of 50 (the growth is each
mailbox's stored `growth_7d_bytes`, read off an index for the growth sort), and what keeping
it costs: `mailbox_usage_record` of one more sample (as the collector writes, the growth refreshed
in the same transaction) and the set-wise `mailbox_growth_refresh` of the whole domain (a bulk
load's). Exit status 0 when each case runs the same number of SQL queries at both sizes, 1
when not. The p50 target (30 ms, the address list's) is reported, not enforced.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.billing_estimate import bench_plan, fill, setup_django

TARGET_P50_MS = 30.0


def measure(call, runs: int, warmups: int) -> tuple[float, float, int, object]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

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


def write_costs(domain, runs: int) -> None:
    """What the stored growth costs its writers: one more sample per mailbox (as a
    collector's run records it: the sample, `until`, the usage, the growth), and the refresh
    of every mailbox of the domain at once."""
    from django.db import transaction

    from postdesk.mail.models import Mailbox
    from postdesk.mail.services import mailbox_growth_refresh, mailbox_usage_record
    from postdesk.tenancy.access import Actor

    actor = Actor.operator("bench")
    mailboxes = list(Mailbox.objects.filter(domain=domain).select_related("address")[:runs])
    now = datetime.now(UTC)
    timings = []
    for mailbox in mailboxes:
        start = time.perf_counter()
        mailbox_usage_record(
            actor=actor, mailbox=mailbox, used_bytes=mailbox.used_bytes + 1, at=now
        )
        timings.append((time.perf_counter() - start) * 1000)
    refreshes = []
    for mailbox in mailboxes:
        # Inside a transaction, as mailbox_usage_record runs it (its commit is the record's).
        with transaction.atomic():
            start = time.perf_counter()
            mailbox_growth_refresh(Mailbox.objects.filter(pk=mailbox.pk))
            refreshes.append((time.perf_counter() - start) * 1000)
    print(
        f"mailbox_usage_record, one sample of a mailbox with a year of samples: "
        f"p50 {statistics.median(timings):.2f} ms ({len(timings)} mailboxes), of which the "
        f"growth's refresh p50 {statistics.median(refreshes):.2f} ms"
    )
    start = time.perf_counter()
    updated = mailbox_growth_refresh(Mailbox.objects.filter(domain=domain))
    print(
        f"mailbox_growth_refresh of the domain ({updated:,} mailboxes): "
        f"{(time.perf_counter() - start) * 1000:.0f} ms"
    )


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

        from postdesk.mail.choices import AddressListSort, AddressListType
        from postdesk.mail.selectors import address_list
        from postdesk.tenancy.access import Actor

        plan = bench_plan()
        # The samples end today, so "now" and "7 days ago" both fall inside the history.
        start = datetime.now(UTC) - timedelta(days=args.days)
        suffix = time.time_ns()
        small, small_s = fill(f"small-{suffix}.example", 10, args.days, plan, start)
        large, large_s = fill(f"large-{suffix}.example", args.mailboxes, args.days, plan, start)
        version = connection.Database.sqlite_version if connection.vendor == "sqlite" else ""
        print(f"database: {connection.vendor} {version}".rstrip())
        samples = args.mailboxes * args.days
        print(
            f"generated: small in {small_s:.1f} s, large ({args.mailboxes:,} mailboxes x "
            f"{args.days} daily samples = {samples:,} samples) in {large_s:.1f} s"
        )
        actor = Actor.operator("bench")
        cases = {
            "first page, by address": {},
            "sort by storage": {"sort": AddressListSort.STORAGE},
            "sort by growth": {"sort": AddressListSort.GROWTH},
            "sort by growth, mailboxes": {
                "sort": AddressListSort.GROWTH,
                "type": AddressListType.MAILBOX,
            },
        }
        counts: dict[str, dict[str, int]] = {}
        for label, domain in (("small", small), ("large", large)):
            for case, options in cases.items():

                def call(domain=domain, options=options):
                    return address_list(actor=actor, domain=domain, **options)

                p50, p95, queries, page = measure(call, args.runs, args.warmups)
                counts.setdefault(case, {})[label] = queries
                top = page.rows[0]
                print(
                    f"{label:>5} {case:<26}: p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  "
                    f"{queries} queries  first {top.local_part} "
                    f"(growth {top.growth_7d_bytes})"
                )
                if label == "large" and p50 > TARGET_P50_MS:
                    print(f"       over the {TARGET_P50_MS:.0f} ms target")
        write_costs(large, args.runs)
        differing = [case for case, c in counts.items() if c["small"] != c["large"]]
        if differing:
            print("query count differs between the sizes: " + ", ".join(differing))
            return 1
        print("same query count at both sizes in every case")
        return 0


if __name__ == "__main__":
    sys.exit(main())

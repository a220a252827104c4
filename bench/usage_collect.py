"""Benchmark of the usage collector's writes: one run's measures of every mailbox of a domain
(10,000 by default, each with 30 days of daily samples before) recorded in batches, as
`postdesk dataplane collect-usage` does, against `mailbox_usage_record` called for each mailbox.

    python bench/usage_collect.py [--db-url URL] [--mailboxes 10000] [--days 30]

Dovecot's reading (one doveadm HTTP call, `dovecot_usage`) is not part of it: the measures
are made up, and what is timed is `workflows.usage.record_usage`, everything after that
call. Without --db-url, a fresh SQLite database (WAL, as in production) in a temporary
directory is migrated and thrown away; with --db-url the rows are added to that database
(use a throwaway one).

Exit status 0 when both ways leave every mailbox with the same usage, growth and number of
samples, 1 when not.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.billing_estimate import bench_plan, fill, setup_django


@contextmanager
def counting() -> Iterator[list[int]]:
    """How many SQL statements run inside (Django's query log keeps only 9,000)."""
    from django.db import connection

    count = [0]

    def wrapper(execute, sql, params, many, context):
        count[0] += 1
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        yield count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db-url")
    parser.add_argument("--mailboxes", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="postdesk-bench-") as tmp:
        setup_django(args.db_url, Path(tmp))
        return run(args)


def run(args: argparse.Namespace) -> int:
    from django.db import connection
    from django.db.models import Count

    from postdesk.mail.models import Mailbox
    from postdesk.mail.services import mailbox_usage_record
    from postdesk.tenancy.access import Actor
    from postdesk.workflows.usage import record_usage

    plan = bench_plan()
    now = datetime.now(UTC)
    start = now - timedelta(days=args.days)
    suffix = time.time_ns()
    domains = []
    for way in ("batched", "one-by-one"):
        domain, seconds = fill(f"{way}-{suffix}.example", args.mailboxes, args.days, plan, start)
        domains.append(domain)
        print(f"- {way}: {args.mailboxes:,} mailboxes x {args.days} samples in {seconds:.1f} s")
    version = connection.Database.sqlite_version if connection.vendor == "sqlite" else ""
    print(f"- database: {connection.vendor} {version}".rstrip())

    def measures(domain, limit: int | None = None) -> dict[str, tuple[int, int]]:
        rows = (
            Mailbox.objects.filter(domain=domain)
            .order_by("local_part")
            .values_list("local_part", "used_bytes")[:limit]
        )
        return {f"{name}@{domain.name}": (used + 4096, 100) for name, used in rows}

    operator = Actor.operator("bench")

    def one_by_one(domain, at: datetime, limit: int | None = None) -> None:
        mailboxes = Mailbox.objects.filter(domain=domain).order_by("local_part")
        for mailbox in mailboxes.select_related("address__domain")[:limit]:
            mailbox_usage_record(
                actor=operator,
                mailbox=mailbox,
                used_bytes=mailbox.used_bytes + 4096,
                messages=100,
                at=at,
            )

    # A run now: newer than the bench's "measured at" times and every sample.
    run_at = datetime.now(UTC)
    batched, single = domains
    measured = measures(batched)
    # record_usage reads every mailbox of the panel to match the addresses (the other
    # domain's too, as on a real host): timed with the rest.
    started = time.perf_counter()
    summary = record_usage(measured, at=run_at)
    batched_s = time.perf_counter() - started
    assert summary.measured == args.mailboxes and not summary.refused, summary
    started = time.perf_counter()
    one_by_one(single, run_at)
    single_s = time.perf_counter() - started

    # The queries, on one more run of 1,000 mailboxes each way (counting slows a timed run).
    later = run_at + timedelta(seconds=1)
    with counting() as batched_queries:
        record_usage(measures(batched, 1000), at=later)
    with counting() as single_queries:
        one_by_one(single, later, 1000)

    print()
    print("| way | mailboxes | seconds | ms per mailbox | queries per 1,000 mailboxes |")
    print("|---|---:|---:|---:|---:|")
    for way, seconds, queries in (
        ("record_usage, batches of 500", batched_s, batched_queries[0]),
        ("mailbox_usage_record for each", single_s, single_queries[0]),
    ):
        print(
            f"| {way} | {args.mailboxes:,} | {seconds:.2f} | "
            f"{seconds * 1000 / args.mailboxes:.3f} | {queries:,} |"
        )

    def outcome(domain) -> list[tuple]:
        return list(
            Mailbox.objects.filter(domain=domain)
            .annotate(samples=Count("usage_samples"))
            .order_by("local_part")
            .values_list(
                "local_part", "used_bytes", "used_measured_at", "growth_7d_bytes", "samples"
            )
        )

    same = outcome(batched) == outcome(single)
    print()
    print("OK: the same usage, growth and samples both ways" if same else "FAIL: they differ")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())

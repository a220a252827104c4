"""Benchmark of the address list selector at 10 rows and at 10,000 mailboxes.

    python bench/address_list.py [--db-url URL] [--runs 30] [--warmups 3] [--explain]

Without --db-url, a fresh SQLite database in a temporary directory is migrated and thrown
away. With --db-url (e.g. postgres://postdesk@127.0.0.1:55432/bench) that database is
migrated, two bench domains are added to it, and they are deleted again at the end.

Exit status: 0 when every case runs the same number of SQL queries at both sizes, 1 when one
does not (the selector then runs queries per row or per page content), 2 on a usage error.
The p50 target (30 ms at 10,000 mailboxes) is reported, not enforced: timings depend on
the machine.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchsetup import setup_django

TARGET_P50_MS = 30.0
# The two sizes every list benchmark compares (api_list.py and web_dashboard.py use these).
SMALL = {"mailboxes": 10, "aliases": 10, "forwards": 2}
LARGE = {"mailboxes": 10_000, "aliases": 10_000, "forwards": 2_000}


@dataclass(frozen=True)
class Result:
    case: str
    rows: int
    matches: int
    p50_ms: float
    p95_ms: float
    queries: int
    sql: list[str]


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile: a value that was actually measured."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def measure(case: str, rows: int, call: Callable[[], Any], runs: int, warmups: int) -> Result:
    """Time `call` (wall clock, whole selector including Python) and count its queries."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    # Warm-ups fill the SQLite page cache / PostgreSQL buffers and Django's lazy imports.
    for _ in range(warmups):
        call()
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        timings.append((time.perf_counter() - start) * 1000)
    # Queries are counted on a separate run: capturing them slows the cursor down.
    with CaptureQueriesContext(connection) as captured:
        page = call()
    return Result(
        case=case,
        rows=rows,
        matches=page.total,
        p50_ms=statistics.median(timings),
        p95_ms=percentile(timings, 0.95),
        queries=len(captured),
        sql=[q["sql"] for q in captured.captured_queries],
    )


def cases(domain: Any, middle_page: int) -> list[tuple[str, dict[str, Any]]]:
    """The list views a user opens, with arguments that exist at the domain's size."""
    from bench.dataset import search_samples

    from postdesk.mail.choices import AddressListSort, AddressListType

    samples = search_samples(domain)
    return [
        ("first page", {}),
        ("middle page", {"page": middle_page}),
        ("sort by storage", {"sort": AddressListSort.STORAGE}),
        ("sort by growth", {"sort": AddressListSort.GROWTH}),
        ("type: mailbox", {"type": AddressListType.MAILBOX}),
        ("type: forward", {"type": AddressListType.FORWARD}),
        # Each of these three matches exactly one row, so the whole domain is scanned.
        ("search: local part", {"search": samples["local part"]}),
        ("search: alias", {"search": samples["alias"]}),
        ("search: destination", {"search": samples["destination"]}),
        # Many matches: a surname shared by 1 % of the mailboxes (and "martinez").
        ("search: surname", {"search": "martin"}),
    ]


def run_cases(domain: Any, runs: int, warmups: int) -> list[Result]:
    from postdesk.mail.selectors import address_list
    from postdesk.tenancy.access import Actor

    actor = Actor.operator("bench")
    first = address_list(actor=actor, domain=domain)
    middle_page = max(1, (first.num_pages + 1) // 2)
    results = []
    for case, kwargs in cases(domain, middle_page):

        def call(kwargs: dict[str, Any] = kwargs) -> Any:
            return address_list(actor=actor, domain=domain, **kwargs)

        results.append(measure(case, first.total, call, runs, warmups))
    return results


def explain(sql: str) -> str:
    from django.db import connection

    prefix = "EXPLAIN QUERY PLAN " if connection.vendor == "sqlite" else "EXPLAIN ANALYZE "
    with connection.cursor() as cursor:
        # The SQL is the selector's own query, as Django logged it: no outside input.
        cursor.execute(prefix + sql)
        return "\n".join(" | ".join(str(c) for c in row) for row in cursor.fetchall())


def environment_label() -> str:
    import django
    from django.db import connection

    if connection.vendor == "sqlite":
        database = f"SQLite {connection.Database.sqlite_version} (file, WAL)"
    else:
        major, minor = divmod(connection.pg_version, 10000)
        database = f"PostgreSQL {major}.{minor}"
    return (
        f"{database}, Python {platform.python_version()}, Django {django.__version__}, "
        f"{os.cpu_count()} CPUs"
    )


def neighbour_label(neighbours: list) -> str:
    from bench.dataset import NEIGHBOUR_SIZE

    per_domain = sum(NEIGHBOUR_SIZE.values())
    return f"{len(neighbours)} domains of {per_domain} addresses ({len(neighbours) * per_domain:,})"


def refresh_statistics() -> None:
    """PostgreSQL: the state autovacuum reaches after a bulk load (PostgreSQL 13+ vacuums
    after inserts too): statistics to plan with, and a visibility map, without which no
    index-only scan (the counts, the usage aggregate) skips the table.

    SQLite is left as Django leaves it (no ANALYZE, no sqlite_stat1): that is production.
    """
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")


def table(results: list[Result]) -> str:
    lines = [
        "| case | rows in domain | matches | p50 ms | p95 ms | queries |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r.case} | {r.rows:,} | {r.matches:,} | {r.p50_ms:.1f} | {r.p95_ms:.1f} | {r.queries} |"
        for r in results
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db-url", help="database to use instead of a fresh SQLite file")
    parser.add_argument("--runs", type=int, default=30, help="timed calls per case (30)")
    parser.add_argument("--warmups", type=int, default=3, help="untimed calls first (3)")
    parser.add_argument(
        "--target-ms", type=float, default=TARGET_P50_MS, help="p50 target at 10,000 (30)"
    )
    parser.add_argument(
        "--explain", action="store_true", help="print the query plans of the cases over target"
    )
    parser.add_argument(
        "--keep", action="store_true", help="leave the bench domains in the --db-url database"
    )
    args = parser.parse_args(argv)
    if args.runs < 1 or args.warmups < 0:
        parser.error("--runs must be at least 1 and --warmups at least 0")

    with tempfile.TemporaryDirectory(prefix="postdesk-bench-") as data_dir:
        started = time.perf_counter()
        setup_django(args.db_url, Path(data_dir))
        migrate_s = time.perf_counter() - started
        return run(args, migrate_s)


def run(args: argparse.Namespace, migrate_s: float) -> int:
    from bench.dataset import make_domain, make_neighbours

    from postdesk.mail.models import Domain

    # A random tag keeps a shared database's earlier (or concurrent) bench domains apart.
    tag = secrets.token_hex(3)
    sizes = [("small", SMALL), ("large", LARGE)]
    domains, neighbours = [], []
    print(f"# Address list benchmark\n\n- {environment_label()}")
    print(f"- migrate: {migrate_s:.1f} s")
    try:
        for label, size in sizes:
            started = time.perf_counter()
            domains.append(make_domain(f"{label}-{tag}.bench.example", **size))
            elapsed = time.perf_counter() - started
            print(
                f"- dataset {label}: {size['mailboxes']:,} mailboxes, {size['aliases']:,} "
                f"aliases, {size['forwards']:,} forwards generated in {elapsed:.2f} s"
            )
        neighbours = make_neighbours(tag)
        print(f"- other clients: {neighbour_label(neighbours)}")
        refresh_statistics()
        print(f"- {args.runs} timed runs per case after {args.warmups} warm-ups\n")

        by_size = [run_cases(domain, args.runs, args.warmups) for domain in domains]
        print(table([r for pair in zip(*by_size, strict=True) for r in pair]))

        small, large = by_size
        mismatched = [s.case for s, b in zip(small, large, strict=True) if s.queries != b.queries]
        slow = [r for r in large if r.p50_ms > args.target_ms]
        print()
        if mismatched:
            print(f"FAIL: query count differs between sizes: {', '.join(mismatched)}")
        else:
            print("OK: every case runs the same number of queries at both sizes")
        if slow:
            listed = ", ".join(f"{r.case} ({r.p50_ms:.0f} ms)" for r in slow)
            print(
                f"OVER TARGET: p50 above {args.target_ms:g} ms at {large[0].rows:,} rows: {listed}"
            )
        else:
            print(f"OK: every p50 at {large[0].rows:,} rows is within {args.target_ms:g} ms")

        if args.explain:
            for result in slow:
                print(f"\n## {result.case} ({result.p50_ms:.1f} ms)")
                for sql in result.sql:
                    print(f"\n```\n{sql}\n--\n{explain(sql)}\n```")
        return 1 if mismatched else 0
    finally:
        if args.db_url and not args.keep:
            # Deleting the domains cascades to every address, mailbox, alias and destination.
            for domain in domains + neighbours:
                Domain.objects.filter(pk=domain.pk).delete()
                domain.client.delete()


if __name__ == "__main__":
    sys.exit(main())

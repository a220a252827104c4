"""The address list, the API's list and the dashboard's figures at 10,000, 100,000 and
1,000,000 mailboxes in one domain (issue 19, point 7): pages must stay flat.

    python bench/scale.py [--db-url URL] [--sizes 10000,100000,1000000] [--runs 20]

One domain grows to each size in turn (`dataset.add_addresses`: as many aliases as
mailboxes, a fifth as many forwards, in INSERTs of 5,000 rows), beside 100 small neighbours;
after each load `refresh_statistics()` (VACUUM ANALYZE on PostgreSQL), the dashboard's figures
timed over the load's uncompacted totals changes, then `domain_totals_compact()` (what the
`compact-totals` job does within 5 minutes) before the cases. Each case is timed as
an operator (p50 and p95 of `--runs` calls after 3 warm-ups) and its SQL queries counted; exit
status 1 when a case's query count differs between sizes. Use a throwaway database: the rows
stay (a million mailboxes take minutes to delete).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import benchsetup


def _timed(call: Callable[[], Any], runs: int) -> tuple[float, float, int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for _ in range(3):
        call()
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        timings.append((time.perf_counter() - start) * 1000)
    with CaptureQueriesContext(connection) as captured:
        call()
    timings.sort()
    return statistics.median(timings), timings[int(0.95 * (len(timings) - 1))], len(captured)


def _cases(domain: Any) -> list[tuple[str, Callable[[], Any]]]:
    from bench.dataset import search_samples

    from postdesk.mail.selectors import _Listing, address_detail, address_list, domain_summary
    from postdesk.tenancy.access import Actor

    actor = Actor.operator("bench")
    middle = search_samples(domain)["local part"].rstrip("@")
    row = address_list(actor=actor, domain=domain, search=middle + "@").rows[0]
    row = address_detail(actor=actor, address=row.address, type="mailbox")
    cases = []
    for sort in ("address", "storage", "growth"):
        deep = _Listing(domain, "", "all", sort).cursor(row, backward=False)
        cases += [
            (
                f"first page, by {sort}",
                lambda s=sort: address_list(actor=actor, domain=domain, sort=s),
            ),
            (
                f"cursor page mid-list, by {sort}",
                lambda s=sort, c=deep: address_list(actor=actor, domain=domain, sort=s, cursor=c),
            ),
        ]
    cases += [
        ("type: forward", lambda: address_list(actor=actor, domain=domain, type="forward")),
        (
            "search: one mailbox",
            lambda: address_list(actor=actor, domain=domain, search=middle + "@"),
        ),
        ("dashboard figures", lambda: domain_summary(actor=actor, domain=domain)),
    ]
    return cases


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db-url")
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    benchsetup.setup_django(args.db_url)

    from bench.address_list import refresh_statistics
    from bench.dataset import add_addresses, make_domain, make_neighbours
    from django.db import connection

    from postdesk.mail.models import DomainTotalsChange
    from postdesk.mail.selectors import domain_summary
    from postdesk.mail.services import domain_totals_compact
    from postdesk.tenancy.access import Actor

    tag = str(int(time.time()))
    make_neighbours(tag)
    domain = make_domain(f"scale-{tag}.bench.example", 0, 0, 0)
    loaded = 0
    counts: dict[str, set[int]] = {}
    print(f"database: {connection.vendor}")
    for size in (int(s) for s in args.sizes.split(",")):
        start = time.perf_counter()
        add = size - loaded
        add_addresses(domain, mailboxes=add, aliases=add, forwards=add // 5)
        loaded = size
        refresh_statistics()
        print(
            f"\n{size:,} mailboxes (+ as many aliases, {size // 5:,} forwards): "
            f"loaded in {time.perf_counter() - start:.0f} s"
        )
        changes = DomainTotalsChange.objects.filter(domain=domain).count()
        p50, p95, _queries = _timed(
            lambda: domain_summary(actor=Actor.operator("bench"), domain=domain), args.runs
        )
        start = time.perf_counter()
        domain_totals_compact()
        print(
            f"figures over {changes:,} uncompacted totals changes: {p50:.1f} / {p95:.1f} ms; "
            f"compacted in {(time.perf_counter() - start) * 1000:.0f} ms"
        )
        print(f"{'case':36} {'p50 ms':>8} {'p95 ms':>8} {'queries':>8}")
        for case, call in _cases(domain):
            p50, p95, queries = _timed(call, args.runs)
            counts.setdefault(case, set()).add(queries)
            print(f"{case:36} {p50:8.1f} {p95:8.1f} {queries:8}")
        sys.stdout.flush()
    uneven = [case for case, seen in counts.items() if len(seen) > 1]
    if uneven:
        print("query counts differ between sizes:", ", ".join(uneven))
    return 1 if uneven else 0


if __name__ == "__main__":
    sys.exit(main())

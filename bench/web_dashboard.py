"""Benchmark of the client area's dashboard and search, server side, at 12 rows and at 10,000
mailboxes, through Django's test client (middleware, view, selectors, templates).

    python bench/web_dashboard.py [--db-url URL] [--runs 30] [--warmups 3]

Database handling as in bench/address_list.py: without --db-url a fresh SQLite file in a
temporary directory, thrown away; with it, that database gets two bench domains, deleted at
the end. A bench user owns both clients and is logged in with force_login.

Exit status: 0 when every case runs the same number of SQL queries at both sizes and the
dashboard stays within its budget (tests/query_budgets.json), 1 otherwise. The p50 target
(30 ms at 10,000 mailboxes) is reported, not enforced: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.address_list import (  # noqa: E402 (the repository root must be on the path first)
    LARGE,
    SMALL,
    TARGET_P50_MS,
    environment_label,
    neighbour_label,
    percentile,
    refresh_statistics,
    setup_django,
)

BUDGETS = json.loads((ROOT / "tests" / "query_budgets.json").read_text())
HTMX_LIST = {"HX-Request": "true", "HX-Target": "address-list"}


@dataclass(frozen=True)
class Result:
    case: str
    size: str
    p50_ms: float
    p95_ms: float
    queries: int
    budget: int | None


def cases(domain) -> list[tuple[str, str, dict, str | None]]:
    """(case, query string, headers, budget key): what a user's browser asks for."""
    from bench.dataset import search_samples

    samples = search_samples(domain)
    return [
        ("dashboard (full page)", "", {}, "page:web:dashboard"),
        ("dashboard, bookmarked search", f"q={samples['alias']}", {}, "page:web:dashboard"),
        ("search as you type: local part", f"q={samples['local part']}", HTMX_LIST, None),
        ("search as you type: alias", f"q={samples['alias']}", HTMX_LIST, None),
        ("search as you type: destination", f"q={samples['destination']}", HTMX_LIST, None),
        ("search as you type: surname", "q=martin", HTMX_LIST, None),
        ("sort by storage", "sort=storage", HTMX_LIST, "page:web:address_list"),
        ("sort by growth", "sort=growth", HTMX_LIST, "page:web:address_list:growth"),
    ]


def measure(browser, url: str, headers: dict, runs: int, warmups: int) -> tuple[list, int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def call() -> None:
        response = browser.get(url, headers=headers)
        if response.status_code != 200:
            raise SystemExit(f"{url}: HTTP {response.status_code}")

    for _ in range(warmups):
        call()
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        timings.append((time.perf_counter() - start) * 1000)
    with CaptureQueriesContext(connection) as captured:
        call()
    return timings, len(captured)


def run(args: argparse.Namespace, migrate_s: float) -> int:
    from bench.dataset import make_domain, make_neighbours
    from django.contrib.auth import get_user_model
    from django.test import Client as Browser
    from django.urls import reverse

    from postdesk.mail.models import Domain
    from postdesk.tenancy.choices import Role
    from postdesk.tenancy.models import Membership

    tag = secrets.token_hex(3)
    print(f"# Client-area dashboard benchmark\n\n- {environment_label()}")
    print(f"- migrate: {migrate_s:.1f} s")
    domains, neighbours = [], []
    user = get_user_model().objects.create_user(f"bench-{tag}@bench.example", None)
    try:
        for label, size in [("small", SMALL), ("large", LARGE)]:
            started = time.perf_counter()
            domain = make_domain(f"{label}-{tag}.bench.example", **size)
            Membership.objects.create(user=user, client=domain.client, role=Role.OWNER)
            domains.append((label, domain))
            print(
                f"- dataset {label}: {size['mailboxes']:,} mailboxes, {size['aliases']:,} "
                f"aliases, {size['forwards']:,} forwards in {time.perf_counter() - started:.1f} s"
            )
        neighbours = make_neighbours(tag)
        print(f"- other clients: {neighbour_label(neighbours)}")
        refresh_statistics()
        print(f"- {args.runs} timed requests per case after {args.warmups} warm-ups\n")
        browser = Browser()
        browser.force_login(user)

        results: dict[str, list[Result]] = {}
        for label, domain in domains:
            base = reverse("web:dashboard", args=[domain.name])
            for case, query, headers, budget in cases(domain):
                url = f"{base}?{query}" if query else base
                timings, queries = measure(browser, url, headers, args.runs, args.warmups)
                results.setdefault(case, []).append(
                    Result(
                        case,
                        label,
                        statistics.median(timings),
                        percentile(timings, 0.95),
                        queries,
                        BUDGETS.get(budget) if budget else None,
                    )
                )
        print("| case | mailboxes | p50 ms | p95 ms | queries | budget |")
        print("|---|---:|---:|---:|---:|---:|")
        sizes = {"small": SMALL["mailboxes"], "large": LARGE["mailboxes"]}
        for pair in results.values():
            for r in pair:
                print(
                    f"| {r.case} | {sizes[r.size]:,} | {r.p50_ms:.1f} | {r.p95_ms:.1f} | "
                    f"{r.queries} | {r.budget if r.budget is not None else '—'} |"
                )
        mismatched = [c for c, (s, b) in results.items() if s.queries != b.queries]
        over_budget = [
            r.case for pair in results.values() for r in pair if r.budget and r.queries > r.budget
        ]
        slow = [(c, b.p50_ms) for c, (_, b) in results.items() if b.p50_ms > args.target_ms]
        print()
        print(
            f"FAIL: query count differs between sizes: {', '.join(mismatched)}"
            if mismatched
            else "OK: every case runs the same number of queries at both sizes"
        )
        if over_budget:
            print(f"FAIL: over the query budget: {', '.join(over_budget)}")
        if slow:
            listed = ", ".join(f"{c} ({ms:.0f} ms)" for c, ms in slow)
            print(f"OVER TARGET: p50 above {args.target_ms:g} ms at 10,000 mailboxes: {listed}")
        else:
            print(f"OK: every p50 at 10,000 mailboxes is within {args.target_ms:g} ms")
        return 1 if mismatched or over_budget else 0
    finally:
        if args.db_url and not args.keep:
            for domain in [domain for _, domain in domains] + neighbours:
                Domain.objects.filter(pk=domain.pk).delete()
                domain.client.delete()
            user.delete()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db-url", help="database to use instead of a fresh SQLite file")
    parser.add_argument("--runs", type=int, default=30, help="timed requests per case (30)")
    parser.add_argument("--warmups", type=int, default=3, help="untimed requests first (3)")
    parser.add_argument(
        "--target-ms", type=float, default=TARGET_P50_MS, help="p50 target at 10,000 (30)"
    )
    parser.add_argument(
        "--keep", action="store_true", help="leave the bench domains in the --db-url database"
    )
    args = parser.parse_args(argv)
    if args.runs < 1 or args.warmups < 0:
        parser.error("--runs must be at least 1 and --warmups at least 0")
    # The test client's host; the settings read this when Django starts.
    os.environ["DJANGO_ALLOWED_HOSTS"] = "testserver"
    with tempfile.TemporaryDirectory(prefix="postdesk-bench-") as data_dir:
        started = time.perf_counter()
        setup_django(args.db_url, Path(data_dir))
        return run(args, time.perf_counter() - started)


if __name__ == "__main__":
    sys.exit(main())

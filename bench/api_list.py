"""Benchmark of the API's address list (GET /api/v1/domains/{domain}/addresses) at 12 rows and
at 10,000 mailboxes: server time per page and SQL queries.

    python bench/api_list.py [--db-url URL] [--runs 30] [--warmups 3] [--target-ms 15]

The request goes through Django's whole stack in-process (middleware, URL routing, bearer
token check, the membership check of a customer's token, the selector, the JSON rendering),
as a customer's script would call it, minus the network and the WSGI server. Without
--db-url, a fresh SQLite database in a temporary directory is migrated and thrown away; with
--db-url, that database is migrated, two bench domains (and their clients, users and tokens)
are added and deleted again at the end.

Exit status: 0 when every case runs the same number of SQL queries at both sizes, 1 when one
does not, 2 on a usage error. The p50 target is reported, not enforced: timings depend on
the machine.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from benchsetup import setup_django

TARGET_P50_MS = 15.0


@dataclass(frozen=True)
class Result:
    case: str
    rows: int
    matches: int
    p50_ms: float
    p95_ms: float
    queries: int
    # The same page from the selector alone (no HTTP, no token): what the API adds is the rest.
    selector_p50_ms: float


def cases(domain: Any, middle_page: int) -> list[tuple[str, dict[str, Any]]]:
    from bench.dataset import search_samples

    samples = search_samples(domain)
    return [
        ("first page", {}),
        ("middle page", {"page": middle_page}),
        ("sort by storage", {"sort": "storage"}),
        ("sort by growth", {"sort": "growth"}),
        ("type: mailbox", {"type": "mailbox"}),
        ("search: alias (one match)", {"search": samples["alias"]}),
        ("search: surname (1 %)", {"search": "martin"}),
    ]


def customer_token(domain: Any) -> str:
    """A write token of an owner of the domain's client: the case of a customer's script (the
    membership check included)."""
    from postdesk.api.services import token_create
    from postdesk.tenancy.access import Actor
    from postdesk.tenancy.models import Membership, User

    email = f"owner-{domain.name}"[:60] + "@bench.example"
    user = User.objects.create_user(email, secrets.token_urlsafe(16))
    Membership.objects.create(user=user, client=domain.client, role="owner")
    return token_create(actor=Actor.operator("bench"), user=user, scope="write").plaintext


def run_cases(domain: Any, runs: int, warmups: int) -> list[Result]:
    from bench.address_list import percentile
    from django.db import connection
    from django.test import Client as HttpClient
    from django.test.utils import CaptureQueriesContext

    from postdesk.mail.selectors import address_list
    from postdesk.tenancy.access import Actor

    operator = Actor.operator("bench")
    http = HttpClient(HTTP_HOST="127.0.0.1")
    headers = {"Authorization": f"Bearer {customer_token(domain)}"}
    base = f"/api/v1/domains/{domain.name}/addresses"

    def get(params: dict[str, Any]) -> dict:
        response = http.get(f"{base}?{urlencode(params)}" if params else base, headers=headers)
        if response.status_code != 200:
            raise RuntimeError(f"{base} {params}: {response.status_code} {response.content!r}")
        return response.json()

    first = get({})
    middle = max(1, (first["num_pages"] + 1) // 2)
    results = []
    for case, params in cases(domain, middle):
        for _ in range(warmups):
            get(params)
        timings, selector_timings = [], []
        for _ in range(runs):
            start = time.perf_counter()
            body = get(params)
            timings.append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            address_list(actor=operator, domain=domain, **params)
            selector_timings.append((time.perf_counter() - start) * 1000)
        with CaptureQueriesContext(connection) as captured:
            get(params)
        results.append(
            Result(
                case=case,
                rows=first["total"],
                matches=body["total"],
                p50_ms=statistics.median(timings),
                p95_ms=percentile(timings, 0.95),
                queries=len(captured),
                selector_p50_ms=statistics.median(selector_timings),
            )
        )
    return results


def table(results: list[Result]) -> str:
    lines = [
        "| case (page of 50) | rows in domain | matches | p50 ms | p95 ms | queries "
        "| selector alone p50 ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r.case} | {r.rows:,} | {r.matches:,} | {r.p50_ms:.1f} | {r.p95_ms:.1f} "
        f"| {r.queries} | {r.selector_p50_ms:.1f} |"
        for r in results
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db-url", help="database to use instead of a fresh SQLite file")
    parser.add_argument("--runs", type=int, default=30, help="timed requests per case (30)")
    parser.add_argument("--warmups", type=int, default=3, help="untimed requests first (3)")
    parser.add_argument(
        "--target-ms", type=float, default=TARGET_P50_MS, help="p50 target at 10,000 (15)"
    )
    args = parser.parse_args(argv)
    if args.runs < 1 or args.warmups < 0:
        parser.error("--runs must be at least 1 and --warmups at least 0")
    with tempfile.TemporaryDirectory(prefix="postdesk-bench-") as data_dir:
        setup_django(args.db_url, Path(data_dir))
        return run(args)


def run(args: argparse.Namespace) -> int:
    from bench.address_list import (
        LARGE,
        SMALL,
        environment_label,
        neighbour_label,
        refresh_statistics,
    )
    from bench.dataset import make_domain, make_neighbours

    from postdesk.mail.models import Domain
    from postdesk.tenancy.models import User

    tag = secrets.token_hex(3)
    domains, neighbours = [], []
    print(f"# API address list benchmark\n\n- {environment_label()}")
    print(f"- load average at start: {' / '.join(f'{x:.1f}' for x in os.getloadavg())}")
    try:
        for label, size in (("small", SMALL), ("large", LARGE)):
            started = time.perf_counter()
            domains.append(make_domain(f"api-{label}-{tag}.bench.example", **size))
            print(
                f"- dataset {label}: {size['mailboxes']:,} mailboxes, {size['aliases']:,} "
                f"aliases, {size['forwards']:,} forwards in {time.perf_counter() - started:.1f} s"
            )
        neighbours = make_neighbours(tag)
        print(f"- other clients: {neighbour_label(neighbours)}")
        refresh_statistics()
        print(f"- {args.runs} timed requests per case after {args.warmups} warm-ups\n")
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
            listed = ", ".join(f"{r.case} ({r.p50_ms:.1f} ms)" for r in slow)
            print(
                f"OVER TARGET: p50 above {args.target_ms:g} ms at {large[0].rows:,} rows: {listed}"
            )
        else:
            print(f"OK: every p50 at {large[0].rows:,} rows is within {args.target_ms:g} ms")
        return 1 if mismatched else 0
    finally:
        if args.db_url:
            for domain in domains:
                User.objects.filter(memberships__client=domain.client).delete()
                Domain.objects.filter(pk=domain.pk).delete()
                domain.client.delete()
            for domain in neighbours:
                Domain.objects.filter(pk=domain.pk).delete()
                domain.client.delete()


if __name__ == "__main__":
    sys.exit(main())

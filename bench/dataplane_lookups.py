"""Benchmark: the lookups Postfix and Dovecot make through the dataplane views.

    python bench/dataplane_lookups.py [--db-url postgres://…] [--runs 2000]

A domain of 10,000 mailboxes, 10,000 aliases and 2,000 forwards (bench/dataset.py); then the
exact queries of the rendered configuration for that database (dataplane/render.py: Postfix's
lookup files, Dovecot's password and user queries), each run --runs times with a different
existing or missing address, on one connection, each sent as a new unprepared query with its
values inlined (as the daemons send theirs). Target (the data-plane issue): ≤ 0.2 ms per lookup.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_MS = 0.2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db-url")
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument(
        "--mailboxes", type=int, default=10_000, help="as many aliases, a fifth as many forwards"
    )
    args = parser.parse_args()
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    os.environ.update(
        DJANGO_SETTINGS_MODULE="postdesk.settings",
        POSTDESK_DATA_DIR=tempfile.mkdtemp(prefix="postdesk-bench-dataplane-"),
        DJANGO_DEBUG="0",
    )
    if args.db_url:
        os.environ["DATABASE_URL"] = args.db_url
    else:
        os.environ.pop("DATABASE_URL", None)
    import django

    django.setup()
    from bench.dataset import make_domain
    from django.core.management import call_command
    from django.db import connection

    from postdesk.dataplane.render import POSTFIX_LOOKUPS, database_settings, dovecot_queries

    call_command("migrate", "--noinput", verbosity=0)
    domain_name = f"lookups{random.randrange(10**6)}.example"
    started = time.perf_counter()
    size = args.mailboxes
    make_domain(domain_name, mailboxes=size, aliases=size, forwards=size // 5)
    print(
        f"- dataset: {size:,} mailboxes, {size:,} aliases, {size // 5:,} forwards in "
        f"{time.perf_counter() - started:.1f} s; {connection.vendor}"
    )
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("VACUUM ANALYZE")
        cursor.execute(
            "SELECT local_part FROM mail_address a JOIN mail_domain d ON d.id = a.domain_id "
            "WHERE d.name = %s",
            [domain_name],
        )
        names = [row[0] for row in cursor.fetchall()]

    # The daemons' queries as rendered for this database, with %u/%d (Postfix) and %n/%d
    # (Dovecot) as parameters.
    engine = database_settings()["engine"]
    rendered = {f"postfix {file}": query for file, query in POSTFIX_LOOKUPS[engine].items()}
    for name, query in dovecot_queries(engine, "/var/vmail").items():
        rendered[f"dovecot {name}"] = query
    queries = {
        label: query.replace("'%s'", "%s")
        .replace("'%u'", "%s")
        .replace("'%n'", "%s")
        .replace("'%d'", "%s")
        for label, query in rendered.items()
    }
    rng = random.Random(7)
    print("\n| lookup | p50 ms | p95 ms |\n|---|---:|---:|")
    worst = 0.0
    with connection.cursor() as cursor:
        for label, sql in queries.items():
            times = []
            for i in range(args.runs):
                # One in ten asks for an address that does not exist (a bounce, a typo).
                local = names[rng.randrange(len(names))] if i % 10 else f"nobody{i}"
                params = [domain_name] if sql.count("%s") == 1 else [local, domain_name]
                started = time.perf_counter()
                cursor.execute(sql, params)
                cursor.fetchall()
                times.append((time.perf_counter() - started) * 1000)
            times.sort()
            p50, p95 = statistics.median(times), times[int(len(times) * 0.95)]
            worst = max(worst, p50)
            print(f"| {label} | {p50:.3f} | {p95:.3f} |")
    print(f"\nworst p50 {worst:.3f} ms (target ≤ {TARGET_MS} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: re-check the DNS of 1,000 domains against a DNS server on loopback.

    python bench/dns_recheck.py [--domains 1000] [--concurrency 32]

A real DNS server (tests/dns_server.py, dnslib) serves, for each domain, an SPF record that
reaches us through a nested include, a DKIM record, a DMARC policy and MX records; a fresh
SQLite database holds the domains. `postdesk dns recheck-all`'s service runs every check and
stores the answers. Target (the DNS issue): 1,000 domains in ≤ 10 s of wall time.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_SECONDS = 10.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domains", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()

    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    os.environ.update(
        DJANGO_SETTINGS_MODULE="postdesk.settings",
        POSTDESK_DATA_DIR=tempfile.mkdtemp(prefix="postdesk-bench-dns-"),
        DJANGO_DEBUG="0",
        POSTDESK_SPF_MECHANISM="include:spf.host.example",
        POSTDESK_MX_HOSTS="mx1.host.example,mx2.host.example",
    )
    os.environ.pop("DATABASE_URL", None)
    from tests.dns_server import DnsTestServer

    server = DnsTestServer()
    os.environ["POSTDESK_DNS_NAMESERVERS"] = server.nameserver
    os.environ["POSTDESK_DNS_TIMEOUT"] = "2"

    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", "--noinput", verbosity=0)
    from postdesk.dns.dkim import record_value
    from postdesk.dns.models import DnsStatus
    from postdesk.dns.services import dkim_enable
    from postdesk.dns.status import dns_recheck_all
    from postdesk.mail.models import Domain
    from postdesk.tenancy.access import Actor
    from postdesk.tenancy.models import Client

    operator = Actor.operator("bench")
    client = Client.objects.create(name="Bench")
    domains = Domain.objects.bulk_create(
        Domain(client=client, name=f"customer{i}.example") for i in range(args.domains)
    )
    # One real key, reused: generating 1,000 RSA keys would measure key generation instead.
    key = dkim_enable(actor=operator, domain=domains[0])
    from postdesk.dns.models import DkimKey

    DkimKey.objects.bulk_create(
        DkimKey(
            domain=d,
            selector="mail",
            status=key.status,
            private_key_encrypted=key.private_key_encrypted,
            public_key=key.public_key,
            status_changed_at=key.status_changed_at,
        )
        for d in domains[1:]
    )
    server.set_txt("spf.provider.example", "v=spf1 include:spf.host.example -all")
    server.set_txt("spf.host.example", "v=spf1 ip4:192.0.2.0/24 -all")
    for d in domains:
        server.set_txt(d.name, "v=spf1 mx include:spf.provider.example ~all")
        server.set_txt(f"mail._domainkey.{d.name}", record_value(key.public_key))
        server.set_txt(f"_dmarc.{d.name}", f"v=DMARC1; p=none; rua=mailto:postmaster@{d.name}")
        server.set_mx(d.name, [(10, "mx1.host.example"), (20, "mx2.host.example")])

    started = time.perf_counter()
    summary = dns_recheck_all(concurrency=args.concurrency)
    elapsed = time.perf_counter() - started
    server.stop()

    states = set(
        DnsStatus.objects.values_list("spf_state", "dkim_state", "dmarc_state", "mx_state")
    )
    print(
        f"- domains: {args.domains}, concurrency {args.concurrency}, DNS queries {server.queries}"
    )
    print(f"- checked {summary.checked}, unknown {summary.unknown}, failed {summary.failed}")
    print(f"- states seen: {sorted(states)}")
    print(f"- wall time: {elapsed:.2f} s (target ≤ {TARGET_SECONDS:.0f} s)")
    all_good = states == {("configured", "active", "configured", "configured")}
    return 0 if all_good and summary.checked == args.domains else 1


if __name__ == "__main__":
    sys.exit(main())

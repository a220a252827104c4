"""Benchmark: the EAS/MAPI gate answering 1,000 ActiveSync devices.

    python bench/gate_devices.py [--devices 1000] [--cold 50]

Each device is a mailbox with EAS on and its own password, hashed at the production cost
(Argon2id, 64 MiB, t=3: one hash made once and stored on every mailbox, so setting up does not
take 1,000 hashes). The gate is asked as nginx asks it, in process (Django's test client), on
a fresh SQLite database: first `--cold` devices never seen (each a full Argon2id verify), then
every device again, as a phone asks every few minutes (verified within
POSTDESK_GATE_CACHE_SECONDS: no verify). Prints requests per second for both, on one core.
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KEY = "bench-gate-key"
PASSWORD = "Phone-Secr3t!x"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--cold", type=int, default=50)
    args = parser.parse_args()

    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    os.environ.update(
        DJANGO_SETTINGS_MODULE="postdesk.settings",
        POSTDESK_DATA_DIR=tempfile.mkdtemp(prefix="postdesk-bench-gate-"),
        DJANGO_DEBUG="0",
        POSTDESK_GATE_KEY=KEY,
    )
    os.environ.pop("DATABASE_URL", None)
    import django

    django.setup()
    from django.core.management import call_command
    from django.test import Client as HttpClient

    call_command("migrate", "--noinput", verbosity=0)
    from postdesk.dataplane.passwords import hash_password
    from postdesk.mail.models import Mailbox
    from postdesk.mail.services import domain_add, mailbox_create
    from postdesk.tenancy.access import Actor
    from postdesk.tenancy.services import client_create

    operator = Actor.operator("bench")
    client = client_create(actor=operator, name="Bench")
    domain = domain_add(actor=operator, client=client, name="bench.example")
    from django.test import override_settings

    with override_settings(POSTDESK_ARGON2_MEMORY_KIB=1024, POSTDESK_ARGON2_TIME_COST=1):
        for n in range(args.devices):
            mailbox_create(
                actor=operator,
                domain=domain,
                username=f"phone{n}",
                password=PASSWORD,
                eas_enabled=True,
            )
    Mailbox.objects.update(password_hash=hash_password(PASSWORD))  # the production cost

    http = HttpClient(HTTP_HOST="127.0.0.1")

    def ask(n: int) -> int:
        token = base64.b64encode(f"phone{n}@bench.example:{PASSWORD}".encode()).decode()
        return http.get(
            "/dataplane/gate/eas",
            HTTP_X_POSTDESK_GATE_KEY=KEY,
            HTTP_X_REAL_IP=f"10.0.{n // 250}.{n % 250}",
            HTTP_AUTHORIZATION=f"Basic {token}",
        ).status_code

    started = time.perf_counter()
    assert all(ask(n) == 204 for n in range(args.cold))
    cold = args.cold / (time.perf_counter() - started)
    for n in range(args.cold, args.devices):  # every device seen once, as after a few minutes
        assert ask(n) == 204
    started = time.perf_counter()
    assert all(ask(n) == 204 for n in range(args.devices))
    warm = args.devices / (time.perf_counter() - started)
    print("| devices | first request (Argon2id verify) | next requests (verified recently) |")
    print("| ---: | ---: | ---: |")
    first = f"{cold:,.1f} req/s ({1000 / cold:.0f} ms)"
    print(f"| {args.devices:,} | {first} | {warm:,.0f} req/s ({1000 / warm:.1f} ms) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

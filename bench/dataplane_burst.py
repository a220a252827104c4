"""Benchmark: a burst of messages through the real mail stack, end to end.

    python bench/dataplane_burst.py [--db-url URL] [--messages 1000] [--connections 8]

Needs root and Debian's Postfix, Dovecot, OpenDKIM, postsrsd and nginx (`./run test` installs
them). A domain of 1,000 mailboxes, 500 aliases and 100 standalone forwards (bench/dataset.py)
in a throwaway database (SQLite by default; with --db-url that database, the bench domain
deleted at the end); the stack (`dataplane up`) on free loopback ports with an SMTP sink as
the relay. The senders open --connections SMTP connections to the inbound port at once and
send --messages messages between them, one recipient each: 80 % to mailboxes, 15 % to aliases,
5 % to standalone forwards (relayed to the sink). Every lookup goes through the dataplane
views, every delivery through LMTP with the quota policy check, as in production.

Reported: how long the inbound port took to accept the burst, how long until every message
was in its maildir or at the sink, and each message's latency from its SMTP send to its
delivery (maildir file time, or the sink's arrival time). Exit status 1 if any message is
missing after the wait.
"""

from __future__ import annotations

import argparse
import email
import random
import shutil
import smtplib
import statistics
import sys
import tempfile
import threading
import time
from email.message import EmailMessage
from pathlib import Path

from benchsetup import setup_django

SENT_HEADER = "X-Burst-Sent"
WAIT_SECONDS = 300


class Sink:
    """The outside world: records when each relayed message arrives."""

    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}  # burst id → arrival time
        self.recipients = 0
        self._lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content)
        with self._lock:
            self.arrivals.setdefault(message["Subject"], time.time())
            self.recipients += len(envelope.rcpt_tos)
        return "250 OK"


def pick_recipients(domain, count: int, rng: random.Random) -> list[tuple[str, str, int]]:
    """(address, kind, relayed recipients) for each message of the burst."""
    from postdesk.mail.choices import AddressKind
    from postdesk.mail.models import Address, Destination

    by_kind: dict[str, list[str]] = {}
    for local_part, kind in Address.objects.filter(domain=domain).values_list("local_part", "kind"):
        by_kind.setdefault(kind, []).append(local_part)
    destinations: dict[str, int] = {}
    for local_part in Destination.objects.filter(
        address__domain=domain, address__kind=AddressKind.FORWARD
    ).values_list("address__local_part", flat=True):
        destinations[local_part] = destinations.get(local_part, 0) + 1
    picks = []
    for _ in range(count):
        draw = rng.random()
        kind = (
            AddressKind.MAILBOX
            if draw < 0.80
            else AddressKind.ALIAS
            if draw < 0.95
            else AddressKind.FORWARD
        )
        local_part = rng.choice(by_kind[kind])
        relayed = destinations.get(local_part, 0) if kind == AddressKind.FORWARD else 0
        picks.append((f"{local_part}@{domain.name}", kind, relayed))
    return picks


def send_share(port: int, jobs: list[tuple[int, str]], sent_at: dict[str, float]) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as smtp:
        for number, recipient in jobs:
            message = EmailMessage()
            message["From"] = "sender@outside.example"
            message["To"] = recipient
            message["Subject"] = f"burst-{number}"
            now = time.time()
            message[SENT_HEADER] = repr(now)
            message.set_content("A message of the burst.\n" * 20)
            smtp.send_message(message)
            sent_at[f"burst-{number}"] = now


class MaildirWatch:
    """burst id → when its file first appeared in a new/ directory of a Maildir, polled
    every few milliseconds (Dovecot dates the files to the second: too coarse here)."""

    def __init__(self, vmail: Path) -> None:
        self.vmail = vmail
        self.seen: set[Path] = set()
        self.delivered: dict[str, float] = {}

    def poll(self) -> None:
        now = time.time()
        for path in self.vmail.glob("*/*/Maildir/new/*"):
            if path in self.seen:
                continue
            self.seen.add(path)
            with path.open("rb") as handle:
                headers = email.message_from_binary_file(handle)
            self.delivered[headers["Subject"]] = now


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db-url")
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()

    # The daemons must reach the data directory: not under a 0700 temporary directory, and
    # not below a world-writable one (OpenDKIM refuses its keys there).
    data_dir = Path(tempfile.mkdtemp(prefix="postdesk-bench-burst-", dir="/var/lib"))
    setup_django(args.db_url, data_dir)
    from aiosmtpd.controller import Controller
    from bench.dataset import make_domain
    from django.db import connection

    from postdesk.dataplane import stack
    from postdesk.dataplane.render import StackConfig, free_port

    domain = make_domain(
        f"burst{random.randrange(10**6)}.example", mailboxes=1000, aliases=500, forwards=100
    )
    picks = pick_recipients(domain, args.messages, random.Random(11))
    expected_local = sum(1 for _, kind, _ in picks if kind != "forward")
    expected_relayed = sum(relayed for _, _, relayed in picks)
    expected_at_sink = sum(1 for _, kind, _ in picks if kind == "forward")

    sink = Sink()
    sink_port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=sink_port)
    controller.start()
    config = StackConfig(
        dir=data_dir / "stack",
        smtp_port=free_port(),
        submission_port=free_port(),
        submissions_port=free_port(),
        imap_port=free_port(),
        imaps_port=free_port(),
        gate_port=free_port(),
        relay=f"127.0.0.1:{sink_port}",
    )
    connection.close()  # the daemons open the database themselves
    state = stack.up(config)
    status = 0
    try:
        shares: list[list[tuple[int, str]]] = [[] for _ in range(args.connections)]
        for number, (address, _, _) in enumerate(picks):
            shares[number % args.connections].append((number, address))
        sent_at: dict[str, float] = {}
        watch = MaildirWatch(Path(state["vmail"]))
        complete = threading.Event()

        def watch_until_complete() -> None:
            deadline = time.time() + WAIT_SECONDS
            while time.time() < deadline:
                watch.poll()
                if (
                    len(watch.delivered) >= expected_local
                    and len(sink.arrivals) >= expected_at_sink
                ):
                    complete.set()
                    return
                time.sleep(0.02)

        watcher = threading.Thread(target=watch_until_complete)
        watcher.start()
        started = time.time()
        senders = [
            threading.Thread(target=send_share, args=(state["ports"]["smtp"], share, sent_at))
            for share in shares
        ]
        for thread in senders:
            thread.start()
        for thread in senders:
            thread.join()
        accepted = time.time() - started
        watcher.join()
        if not complete.is_set():
            status = 1
        arrivals = {**watch.delivered, **sink.arrivals}
        done = max(arrivals.values(), default=time.time()) - started
        latencies = sorted(
            (arrivals[key] - sent) * 1000 for key, sent in sent_at.items() if key in arrivals
        )
        print(
            f"- {args.messages} messages over {args.connections} connections; "
            f"{connection.vendor}; {expected_local} to maildirs, {expected_at_sink} relayed "
            f"({expected_relayed} destinations)"
        )
        print("\n| measure | value |\n|---|---:|")
        print(f"| accepted by SMTP | {accepted:.1f} s ({args.messages / accepted:.0f} msg/s) |")
        print(f"| all delivered | {done:.1f} s ({args.messages / done:.0f} msg/s) |")
        if latencies:
            p95 = latencies[int(len(latencies) * 0.95)]
            print(f"| latency p50 | {statistics.median(latencies):.0f} ms |")
            print(f"| latency p95 | {p95:.0f} ms |")
            print(f"| latency max | {latencies[-1]:.0f} ms |")
        missing = args.messages - len(arrivals)
        if missing or sink.recipients < expected_relayed:
            print(f"\nMISSING: {missing} messages, relayed {sink.recipients}/{expected_relayed}")
            status = 1
    finally:
        # The mail directories first: a failed database clean-up must not leave them behind.
        stack.down(config.dir)
        controller.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
        if args.db_url:
            from postdesk.mail.models import Domain

            Domain.objects.filter(pk=domain.pk).delete()
            domain.client.delete()
    return status


if __name__ == "__main__":
    sys.exit(main())

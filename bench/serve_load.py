"""The panel under load, as customers use it: `postdesk serve` (gunicorn, 2 workers) on a domain
of 10,000 mailboxes, 50 logged-in users reading the dashboard and the address list while 2
others create mailboxes, for 60 seconds.

    python bench/serve_load.py [--db-url URL] [--duration 60] [--readers 50] [--writers 2]

Database handling as in bench/address_list.py: without --db-url a fresh SQLite file (WAL) in a
temporary directory; with it, that database is migrated and gets the bench domain (use a
throwaway database). The server runs as the README says an operator runs it, with DEBUG off
and production's Argon2id cost, so each mailbox created pays its real hash.

Each user is a real HTTP client (its own session, logged in through the login form, CSRF
token and all) in a thread of this process: a reader asks for the dashboard, then a page of the
address list as htmx asks for it (a random page, a random sort), and again; a writer opens the
new-mailbox form and submits it. This process shares the 2 cores with the server, as a load
generator on the same host does; the figures are the server's answers as the users saw them.

Exit status 0 when no request failed: every answer 200 (or the creation's 302), no 5xx, no
"database is locked" in the server's log. Prints requests/s and p50/p95 per kind of request,
the table the README carries.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.cookiejar import CookieJar
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.address_list import (  # noqa: E402 (the repository root must be on the path first)
    environment_label,
    percentile,
    refresh_statistics,
    setup_django,
)

MAILBOXES = 10_000
USER_PASSWORD = "Bench-Load-Passw0rd!"
CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
HTMX_LIST = {"HX-Request": "true", "HX-Target": "address-list"}
SORTS = ("address", "storage", "growth")


@dataclass
class Tally:
    """What the users saw, per kind of request; filled from many threads."""

    timings: dict[str, list[float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, kind: str, seconds: float, problem: str | None) -> None:
        with self.lock:
            self.timings.setdefault(kind, []).append(seconds)
            if problem:
                self.errors.append(f"{kind}: {problem}")


class User:
    """One browser: a cookie jar, a session logged in through the form."""

    def __init__(self, base: str, email: str) -> None:
        self.base = base
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(CookieJar()), NoRedirect()
        )
        self.login(email)

    def get(self, path: str, headers: dict | None = None) -> tuple[int, str]:
        request = urllib.request.Request(self.base + path, headers=headers or {})  # noqa: S310
        return self._send(request)

    def post(self, path: str, data: dict) -> tuple[int, str]:
        request = urllib.request.Request(  # noqa: S310 - the bench's own http:// server
            self.base + path,
            data=urlencode(data, doseq=True).encode(),
            headers={"Referer": self.base + path},
        )
        return self._send(request)

    def _send(self, request: urllib.request.Request) -> tuple[int, str]:
        try:
            with self.opener.open(request, timeout=60) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode(errors="replace")

    def login(self, email: str) -> None:
        status, page = self.get("/login/")
        token = CSRF.search(page)
        assert status == 200 and token, f"no login form: {status}"
        status, _ = self.post(
            "/login/",
            {"csrfmiddlewaretoken": token.group(1), "username": email, "password": USER_PASSWORD},
        )
        assert status == 302, f"login refused for {email}: {status}"


class NoRedirect(urllib.request.HTTPRedirectHandler):
    """A 302 is an answer to time, not a page to follow."""

    def redirect_request(self, *args, **kwargs):
        return None


def timed(tally: Tally, kind: str, call, expected: int) -> str:
    started = time.perf_counter()
    try:
        status, body = call()
    except OSError as error:  # refused, reset, timed out: the users saw an error
        tally.record(kind, time.perf_counter() - started, repr(error))
        return ""
    tally.record(
        kind, time.perf_counter() - started, None if status == expected else f"HTTP {status}"
    )
    return body


def reader(user: User, domain: str, pages: int, tally: Tally, stop: threading.Event) -> None:
    rng = random.Random()
    dashboard = f"/domains/{domain}/"
    while not stop.is_set():
        timed(tally, "dashboard", lambda: user.get(dashboard), 200)
        query = urlencode({"page": rng.randint(1, pages), "sort": rng.choice(SORTS)})
        page = f"{dashboard}?{query}"
        timed(tally, "address list page", lambda p=page: user.get(p, HTMX_LIST), 200)


def writer(user: User, domain: str, tally: Tally, stop: threading.Event) -> None:
    form_path = f"/domains/{domain}/new/mailbox/"
    while not stop.is_set():
        page = timed(tally, "new mailbox form", lambda: user.get(form_path), 200)
        token = CSRF.search(page)
        if not token:
            continue
        data = {
            "csrfmiddlewaretoken": token.group(1),
            "username": f"load-{secrets.token_hex(5)}",
            "password": "Load-Bench-Passw0rd!",
            "password_confirmation": "Load-Bench-Passw0rd!",
            "quota_mb": "0",
        }
        timed(tally, "create mailbox", lambda d=data: user.post(form_path, d), 302)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(port: int, workers: int, log: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "POSTDESK_SECURE_COOKIES": "0",  # plain HTTP on loopback, as `./run demo` serves
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "postdesk",
            "serve",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
        ],
        stdin=subprocess.DEVNULL,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                return server
        except (OSError, urllib.error.HTTPError):
            if server.poll() is not None:
                break
            time.sleep(0.3)
    server.kill()
    raise SystemExit(f"the server did not answer: {log.read_text()[-2000:]}")


def run(args: argparse.Namespace) -> int:
    from bench.dataset import make_domain, make_neighbours
    from django.contrib.auth import get_user_model
    from django.db import connection

    from postdesk.mail.models import Domain
    from postdesk.tenancy.choices import Role
    from postdesk.tenancy.models import Membership

    tag = secrets.token_hex(3)
    started = time.perf_counter()
    domain = make_domain(
        f"load-{tag}.bench.example", mailboxes=MAILBOXES, aliases=MAILBOXES, forwards=2_000
    )
    neighbours = make_neighbours(tag)
    users = []
    for number in range(args.readers + args.writers):
        user = get_user_model().objects.create_user(
            f"load-{tag}-{number}@bench.example", USER_PASSWORD
        )
        Membership.objects.create(user=user, client=domain.client, role=Role.OWNER)
        users.append(user.email)
    refresh_statistics()
    print("# `postdesk serve` under load\n")
    print(f"- {environment_label()}")
    print(
        f"- dataset: {MAILBOXES:,} mailboxes, {MAILBOXES:,} aliases, 2,000 forwards in one "
        f"domain, 100 other clients' domains, made in {time.perf_counter() - started:.0f} s"
    )
    connection.close()  # the server's processes hold the database from here

    port = free_port()
    log = Path(os.environ["POSTDESK_DATA_DIR"]) / "serve.log"
    server = start_server(port, args.workers, log)
    try:
        base = f"http://127.0.0.1:{port}"
        browsers = [User(base, email) for email in users]
        tally = Tally()
        stop = threading.Event()
        pages = (MAILBOXES + MAILBOXES + 2_000) // 50
        threads = [
            threading.Thread(target=reader, args=(b, domain.name, pages, tally, stop))
            for b in browsers[: args.readers]
        ] + [
            threading.Thread(target=writer, args=(b, domain.name, tally, stop))
            for b in browsers[args.readers :]
        ]
        print(
            f"- {args.readers} readers (dashboard, then a random page of the address list) and "
            f"{args.writers} writers (new-mailbox form, then create) for {args.duration:g} s, "
            f"`postdesk serve --workers {args.workers}`\n"
        )
        began = time.perf_counter()
        for thread in threads:
            thread.start()
        time.sleep(args.duration)
        stop.set()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - began
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)

    total = sum(len(t) for t in tally.timings.values())
    print("| request | count | per second | p50 ms | p95 ms |")
    print("|---|---:|---:|---:|---:|")
    for kind, timings in tally.timings.items():
        print(
            f"| {kind} | {len(timings):,} | {len(timings) / elapsed:.1f} | "
            f"{statistics.median(timings) * 1000:.0f} | {percentile(timings, 0.95) * 1000:.0f} |"
        )
    print(f"| all | {total:,} | {total / elapsed:.1f} | | |")
    locked = log.read_text(errors="replace").count("database is locked")
    print(f'\n- errors: {len(tally.errors)}; "database is locked" in the server log: {locked}')
    for error in sorted(set(tally.errors))[:10]:
        print(f"  - {error}")
    if args.db_url and not args.keep:
        for each in [domain, *neighbours]:
            Domain.objects.filter(pk=each.pk).delete()
            each.client.delete()
        get_user_model().objects.filter(email__in=users).delete()
    return 1 if tally.errors or locked else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db-url", help="a throwaway database (default: a new SQLite file)")
    parser.add_argument("--duration", type=float, default=60, help="seconds of load (60)")
    parser.add_argument("--readers", type=int, default=50)
    parser.add_argument("--writers", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (2)")
    parser.add_argument("--keep", action="store_true", help="keep the bench rows (--db-url)")
    args = parser.parse_args(argv)
    setup_django(
        args.db_url,
        DJANGO_SECRET_KEY=secrets.token_urlsafe(32),
        # The server and this process must agree on the database and the data directory;
        # setup_django has put both in the environment the server inherits.
    )
    return run(args)


if __name__ == "__main__":
    sys.exit(main())

"""Every read a customer makes, against the same server's floor (issue 19, point 7): a real
`postdesk serve`, a domain of 100,000 mailboxes, one client asking over one keep-alive HTTP
connection, one request after another.

    python bench/floor.py [--db-url URL] [--mailboxes 100000] [--runs 100]

The floor is an authenticated request that does no work of its own: `GET /api/v1/ping` for
the API (token checked, `{"ok": true}`), `GET /ping/` for the client area (session and user
read, `ok`). Every other request is timed against the floor of its side: the API's first
page of each list and a one-match search on each, the client area's address list (the htmx
fragment and the full page, first page and a one-match search) and the dashboard. Target:
p50 within 2x the floor's p50 for first pages and searches, 3x for the dashboard and the
full pages around the list (they are the dashboard, with its cards).

The cases are interleaved: each round asks every case once, in a fixed order, so a burst of
load from a neighbour on the machine slows all cases alike and the ratios stay comparable.
Exit status 1 when a ratio is over its target or a request failed: usable as a check.

Database handling as in bench/serve_load.py: without --db-url a fresh SQLite file (WAL);
with it, that database is migrated and gets the bench domain, left there (use a throwaway
database: `dropdb`/`createdb`). The domain is filled as bench/scale.py fills it (as many
aliases as mailboxes, a fifth as many forwards, beside 100 small neighbours), then
`refresh_statistics()` and `domain_totals_compact()`, the state autovacuum and the
`compact-totals` job reach within minutes.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import secrets
import signal
import statistics
import sys
import time
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

import benchsetup

USER_PASSWORD = "Bench-Floor-Passw0rd!"
CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
HTMX_LIST = {"HX-Request": "true", "HX-Target": "address-list"}
# A page's p50 over its floor's p50, at most.
LIST_TARGET = 2.0
DASHBOARD_TARGET = 3.0


@dataclass
class Case:
    name: str
    path: str
    floor: str  # the name of the floor case it is measured against; "" for a floor
    target: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    # A text the answer must hold (the one match of a search): a wrong answer is no timing.
    expect: str = ""
    timings: list[float] = field(default_factory=list)


class Browser:
    """One HTTP/1.1 connection kept alive, with the session's cookies: the client area's
    user and the API's script at once (the token goes in the API's requests only)."""

    def __init__(self, port: int) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.cookies: dict[str, str] = {}

    def request(
        self, method: str, path: str, headers: dict[str, str] | None = None, body: str = ""
    ) -> tuple[int, str]:
        sent = dict(headers or {})
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if body:
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        self.connection.request(method, path, body=body or None, headers=sent)
        response = self.connection.getresponse()
        content = response.read().decode()
        for header in response.headers.get_all("Set-Cookie") or []:
            for name, morsel in SimpleCookie(header).items():
                self.cookies[name] = morsel.value
        if response.getheader("Connection", "").lower() == "close":
            raise SystemExit(f"the server closed the connection after {path}: no keep-alive")
        return response.status, content

    def login(self, email: str) -> None:
        status, page = self.request("GET", "/login/")
        token = CSRF.search(page)
        assert status == 200 and token, f"no login form: {status}"
        status, _ = self.request(
            "POST",
            "/login/",
            {"Referer": f"http://127.0.0.1:{self.connection.port}/login/"},
            urlencode(
                {
                    "csrfmiddlewaretoken": token.group(1),
                    "username": email,
                    "password": USER_PASSWORD,
                }
            ),
        )
        assert status == 302, f"login refused for {email}: {status}"


def cases(domain: str, samples: dict[str, str], token: str) -> list[Case]:
    api = {"Authorization": f"Bearer {token}"}
    addresses = f"/api/v1/domains/{domain}/addresses"
    dashboard = f"/domains/{domain}/"
    local_part, alias, destination = (
        samples["local part"],
        samples["alias"],
        samples["destination"],
    )
    # The one match each search finds, as the answer shows it.
    found = {
        "local part": local_part.rstrip("@"),
        "alias": alias.rstrip("@"),
        "destination": destination.rstrip("@"),
    }

    def api_case(name: str, query: dict[str, str], expect: str = "", path: str = addresses):
        url = f"{path}?{urlencode(query)}" if query else path
        return Case(name, url, "api floor", LIST_TARGET, api, expect)

    def web_case(name: str, query: dict[str, str], fragment: bool, expect: str = ""):
        url = f"{dashboard}?{urlencode(query)}" if query else dashboard
        target = LIST_TARGET if fragment else DASHBOARD_TARGET
        return Case(name, url, "web floor", target, HTMX_LIST if fragment else {}, expect)

    return [
        Case("api floor", "/api/v1/ping", "", headers=api),
        api_case("api: domains, first page", {}, path="/api/v1/domains"),
        api_case("api: addresses, first page", {}),
        api_case("api: mailboxes, first page", {"type": "mailbox"}),
        api_case("api: forwards, first page", {"type": "forward"}),
        api_case("api: audit log, first page", {}, path=f"/api/v1/domains/{domain}/audit"),
        api_case("api: search, a mailbox's name", {"search": local_part}, found["local part"]),
        api_case("api: search, an alias", {"search": alias}, found["alias"]),
        api_case("api: search, a destination", {"search": destination}, found["destination"]),
        api_case(
            "api: mailboxes, search",
            {"type": "mailbox", "search": local_part},
            found["local part"],
        ),
        api_case(
            "api: forwards, search",
            {"type": "forward", "search": destination},
            found["destination"],
        ),
        Case("web floor", "/ping/", ""),
        web_case("web: address list, first page (htmx)", {}, fragment=True),
        web_case("web: mailboxes, first page (htmx)", {"type": "mailbox"}, fragment=True),
        web_case("web: forwards, first page (htmx)", {"type": "forward"}, fragment=True),
        web_case(
            "web: search, a mailbox's name (htmx)", {"q": local_part}, True, found["local part"]
        ),
        web_case("web: search, an alias (htmx)", {"q": alias}, True, found["alias"]),
        web_case(
            "web: search, a destination (htmx)", {"q": destination}, True, found["destination"]
        ),
        web_case("web: dashboard", {}, fragment=False),
        web_case("web: dashboard, search (full page)", {"q": alias}, False, found["alias"]),
    ]


def ask(browser: Browser, case: Case) -> float:
    started = time.perf_counter()
    status, body = browser.request("GET", case.path, case.headers)
    elapsed = time.perf_counter() - started
    if status != 200:
        raise SystemExit(f"{case.name}: HTTP {status} for {case.path}\n{body[:500]}")
    if case.expect and case.expect not in body:
        raise SystemExit(f"{case.name}: {case.expect!r} is not in the answer to {case.path}")
    return elapsed


def check_one_match(browser: Browser, each: list[Case]) -> None:
    """The API's searches must find exactly one row, or they measure something else."""
    for case in each:
        if case.path.startswith("/api/") and case.expect:
            status, body = browser.request("GET", case.path, case.headers)
            total = json.loads(body)["total"]
            if status != 200 or total != 1:
                raise SystemExit(f"{case.name}: {total} matches, not one ({case.path})")


def report(each: list[Case]) -> int:
    from bench.address_list import percentile

    floors = {c.name: statistics.median(c.timings) for c in each if not c.floor}
    print("| request | p50 ms | p95 ms | floor ratio (p50) | target |")
    print("| --- | ---: | ---: | ---: | ---: |")
    missed = []
    for case in each:
        p50 = statistics.median(case.timings)
        p95 = percentile(case.timings, 0.95)
        if case.floor:
            ratio = p50 / floors[case.floor]
            verdict = f"{ratio:.2f}x"
            target = f"{case.target:g}x"
            if ratio > case.target:
                missed.append(case.name)
                verdict += " (over)"
        else:
            verdict, target = "floor", ""
        print(f"| {case.name} | {p50 * 1000:.1f} | {p95 * 1000:.1f} | {verdict} | {target} |")
    print(f"\n- over target: {', '.join(missed) if missed else 'none'}")
    return 1 if missed else 0


def run(args: argparse.Namespace) -> int:
    from bench.address_list import environment_label, refresh_statistics
    from bench.dataset import add_addresses, make_domain, make_neighbours, search_samples
    from bench.serve_load import free_port, start_server
    from django.contrib.auth import get_user_model
    from django.db import connection

    from postdesk.api.models import TokenScope
    from postdesk.api.services import token_create
    from postdesk.mail.services import domain_totals_compact
    from postdesk.tenancy.access import Actor
    from postdesk.tenancy.choices import Role
    from postdesk.tenancy.models import Membership

    tag = secrets.token_hex(3)
    started = time.perf_counter()
    make_neighbours(tag)
    domain = make_domain(f"floor-{tag}.bench.example", 0, 0, 0)
    size = args.mailboxes
    add_addresses(domain, mailboxes=size, aliases=size, forwards=size // 5)
    user = get_user_model().objects.create_user(f"floor-{tag}@bench.example", USER_PASSWORD)
    Membership.objects.create(user=user, client=domain.client, role=Role.OWNER)
    token = token_create(actor=Actor.operator("bench"), user=user, scope=TokenScope.READ).plaintext
    refresh_statistics()
    domain_totals_compact()
    samples = search_samples(domain)
    print("# Every read against the floor\n")
    print(f"- {environment_label()}; load average {os.getloadavg()[0]:.1f} before the run")
    print(
        f"- {size:,} mailboxes, {size:,} aliases, {size // 5:,} forwards in one domain, 100 "
        f"other clients' domains, made in {time.perf_counter() - started:.0f} s"
    )
    connection.close()  # the server's processes hold the database from here

    port = free_port()
    log = Path(os.environ["POSTDESK_DATA_DIR"]) / "serve.log"
    server = start_server(port, args.workers, log)
    try:
        browser = Browser(port)
        browser.login(user.email)
        each = cases(domain.name, samples, token)
        check_one_match(browser, each)
        for _ in range(args.warmups):
            for case in each:
                ask(browser, case)
        began = time.perf_counter()
        for _ in range(args.runs):
            for case in each:
                case.timings.append(ask(browser, case))
        elapsed = time.perf_counter() - began
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
    print(
        f"- `postdesk serve --workers {args.workers}`, one keep-alive connection, "
        f"{args.runs} rounds of every case after {args.warmups} untimed, in {elapsed:.0f} s; "
        f"load average {os.getloadavg()[0]:.1f} after\n"
    )
    return report(each)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db-url", help="a throwaway database (default: a new SQLite file)")
    parser.add_argument("--mailboxes", type=int, default=100_000, help="in the domain (100,000)")
    parser.add_argument("--runs", type=int, default=100, help="timed rounds of every case (100)")
    parser.add_argument("--warmups", type=int, default=5, help="untimed rounds first (5)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (2)")
    args = parser.parse_args(argv)
    # The server and this process must agree on the database, the data directory and the key
    # that signs sessions; setup_django puts them in the environment the server inherits.
    benchsetup.setup_django(args.db_url, DJANGO_SECRET_KEY=secrets.token_urlsafe(32))
    return run(args)


if __name__ == "__main__":
    sys.exit(main())

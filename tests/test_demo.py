"""`./run demo` as a new user meets it: the README's command, run for real (gunicorn, the
task worker and the periodic jobs), then used over HTTP as a browser would.

The first version shipped without its worker: "Check now" never answered and password changes
stayed pending. This test fails if the demo starts without any of its processes.
"""

from __future__ import annotations

import http.cookiejar
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

import postdesk

pytestmark = pytest.mark.own_database

RUN = Path(postdesk.__file__).parent.parent.parent / "run"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def demo_env(data_dir: Path, venv: str = sys.prefix) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("POSTDESK_", "DJANGO_")) and k != "DATABASE_URL"
    }
    # The venv the suite runs in: installed with the test extras, it holds what the demo needs.
    env.update(POSTDESK_VENV=venv, POSTDESK_DATA_DIR=str(data_dir))
    return env


class Browser:
    """Cookies and CSRF as a browser keeps them, over plain HTTP to the demo."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def get(self, path: str) -> tuple[int, str]:
        try:
            with self.opener.open(self.base + path, timeout=15) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def post(self, path: str, data: dict[str, str]) -> tuple[int, str]:
        token = next(c.value for c in self.jar if c.name == "csrftoken")
        body = urllib.parse.urlencode({**data, "csrfmiddlewaretoken": token}).encode()
        request = urllib.request.Request(  # noqa: S310 - the demo on loopback
            self.base + path, data=body, headers={"Referer": self.base + path}
        )
        with self.opener.open(request, timeout=15) as response:
            return response.status, response.read().decode()


def wait_until(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.3)


def rows(data_dir: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(data_dir / "postdesk.sqlite3", timeout=10) as db:
        return db.execute(sql).fetchall()


def test_the_demo_runs_what_a_real_install_runs(tmp_path):
    port = free_port()
    # A venv of its own, as on a fresh machine: the install is part of what a user meets.
    demo = subprocess.Popen(
        ["bash", str(RUN), "demo", "--port", str(port)],
        env=demo_env(tmp_path, venv=str(tmp_path / "venv")),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    said: list[str] = []
    reader = threading.Thread(target=lambda: said.extend(demo.stderr), daemon=True)
    reader.start()
    try:
        wait_until(lambda: any("serving on" in line for line in said), 300, f"no start: {said}")
        told = "".join(said)
        assert f"serving on http://127.0.0.1:{port}/" in told
        # The install says what it installs and how long it took, not silent seconds.
        assert "installing Python packages into" in told
        assert re.search(r"^    Django\b", told, re.MULTILINE), told
        assert re.search(r"Python packages: done in \d+ s", told)
        assert "no mail servers" in "".join(said)  # said once, plainly, to the operator
        logins = demo.stdout.readline() + "".join(demo.stdout.readline() for _ in range(4))
        owner_password = re.search(r"owner@example\.com / (\S+)", logins).group(1)

        browser = Browser(f"http://127.0.0.1:{port}")
        assert browser.get("/login/")[0] == 200
        status, landed = browser.post(
            "/login/", {"username": "owner@example.com", "password": owner_password}
        )
        assert status == 200 and "example.com" in landed
        # The demo client has a plan, so the billing overview has an estimate.
        status, billing = browser.get("/domains/example.com/billing/")
        assert status == 200 and "CAD" in billing

        # "Check now" is answered by the task worker.
        browser.post("/domains/example.com/dns/check/", {})
        wait_until(
            lambda: (
                rows(
                    tmp_path,
                    "SELECT status FROM django_tasks_database_dbtaskresult "
                    "WHERE task_path = 'postdesk.dns.tasks.check_domain_dns'",
                )
                == [("SUCCESSFUL",)]
            ),
            60,
            "the DNS check asked for was never run",
        )
        # The periodic jobs ran at start: DNS re-checked; usage waits for a mail server.
        wait_until(
            lambda: len(rows(tmp_path, "SELECT name FROM jobs_jobstate")) == 4, 60, "no jobs ran"
        )
        assert dict(rows(tmp_path, "SELECT name, last_outcome FROM jobs_jobstate")) == {
            "dns-recheck": "ok",
            "collect-usage": "skipped",
            "compact-totals": "ok",
            "sweep-moves": "ok",
        }
        # DEBUG is off: no technical page for a user.
        status, missing = browser.get("/no-such-page/")
        assert status == 404 and "URLconf" not in missing

        # The command the demo suggests, from another terminal, reaches this demo's data.
        assert "./run postdesk address list example.com" in logins
        listed = subprocess.run(
            ["bash", str(RUN), "postdesk", "address", "list", "example.com"],
            env=demo_env(tmp_path, venv=str(tmp_path / "venv")),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert listed.returncode == 0, listed.stderr
        assert "marie.dupont@example.com" in listed.stdout
    finally:
        demo.send_signal(signal.SIGTERM)  # what Ctrl-C does: the script stops what it started
        code = demo.wait(timeout=60)
    assert code in (0, 130, 143)
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0, "the panel still listens"
    left = subprocess.run(["pgrep", "-f", f"127.0.0.1:{port}|{tmp_path}"], capture_output=True)
    assert left.stdout == b"", "processes of the demo outlived it"
    assert not (tmp_path / "demo.env").exists()  # `./run postdesk` no longer points at it


def test_a_port_in_use_is_one_error_before_any_login(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            ["bash", str(RUN), "demo", "--port", str(port)],
            env=demo_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert result.stdout == ""  # no login printed
    assert result.stderr == (
        f"error: port {port} on 127.0.0.1 is already in use: stop what listens there, or "
        "choose another port (./run demo --port N, or POSTDESK_PORT)\n"
    )

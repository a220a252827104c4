"""`postdesk serve`: the panel under gunicorn with DEBUG off, static files collected and
served with long cache headers, a graceful reload on SIGHUP and a clean stop on SIGTERM; a
port already in use is one clear error; the workers' metrics add up in one scrape."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.cli import POSTDESK, _child_env, run_postdesk

pytestmark = pytest.mark.own_database


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_listening(port: int, process: subprocess.Popen, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read()
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    pytest.fail(f"nothing listens on {port}")


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
    try:
        request = urllib.request.Request(url, headers=headers or {})  # noqa: S310 - loopback
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode()


def worker_pids(master: int) -> set[str]:
    found = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True)
    return set(found.stdout.split())


def start_serve(data_dir, port: int, workers: int, **env: str) -> subprocess.Popen:
    """`postdesk serve` as production runs it (DEBUG off), its output kept for the test."""
    return subprocess.Popen(
        [POSTDESK, "serve", "--bind", f"127.0.0.1:{port}", "--workers", str(workers)],
        env={**_child_env(data_dir), "DJANGO_DEBUG": "0", "POSTDESK_SECURE_COOKIES": "0", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def data_dir(tmp_path):
    assert run_postdesk(tmp_path, "migrate", "--noinput").returncode == 0
    return tmp_path


def test_serves_pages_and_static_files_then_reloads_and_stops(data_dir):
    port = free_port()
    server = start_serve(data_dir, port, workers=1)
    try:
        wait_listening(port, server)
        base = f"http://127.0.0.1:{port}"
        status, _headers, page = get(f"{base}/login/")
        assert status == 200 and "<form" in page
        # Collected under a hashed name, served with a far-future cache header.
        css = re.search(r'href="(/static/web/app\.[0-9a-f]{12}\.css)"', page)
        assert css, page
        status, headers, body = get(base + css.group(1))
        assert status == 200 and "max-age=315360000" in headers["Cache-Control"]
        assert body.strip()
        # DEBUG is off: an unknown page is a plain 404, never Django's technical page.
        status, _headers, missing = get(f"{base}/no-such-page/")
        assert status == 404 and "URLconf" not in missing

        before = worker_pids(server.pid)
        server.send_signal(signal.SIGHUP)  # graceful reload: new workers, same socket
        deadline = time.monotonic() + 20
        while worker_pids(server.pid) & before or not worker_pids(server.pid):
            assert time.monotonic() < deadline, "workers were not replaced on SIGHUP"
            time.sleep(0.2)
        assert get(f"{base}/login/")[0] == 200

        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
    finally:
        if server.poll() is None:
            server.kill()
        server.wait()
    access_log = server.stdout.read()
    assert '"GET /login/ HTTP/1.1" 200' in access_log


def test_a_port_in_use_is_one_clear_error(data_dir):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_postdesk(data_dir, "serve", "--bind", f"127.0.0.1:{port}")
    assert result.returncode == 1
    assert result.stderr == (
        f"error: port {port} on 127.0.0.1 is already in use: stop what listens there, or "
        "choose another port (--bind HOST:PORT, or POSTDESK_PORT)\n"
    )


def test_a_bad_bind_is_refused(data_dir):
    result = run_postdesk(data_dir, "serve", "--bind", "localhost")
    assert result.returncode == 1
    assert "--bind wants HOST:PORT" in result.stderr


def test_the_workers_counts_add_up_in_one_scrape(data_dir):
    """Requests served by either of two workers all show in a scrape, whichever worker
    answers it; and the counts of a previous run's workers are forgotten at start."""
    metrics_dir = data_dir / "metrics"
    metrics_dir.mkdir(exist_ok=True)
    ended = metrics_dir / "histogram_999999999.db"  # no process has this id
    ended.write_bytes(b"")
    port = free_port()
    token = "metrics-token-for-tests-0123456789"
    server = start_serve(data_dir, port, workers=2, POSTDESK_METRICS_TOKEN=token)
    try:
        wait_listening(port, server)
        assert not ended.exists()
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while len(worker_pids(server.pid)) < 2:
            assert time.monotonic() < deadline, "the second worker did not start"
            time.sleep(0.1)
        workers = {int(pid) for pid in worker_pids(server.pid)}

        def served_by() -> set[int]:
            """The workers that have timed a request (each writes its own file)."""
            files = metrics_dir.glob("histogram_*.db")
            return {int(path.stem.rpartition("_")[2]) for path in files} & workers

        # Each request on a new connection: sooner or later both workers take some.
        sent = 0
        while served_by() != workers or sent < 20:
            assert sent < 200, "one worker served every request"  # 200 lines fit the pipe
            assert get(f"{base}/healthz")[0] == 200
            sent += 1
        status, _headers, text = get(f"{base}/metrics", {"Authorization": f"Bearer {token}"})
        assert status == 200
        counts = {
            sample.labels["route"]: sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "postdesk_http_request_duration_seconds_count"
        }
        assert counts["healthz"] == sent
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()


def test_serves_mta_sts_policies_by_host_with_debug_off_and_https_redirects(data_dir):
    """The front forwards mta-sts.DOMAIN, a host outside ALLOWED_HOSTS, over plain HTTP."""
    for step in (
        ("client", "create", "Acme"),
        ("domain", "add", "example.com", "--client", "Acme"),
    ):
        assert run_postdesk(data_dir, *step).returncode == 0
    port = free_port()
    server = start_serve(
        data_dir,
        port,
        workers=1,
        DJANGO_ALLOWED_HOSTS="panel.host.example",
        POSTDESK_SSL_REDIRECT="1",
        POSTDESK_MX_HOSTS="mx1.host.example",
    )
    url = f"http://127.0.0.1:{port}/.well-known/mta-sts.txt"
    try:
        wait_listening(port, server)
        status, headers, body = get(url, {"Host": "mta-sts.example.com"})
        assert status == 200, body
        assert headers["Content-Type"].startswith("text/plain")
        assert body == (
            "version: STSv1\r\nmode: testing\r\nmx: mx1.host.example\r\nmax_age: 86400\r\n"
        )
        assert get(url, {"Host": "mta-sts.other.example"})[0] == 404
        assert get(url, {"Host": "other.example"})[0] == 400  # any other host is still refused
    finally:
        server.terminate()
        server.wait(timeout=30)

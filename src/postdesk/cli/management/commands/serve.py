"""`postdesk serve`: the panel under gunicorn, as production runs it.

Static files are collected (hashed names) and served by WhiteNoise; gunicorn writes an access
log on stdout, reloads its workers gracefully on SIGHUP and stops cleanly on SIGTERM. Each
worker counts its requests for Prometheus in POSTDESK_METRICS_DIR (postdesk.metrics).
"""

import errno
import os
import socket
import sys
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections

from postdesk import metrics
from postdesk.cli.base import OperatorCommand
from postdesk.dataplane import provisioner

DEFAULT_PORT = 8000
# Threads per worker: a page that waits on the database does not hold up the next request.
THREADS = 4


def default_bind() -> str:
    return f"127.0.0.1:{os.environ.get('POSTDESK_PORT') or DEFAULT_PORT}"


def parse_bind(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise CommandError(f"--bind wants HOST:PORT, e.g. 127.0.0.1:8000 (got {text!r})")
    return host.strip("[]"), int(port)


def port_check(host: str, port: int) -> None:
    """Refuse at once, in one line, a port something else listens on."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise CommandError(
                    f"port {port} on {host} is already in use: stop what listens there, or "
                    "choose another port (--bind HOST:PORT, or POSTDESK_PORT)"
                ) from None
            raise CommandError(f"cannot listen on {host}:{port}: {error.strerror}") from None


class Command(OperatorCommand):
    help = "Serve the panel under gunicorn (static files, access log; SIGHUP reloads)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--bind",
            default=default_bind(),
            metavar="HOST:PORT",
            help="where to listen (default 127.0.0.1:$POSTDESK_PORT, else 127.0.0.1:8000)",
        )
        parser.add_argument(
            "--workers", type=int, default=2, metavar="N", help="worker processes (default 2)"
        )

    def handle(self, *args: Any, bind: str, workers: int, **options: Any) -> None:
        host, port = parse_bind(bind)
        if workers < 1:
            raise CommandError("--workers wants 1 or more")
        port_check(host, port)
        if not settings.DEBUG:
            call_command("collectstatic", interactive=False, verbosity=0)
        if not provisioner.connected():
            self.stderr.write(f"note: {provisioner.NOT_CONNECTED}")
        # The previous workers' counts go; the task worker's, still running, stay.
        metrics.forget_ended_processes(settings.POSTDESK_METRICS_DIR)
        connections.close_all()
        sys.stdout.flush()
        sys.stderr.flush()
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "postdesk.wsgi:application",
            f"--bind={host}:{port}" if ":" not in host else f"--bind=[{host}]:{port}",
            f"--workers={workers}",
            "--worker-class=gthread",
            f"--threads={THREADS}",
            "--access-logfile=-",
            "--graceful-timeout=30",
            # Signals drive it (HUP, TERM); a control socket at a fixed path in $HOME would
            # clash between two panels on one host.
            "--no-control-socket",
        ]
        os.execv(sys.executable, command)  # noqa: S606 - gunicorn, with our own interpreter

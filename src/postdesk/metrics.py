"""Prometheus metrics: what the processes count, added up across them at scrape time.

The panel runs as several gunicorn workers, the task worker and the periodic jobs are other
processes, and a scrape reaches only one worker. So the counters use prometheus_client's
multiprocess mode: each process writes its own counts into a file of POSTDESK_METRICS_DIR
(settings sets PROMETHEUS_MULTIPROC_DIR to it before the library loads), and a scrape adds up
the files of every process. What the database already knows (the task queue) is not counted
here: it is read when scraped (postdesk.jobs.metrics).

Every metric has labels, so a process that counts nothing (most commands) writes no file.
A process's file outlives it, so its counts stay in the sums; `postdesk serve` forgets the
files of ended processes when the panel starts (Prometheus's rate() reads the drop as a reset).
"""

from __future__ import annotations

import hmac
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django_tasks import TaskResult, TaskResultStatus
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

# Whatever path was asked, the label is the URL pattern (never a path with ids in it); a request
# no pattern matched (a static file, an unknown page, a redirect to HTTPS) is counted as one.
UNROUTED = "(unrouted)"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

REQUEST_DURATION = Histogram(
    "postdesk_http_request_duration_seconds",
    "Time to answer a request, by URL pattern, method and status class (2xx, 4xx, ...).",
    ["route", "method", "status"],
)
DNS_CHECKS = Counter(
    "postdesk_dns_checks",
    "Completed DNS checks of a domain, by record (spf, dkim, dmarc, mx) and its state.",
    ["record", "state"],
)
GATE_DECISIONS = Counter(
    "postdesk_gate_decisions",
    "The EAS/MAPI gate's answers to nginx: allowed, refused or throttled, by service.",
    ["service", "decision"],
)
TASKS_FAILED = Counter(
    "postdesk_tasks_failed",
    "Background tasks that ended with an error, by task.",
    ["task"],
)


def _route(request: HttpRequest) -> str:
    match = getattr(request, "resolver_match", None)
    return match.route if match is not None and match.route else UNROUTED


class RequestDurationMiddleware:
    """Times every answer (first in MIDDLEWARE, so the other middleware's work counts too)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        # Read first: HeadAsGetMiddleware runs a HEAD request as GET.
        method = request.method if request.method in _METHODS else "other"
        started = time.perf_counter()
        response = self.get_response(request)
        REQUEST_DURATION.labels(
            route=_route(request), method=method, status=f"{response.status_code // 100}xx"
        ).observe(time.perf_counter() - started)
        return response


def count_failed_task(sender: Any, task_result: TaskResult, **kwargs: Any) -> None:
    """Receives django-tasks' task_finished signal, which the worker sends after each task."""
    if task_result.status == TaskResultStatus.FAILED:
        TASKS_FAILED.labels(task=task_result.task.module_path).inc()


def scraper_allowed(authorization: str) -> bool:
    """True for `Bearer <POSTDESK_METRICS_TOKEN>`; always False while no token is set."""
    expected = settings.POSTDESK_METRICS_TOKEN
    scheme, _, given = authorization.partition(" ")
    return (
        bool(expected)
        and scheme.lower() == "bearer"
        and hmac.compare_digest(given.strip().encode(), expected.encode())
    )


def exposition(*collectors: Collector) -> bytes:
    """Every process's counts added up, with what `collectors` read now, in Prometheus's text
    format. Reads only the metrics directory, apart from what the collectors ask."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(settings.POSTDESK_METRICS_DIR))
    for collector in collectors:
        registry.register(collector)
    return generate_latest(registry)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: running
        return True
    return True


def forget_ended_processes(directory: Path) -> list[Path]:
    """Remove the count files of processes that are no longer running (the panel's previous
    workers, finished commands); those of running ones (the task worker) stay. Returns them."""
    removed = []
    for path in directory.glob("*.db"):
        # prometheus_client names them TYPE_PID.db (gauges: gauge_MODE_PID.db).
        pid = path.stem.rpartition("_")[2]
        if pid.isdigit() and not _running(int(pid)):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed

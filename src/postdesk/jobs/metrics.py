"""The task queue's part of the Prometheus metrics (postdesk.metrics has the counters).

The queue is read from django-tasks' table when scraped, one query: it is what the
database already knows, so no process has to count it. Failed tasks are counted as they
fail, by the worker (postdesk.metrics.count_failed_task): the table keeps every finished
task and has no index to count its failed ones without reading them all.
"""

from __future__ import annotations

from collections.abc import Iterator

from django.db import DatabaseError
from prometheus_client.core import GaugeMetricFamily

from .selectors import ready_tasks


class TaskQueueCollector:
    """A prometheus_client collector: the queue's gauges, read when scraped."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            ready = ready_tasks()
        except DatabaseError:
            return  # GET /healthz says so; the counters are still worth a scrape
        yield GaugeMetricFamily(
            "postdesk_tasks_queued", "Background tasks ready to run now.", value=ready.count
        )
        yield GaugeMetricFamily(
            "postdesk_tasks_oldest_queued_age_seconds",
            "How long the longest-waiting ready task has waited (0: none waits).",
            value=ready.oldest_wait_seconds,
        )

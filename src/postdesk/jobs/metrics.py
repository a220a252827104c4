"""The task queue's part of the Prometheus metrics (postdesk.metrics has the counters).

The queue is read from django-tasks' table when scraped, one query: it is what the
database already knows, so no process has to count it. So are the database's streaming
replicas, on PostgreSQL (one more query; none on SQLite). Failed tasks are counted as they
fail, by the worker (postdesk.metrics.count_failed_task): the table keeps every finished
task and has no index to count its failed ones without reading them all.
"""

from __future__ import annotations

from collections.abc import Iterator

from django.db import DatabaseError
from prometheus_client.core import GaugeMetricFamily

from postdesk.dataplane.replication import replicas, replication_possible
from postdesk.errors import PostdeskError

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


class ReplicationCollector:
    """A prometheus_client collector: the replicas streaming from the panel's PostgreSQL and
    their lag, read when scraped (dataplane.replication); nothing on SQLite, which has none."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if not replication_possible():
            return
        try:
            found = replicas()
        except (DatabaseError, PostdeskError):
            return  # `postdesk db replicas` says why (no pg_monitor, the database down)
        yield GaugeMetricFamily(
            "postdesk_db_replicas_streaming",
            "Standbys streaming from the panel's database (the mail hosts' replicas).",
            value=sum(1 for replica in found if replica.state == "streaming"),
        )
        yield GaugeMetricFamily(
            "postdesk_db_replicas_synchronous",
            "Standbys the primary's commits wait for (sync_state sync or quorum).",
            value=sum(1 for replica in found if replica.synchronous),
        )
        labels = ["replica", "address"]
        seconds = GaugeMetricFamily(
            "postdesk_db_replica_lag_seconds",
            "How long ago the primary committed what the standby has just replayed.",
            labels=labels,
        )
        behind = GaugeMetricFamily(
            "postdesk_db_replica_lag_bytes",
            "Bytes of WAL the primary has written and the standby has not replayed yet.",
            labels=labels,
        )
        for replica in found:
            names = [replica.name, replica.address or "local"]
            if replica.lag_seconds is not None:
                seconds.add_metric(names, replica.lag_seconds)
            if replica.lag_bytes is not None:
                behind.add_metric(names, replica.lag_bytes)
        yield seconds
        yield behind

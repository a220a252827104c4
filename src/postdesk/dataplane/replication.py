"""The streaming replicas the mail hosts read the views from, as the primary sees them.

PostgreSQL keeps one row per connected standby in `pg_stat_replication`: its state, whether
the primary's commits wait for it (`sync_state`), and how far behind it replays, in time
(`replay_lag`) and in bytes of WAL. One query reads them all, for
`postdesk db replicas` and the /metrics gauges (docs/scale.md). SQLite has no replicas.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from django.db import connection
from django.utils.translation import gettext as _

from postdesk.errors import InvalidInput

# The WAL position a standby is measured against: the primary's own, or, on a standby that
# feeds replicas in turn (cascading), the position it has received.
_REPLICAS_QUERY = """
SELECT application_name, host(client_addr), state, sync_state,
       EXTRACT(EPOCH FROM replay_lag)::float8,
       pg_wal_lsn_diff(
           CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn()
                ELSE pg_current_wal_lsn() END,
           replay_lsn
       )::bigint
FROM pg_stat_replication
ORDER BY application_name, client_addr
"""


@dataclass(frozen=True)
class Replica:
    # The standby's `application_name` in its primary_conninfo (docs/scale.md names each one).
    name: str
    address: str | None  # where it connects from; None over a Unix socket
    state: str  # startup, catchup, streaming, backup, stopping
    # Whether the primary's commits wait for it (synchronous_standby_names): `sync` or
    # `quorum` when they do, `potential` when it would replace a sync one lost, `async`.
    sync_state: str
    # How long ago the primary committed what the standby has just replayed; None while unknown.
    lag_seconds: float | None
    lag_bytes: int | None  # WAL the standby has not replayed yet

    @property
    def synchronous(self) -> bool:
        """Whether the primary's commits wait for this standby (one of a quorum included)."""
        return self.sync_state in {"sync", "quorum"}

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def replication_possible() -> bool:
    """True when the panel's database can have streaming replicas (PostgreSQL)."""
    return connection.vendor == "postgresql"


def replicas() -> list[Replica]:
    """The standbys streaming from the panel's database, in one query; [] on SQLite.

    Raises InvalidInput when the database user may not read their state (PostgreSQL shows it
    to superusers and members of pg_monitor only), and DatabaseError."""
    if not replication_possible():
        return []
    with connection.cursor() as cursor:
        cursor.execute(_REPLICAS_QUERY)
        rows = cursor.fetchall()
    if any(state is None for _name, _address, state, *_measures in rows):
        raise InvalidInput(
            "replicas_unreadable",
            _(
                "The database user %(user)s may not read the replicas' state: "
                "GRANT pg_monitor TO %(user)s on the primary."
            )
            % {"user": connection.settings_dict.get("USER") or "postdesk"},
        )
    return [
        Replica(
            name=name,
            address=address,
            state=state,
            sync_state=sync_state,
            # PostgreSQL forgets the lag of a standby that has caught up once nothing more is
            # written: nothing left to replay is no lag.
            lag_seconds=seconds if seconds is not None or lag_bytes != 0 else 0.0,
            lag_bytes=lag_bytes,
        )
        for name, address, state, sync_state, seconds, lag_bytes in rows
    ]

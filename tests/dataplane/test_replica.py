"""PostgreSQL primary and streaming replica (docs/scale.md, "Database: primary and replicas").

Real clusters started here, as an operator makes them: initdb, a replication user,
`pg_basebackup -R` for the standby, both on 127.0.0.1 on their own ports. The panel (real
`postdesk` processes) writes to the primary; the mail daemons' lookups read the replica, which
refuses writes; `postdesk db replicas` and the /metrics gauges report its lag; after the primary
is lost and the replica promoted, the panel works on it. The last test promotes the replica:
the tests run in file order, on one pair of clusters.
"""

from __future__ import annotations

import json
import os
import plistlib
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from postdesk.dataplane.render import dovecot_queries, free_port
from tests.cli import assert_fails, assert_ok, run_postdesk


def _newest_postgresql() -> Path | None:
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name)
    )
    return found[-1].parent if found else None


PG_BIN = _newest_postgresql()

pytestmark = [
    # Its own clusters, whatever DATABASE_URL says: once per `./run test`, in the SQLite pass.
    pytest.mark.own_database,
    pytest.mark.skipif(
        PG_BIN is None,
        reason="PostgreSQL's server binaries are not installed (./run test installs Debian's)",
    ),
]

REPLICA_NAME = "mailhost-replica"
MAILBOX = ("first", "acme.example")


@dataclass
class PostgresCluster:
    """One PostgreSQL server on 127.0.0.1, run as the postgres user when we are root."""

    data: Path
    port: int
    run_as: list[str]

    def pg(self, tool: str, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*self.run_as, str(PG_BIN / tool), *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )

    def url(self) -> str:
        return f"postgres://postdesk@127.0.0.1:{self.port}/postdesk"

    def start(self) -> None:
        options = f"-h 127.0.0.1 -p {self.port} -k {self.data.parent} -c fsync=off"
        log = f"{self.data}.log"
        self.pg("pg_ctl", "-D", str(self.data), "-l", log, "-w", "-o", options, "start")

    def stop(self) -> None:
        """Stop exactly this server: the PID its postmaster.pid names."""
        pid_file = self.data / "postmaster.pid"
        if not pid_file.exists():
            return
        pid = int(pid_file.read_text().split()[0])
        subprocess.run(
            [*self.run_as, str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "stop"],
            capture_output=True,
            timeout=60,
            check=False,
        )
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        os.kill(pid, 9)

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(self.url(), autocommit=True)


@dataclass
class Pair:
    primary: PostgresCluster
    replica: PostgresCluster
    panel_data: Path

    def postdesk(self, *args: str, database: PostgresCluster | None = None, **env: str):
        """`postdesk` as the panel runs it: DATABASE_URL names the primary (or `database`)."""
        env = {"DATABASE_URL": (database or self.primary).url(), **env}
        return run_postdesk(self.panel_data, *args, env=env)


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> Iterator[Pair]:
    # Not under pytest's private tmp: the postgres user must reach the data directories.
    base = Path(tempfile.mkdtemp(prefix="postdesk-replica."))
    base.chmod(0o755)
    run_as: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
    primary = PostgresCluster(base / "primary", free_port(), run_as)
    replica = PostgresCluster(base / "replica", free_port(), run_as)
    try:
        primary.pg(
            "initdb", "-D", str(primary.data), "-U", "postdesk", "--auth=trust", "-E", "UTF8"
        )
        primary.start()
        with psycopg.connect(primary.url().rsplit("/", 1)[0] + "/postgres", autocommit=True) as db:
            db.execute("CREATE ROLE replicator WITH REPLICATION LOGIN")
            db.execute("CREATE DATABASE postdesk")
        # -R writes the standby's primary_conninfo (with its application_name, the name the
        # primary reports it by) and standby.signal: it starts as a hot standby.
        conninfo = (
            f"host=127.0.0.1 port={primary.port} user=replicator application_name={REPLICA_NAME}"
        )
        replica.pg(
            "pg_basebackup",
            "-d",
            conninfo,
            "-D",
            str(replica.data),
            "-R",
            "-X",
            "stream",
            "-c",
            "fast",
        )
        replica.start()
        pair = Pair(primary, replica, tmp_path_factory.mktemp("replica-panel"))
        # Only on the primary: the views and functions reach the replica by replication.
        assert_ok(pair.postdesk("migrate", "--noinput"))
        for args in (
            ["client", "create", "Acme"],
            ["domain", "add", MAILBOX[1], "--client", "Acme"],
        ):
            assert_ok(pair.postdesk(*args))
        yield pair
    finally:
        replica.stop()
        primary.stop()
        shutil.rmtree(base, ignore_errors=True)


def wait_for_row(cluster: PostgresCluster, query: str, params: tuple, timeout: float = 10):
    deadline = time.monotonic() + timeout
    with cluster.connect() as db:
        while True:
            row = db.execute(query, params).fetchone()
            if row is not None or time.monotonic() > deadline:
                return row
            time.sleep(0.1)


MAILBOX_ROW = "SELECT address FROM dataplane_mailboxes WHERE local_part = %s AND domain = %s"


def test_a_mailbox_made_on_the_panel_is_in_the_replicas_view_within_seconds(pair):
    started = time.monotonic()
    assert_ok(pair.postdesk("mailbox", "create", "@".join(MAILBOX), "--generate-password"))
    row = wait_for_row(pair.replica, MAILBOX_ROW, MAILBOX)
    assert row == ("first@acme.example",)
    assert time.monotonic() - started < 10
    with pair.replica.connect() as db:
        assert db.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)


def test_the_daemons_lookups_rendered_for_the_replica_find_the_mailbox(pair, tmp_path):
    out = tmp_path / "stack"
    rendered = pair.postdesk(
        "dataplane",
        "render",
        "--out",
        str(out),
        POSTDESK_DATAPLANE_DATABASE_URL=pair.replica.url(),
    )
    assert_ok(rendered)
    lookup = (out / "postfix" / "mailboxes.cf").read_text()
    assert f"hosts = 127.0.0.1:{pair.replica.port}" in lookup
    assert "dataplane_mailbox(" in lookup
    assert f"port={pair.replica.port} " in (out / "dovecot" / "sql.conf.ext").read_text()
    assert (
        f"@{pair.replica.port}+127.0.0.1/postdesk/" in (out / "opendkim/opendkim.conf").read_text()
    )

    if (
        shutil.which("postmap")
        and "pgsql"
        in subprocess.run(
            ["postconf", "-m"], capture_output=True, text=True, check=False
        ).stdout.split()
    ):
        # Postfix's own lookup, through the file rendered for the replica.
        found = subprocess.run(
            ["postmap", "-q", "first@acme.example", f"pgsql:{out}/postfix/mailboxes.cf"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert found.stdout.strip() == "1", found.stderr
    # Dovecot's password query as its SQL driver sends it (%n, %d filled in), on the replica.
    query = dovecot_queries("pgsql", "/var/vmail")["password_query"]
    with pair.replica.connect() as db:
        row = db.execute(query.replace("%n", "first").replace("%d", "acme.example")).fetchone()
    assert row[0] == "first@acme.example"
    assert row[1].startswith("{ARGON2ID}")

    sogo = out / "sogo" / "GNUstep" / "Defaults" / "sogod.plist"
    if sogo.exists():
        settings = plistlib.loads(sogo.read_bytes())
        # SOGo writes its own tables: on the primary; its users it reads from the replica.
        assert f"@127.0.0.1:{pair.primary.port}/" in settings["OCSStoreURL"]
        assert f"@127.0.0.1:{pair.replica.port}/" in settings["SOGoUserSources"][0]["viewURL"]


def test_the_replica_refuses_writes(pair):
    with pair.replica.connect() as db, pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        db.execute("UPDATE mail_mailbox SET quota_mb = quota_mb")


def scrape_replication_metrics(pair: Pair) -> dict[tuple[str, tuple], float]:
    """What /metrics serves of the replicas, read as a scrape reads it."""
    script = (
        "import sys; from postdesk.metrics import exposition; "
        "from postdesk.jobs.metrics import ReplicationCollector; "
        "sys.stdout.write(exposition(ReplicationCollector()).decode())"
    )
    scraped = pair.postdesk("shell", "--no-imports", "-c", script)
    assert_ok(scraped)
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(scraped.stdout)
        for sample in family.samples
    }


def test_the_operator_sees_the_replica_and_its_small_lag(pair):
    listed = pair.postdesk("db", "replicas", "--json")
    assert_ok(listed)
    [replica] = json.loads(listed.stdout)
    assert set(replica) == {"name", "address", "state", "sync_state", "lag_seconds", "lag_bytes"}
    # The primary names no synchronous standby yet: its commits wait for none.
    assert (replica["name"], replica["address"], replica["state"], replica["sync_state"]) == (
        REPLICA_NAME,
        "127.0.0.1",
        "streaming",
        "async",
    )
    assert 0 <= replica["lag_seconds"] < 5
    assert 0 <= replica["lag_bytes"] < 1_000_000
    text = pair.postdesk("db", "replicas")
    assert_ok(text)
    assert re.fullmatch(
        rf"{REPLICA_NAME}\t127\.0\.0\.1\tstreaming\tasync\t"
        rf"\d+\.\d{{3}} s behind\t\d+ byte\(s\) behind\n",
        text.stdout,
    )

    # PostgreSQL shows a standby's state to superusers and pg_monitor only: a panel user
    # without it is told what to grant, never shown a replica with no state.
    with pair.primary.connect() as db:
        db.execute("CREATE ROLE watcher LOGIN")
    watcher = pair.primary.url().replace("postdesk@", "watcher@")
    refused = pair.postdesk("db", "replicas", DATABASE_URL=watcher)
    assert "GRANT pg_monitor TO watcher" in assert_fails(refused, "replicas_unreadable")
    with pair.primary.connect() as db:
        db.execute("GRANT pg_monitor TO watcher")
    granted = pair.postdesk("db", "replicas", "--json", DATABASE_URL=watcher)
    assert_ok(granted)
    assert [row["state"] for row in json.loads(granted.stdout)] == ["streaming"]

    samples = scrape_replication_metrics(pair)
    labels = (("address", "127.0.0.1"), ("replica", REPLICA_NAME))
    assert samples[("postdesk_db_replicas_streaming", ())] == 1
    assert samples[("postdesk_db_replicas_synchronous", ())] == 0
    assert 0 <= samples[("postdesk_db_replica_lag_seconds", labels)] < 5
    assert 0 <= samples[("postdesk_db_replica_lag_bytes", labels)] < 1_000_000


# The replica applies each commit this long after the primary made it (a replica far away, or
# busy), so the lag window is certain instead of a race.
APPLY_DELAY_SECONDS = 2

# Run inside the panel (`postdesk shell`): create a mailbox as the operator does, then, the
# moment the command has returned, ask the replica's view for it, as an MX's lookup would.
CREATE_THEN_LOOK_UP = """
import json, time, psycopg
from django.core.management import call_command
started = time.monotonic()
call_command("mailbox", "create", "{address}", "--generate-password", stdout=open("/dev/null", "w"))
returned = time.monotonic()
with psycopg.connect("{replica}") as db:
    row = db.execute("{query}", ("{local_part}", "{domain}")).fetchone()
print(json.dumps({{"seconds": returned - started, "found": row is not None}}))
"""


def _create_then_look_up(pair: Pair, address: str, **env: str) -> dict:
    local_part, domain = address.split("@")
    script = CREATE_THEN_LOOK_UP.format(
        address=address,
        replica=pair.replica.url(),
        query=MAILBOX_ROW,
        local_part=local_part,
        domain=domain,
    )
    ran = pair.postdesk("shell", "--no-imports", "-c", script, **env)
    assert_ok(ran)
    return json.loads(ran.stdout.splitlines()[-1])


@pytest.fixture
def synchronous_replica(pair):
    """The primary waits for the replica (docs/scale.md, "Making a replica"), which applies
    each commit APPLY_DELAY_SECONDS late."""
    settings = [
        # A name with a hyphen is quoted, as an identifier.
        (pair.primary, "synchronous_standby_names", f'ANY 1 ("{REPLICA_NAME}")'),
        (pair.replica, "recovery_min_apply_delay", f"{APPLY_DELAY_SECONDS}s"),
    ]
    for cluster, name, value in settings:
        with cluster.connect() as db:
            db.execute(f"ALTER SYSTEM SET {name} = '{value}'")
            db.execute("SELECT pg_reload_conf()")
    row = wait_for_row(
        pair.primary,
        "SELECT 1 FROM pg_stat_replication WHERE application_name = %s AND sync_state = %s",
        (REPLICA_NAME, "quorum"),
    )
    assert row == (1,)
    yield
    for cluster, name, _value in settings:
        with cluster.connect() as db:
            db.execute(f"ALTER SYSTEM RESET {name}")
            db.execute("SELECT pg_reload_conf()")


def test_with_sync_replicas_a_new_mailbox_is_on_the_replica_when_the_panel_returns(
    pair, synchronous_replica
):
    """An MX that looks up a mailbox on its replica in the lag window answers 550 and the
    sender's mail bounces; POSTDESK_DB_SYNC_REPLICAS makes the panel's commits wait until the
    replica has applied them."""
    # The hole: the primary even waits for the replica to have the WAL (synchronous_commit's
    # default, `on`), but not to have applied it.
    unsafe = _create_then_look_up(pair, "early@acme.example")
    assert unsafe == {"seconds": unsafe["seconds"], "found": False}

    safe = _create_then_look_up(pair, "late@acme.example", POSTDESK_DB_SYNC_REPLICAS="1")
    assert safe["found"] is True
    # The price, plainly: the panel's writes took the replica's delay.
    assert safe["seconds"] >= APPLY_DELAY_SECONDS

    # The operator sees that the guarantee holds: the primary's commits wait for the replica.
    listed = pair.postdesk("db", "replicas", "--json")
    assert_ok(listed)
    assert [(row["name"], row["sync_state"]) for row in json.loads(listed.stdout)] == [
        (REPLICA_NAME, "quorum")
    ]
    assert scrape_replication_metrics(pair)[("postdesk_db_replicas_synchronous", ())] == 1


def test_failover_promote_the_replica_and_the_panel_works_on_it(pair):
    """docs/scale.md's failover: the primary is lost, the replica promoted, DATABASE_URL
    pointed at it."""
    pair.primary.stop()
    pair.replica.pg("pg_ctl", "-D", str(pair.replica.data), "-w", "promote")
    new_primary = pair.replica

    created = pair.postdesk(
        "mailbox", "create", "after@acme.example", "--generate-password", database=new_primary
    )
    assert_ok(created)
    with new_primary.connect() as db:
        assert db.execute("SELECT pg_is_in_recovery()").fetchone() == (False,)
        assert db.execute(MAILBOX_ROW, ("after", "acme.example")).fetchone() == (
            "after@acme.example",
        )
        assert db.execute(MAILBOX_ROW, MAILBOX).fetchone() == ("first@acme.example",)
    listed = pair.postdesk("db", "replicas", "--json", database=new_primary)
    assert_ok(listed)
    assert json.loads(listed.stdout) == []

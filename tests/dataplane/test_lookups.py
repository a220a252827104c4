"""The lookups the daemons run, as rendered for each database, answer what the views say.

On PostgreSQL the per-address lookups go through PL/pgSQL functions (a plan cached per
connection, see dataplane/views_sql.PG_FUNCTIONS); they must answer exactly what the views
answer, for mailboxes, aliases, forwards, missing addresses and suspended clients. The mail
flow tests prove the same end to end with real Postfix and Dovecot on both databases.
"""

from __future__ import annotations

import pytest
from django.db import connection

from postdesk.dataplane.render import POSTFIX_LOOKUPS, database_settings, dovecot_queries
from postdesk.mail.hosts import host_add
from postdesk.mail.services import forward_create, mailbox_create
from postdesk.workflows.clients import client_suspend
from tests.conftest import GOOD_PASSWORD

pytestmark = pytest.mark.django_db

VMAIL = "/var/vmail"


def run_lookup(query: str, local_part: str, domain: str) -> list[tuple]:
    """Run a rendered lookup the way the daemon fills it in (%u/%n, %d; %s is the whole key:
    the domain for domains.cf, which is asked with an empty local part)."""
    sql = (
        query.replace("'%s'", "%(key)s")
        .replace("'%u'", "%(local)s")
        .replace("'%n'", "%(local)s")
        .replace("'%d'", "%(domain)s")
    )
    params = {"key": domain, "local": local_part, "domain": domain}
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return sorted(cursor.fetchall())


@pytest.fixture
def mail(operator, domain):
    box = mailbox_create(
        actor=operator,
        domain=domain,
        username="anna",
        password=GOOD_PASSWORD,
        aliases=["sales"],
        quota_mb=250,
    )
    forward_create(
        actor=operator,
        domain=domain,
        name="team",
        destinations=["one@elsewhere.example", "two@elsewhere.example"],
    )
    return box


def rendered() -> tuple[dict[str, str], dict[str, str]]:
    engine = database_settings()["engine"]
    return POSTFIX_LOOKUPS[engine], dovecot_queries(engine, VMAIL)


def test_postfix_lookups_answer_mailboxes_aliases_and_forwards(mail, domain):
    postfix, _ = rendered()
    assert run_lookup(postfix["domains.cf"], "", domain.name) == [(1,)]
    assert run_lookup(postfix["domains.cf"], "", "nowhere.example") == []
    assert run_lookup(postfix["mailboxes.cf"], "anna", domain.name) == [(1,)]
    assert run_lookup(postfix["mailboxes.cf"], "sales", domain.name) == []
    assert run_lookup(postfix["aliases.cf"], "sales", domain.name) == [(f"anna@{domain.name}",)]
    assert run_lookup(postfix["aliases.cf"], "team", domain.name) == [
        ("one@elsewhere.example",),
        ("two@elsewhere.example",),
    ]
    assert run_lookup(postfix["aliases.cf"], "nobody", domain.name) == []


def test_dovecot_lookups_give_password_home_and_quota(mail, domain):
    _, dovecot = rendered()
    [(user, password)] = run_lookup(dovecot["password_query"], "anna", domain.name)
    assert user == f"anna@{domain.name}"
    assert password == mail.password_hash
    [(home, quota_rule)] = run_lookup(dovecot["user_query"], "anna", domain.name)
    assert home == f"{VMAIL}/{domain.name}/{mail.storage_id.hex}"
    assert quota_rule == f"*:bytes={250 * 1048576}"
    assert run_lookup(dovecot["password_query"], "sales", domain.name) == []


def test_a_suspended_clients_addresses_are_unknown_to_every_lookup(mail, operator, domain):
    postfix, dovecot = rendered()
    client_suspend(actor=operator, client=domain.client)
    assert run_lookup(postfix["domains.cf"], "", domain.name) == []
    assert run_lookup(postfix["mailboxes.cf"], "anna", domain.name) == []
    assert run_lookup(postfix["aliases.cf"], "sales", domain.name) == []
    assert run_lookup(postfix["aliases.cf"], "team", domain.name) == []
    assert run_lookup(dovecot["password_query"], "anna", domain.name) == []


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the lookup functions exist on PostgreSQL only"
)
def test_on_postgresql_the_per_address_lookups_use_the_cached_plan_functions(mail, domain):
    postfix, dovecot = rendered()
    for query in (postfix["mailboxes.cf"], postfix["aliases.cf"], *dovecot.values()):
        assert "dataplane_mailbox(" in query or "dataplane_alias_destinations(" in query
    # The functions answer row for row what the views answer.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT address, local_part, domain, password, storage, quota_mb, home_host, "
            "home_address, moving FROM dataplane_mailboxes WHERE domain = %s ORDER BY address",
            [domain.name],
        )
        from_view = cursor.fetchall()
        cursor.execute("SELECT * FROM dataplane_mailbox('anna', %s)", [domain.name])
        assert cursor.fetchall() == from_view


HOME_QUERY = {
    # What a proxy's passdb and an MX's transport will ask (docs/dataplane.md, "Hosts and
    # homes"): the view on both databases, and on PostgreSQL the cached-plan function too.
    "view": "SELECT home_host, home_address FROM dataplane_mailboxes "
    "WHERE local_part = %s AND domain = %s",
    "function": "SELECT home_host, home_address FROM dataplane_mailbox(%s, %s)",
}


def _home(local_part: str, domain: str) -> list[tuple]:
    answers = {}
    for how, sql in HOME_QUERY.items():
        if how == "function" and connection.vendor != "postgresql":
            continue
        with connection.cursor() as cursor:
            cursor.execute(sql, [local_part, domain])
            answers[how] = cursor.fetchall()
    assert len(set(map(tuple, answers.values()))) == 1, answers
    return answers["view"]


def test_each_mailbox_gives_its_homes_name_and_address(mail, operator, domain):
    # No backend registered: no home, the single host delivers as before.
    assert _home("anna", domain.name) == [(None, None)]

    host_add(actor=operator, name="mail1", address="192.0.2.1", roles=["backend", "mx"])
    host_add(actor=operator, name="mail2", address="2001:db8::2", roles=["backend"])
    mailbox_create(actor=operator, domain=domain, username="ben", password=GOOD_PASSWORD)

    # anna was there before any host: the first backend took her in; ben went to the other.
    assert _home("anna", domain.name) == [("mail1", "192.0.2.1")]
    assert _home("ben", domain.name) == [("mail2", "2001:db8::2")]
    assert _home("sales", domain.name) == []  # an alias has no home of its own


def test_stack_ports_are_drawn_outside_the_ephemeral_range_and_never_twice():
    """Outgoing connections take ephemeral ports: a listening port chosen there could be
    taken before the daemon binds it (seen: nginx 'Address already in use')."""
    from pathlib import Path

    from postdesk.dataplane.render import free_port

    low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == 50
    assert all(not (low <= port <= high) for port in ports)

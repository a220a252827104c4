"""Benchmark fixtures: a domain of any size, filled in seconds.

This module writes the mail models directly with bulk_create, bypassing the services on
purpose: mailbox_create hashes every password (Argon2, ~0.1 s each), writes an audit event
and runs several queries per mailbox, so 10,000 mailboxes through it would take many minutes.
The rows written here are the ones the services would write (one Address row per local part,
lowercase names, forwards with at least one destination), but no audit event is recorded and
every mailbox shares ONE password hash computed once. Never use it outside tests and benchmarks.

The data is deterministic (a fixed random seed), and the names follow a scheme that keeps
search texts precise:

    mailboxes       <surname>.user<n>       e.g. martin.user42
    aliases         <first name>.<k>        e.g. claire.7        (spread unevenly over mailboxes)
    forwards        <role><j>               e.g. sales12         (1-3 destinations each)
    destinations    <word><j>@<provider>    e.g. ops12@partner.example
    mailbox fwd     home<n>@<provider>      on about 10 % of the mailboxes

Numbers continue from the addresses already in the domain, so add_addresses may be called
several times on one domain without a name collision.
"""

from __future__ import annotations

import functools
import random
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from postdesk.dataplane.passwords import hash_password
from postdesk.mail.choices import AddressKind
from postdesk.mail.models import Address, Alias, Destination, Domain, Forward, Mailbox
from postdesk.tenancy.models import Client

SEED = 20240601
# Known to every benchmark mailbox; it passes the password checks for any bench domain.
PASSWORD = "Bench-Passw0rd!x"

SURNAMES = (  # noqa: SIM905 (one string: long name lists stay readable)
    "martin bernard thomas petit robert richard durand dubois moreau laurent simon michel "
    "lefebvre leroy roux david bertrand morel fournier girard bonnet dupont lambert "
    "fontaine rousseau vincent muller lefevre faure andre mercier blanc guerin boyer "
    "garnier chevalier francois legrand gauthier garcia perrin robin clement morin nicolas "
    "henry roussel mathieu gautier masson marchand duval denis dumont marie lemaire noel "
    "meyer dufour meunier brun blanchard giraud joly riviere lucas brunet gaillard barbier "
    "arnaud martinez gerard roche renard schmitt roy leroux colin vidal caron picard roger "
    "fabre aubert lemoine renaud dumas lacroix olivier philippe bourgeois pierre benoit "
    "rey leclerc payet rolland leclercq"
).split()
FIRST_NAMES = (  # noqa: SIM905 (one string: long name lists stay readable)
    "marie jean claire pierre sophie nicolas julie thomas camille antoine laura louis emma "
    "hugo lea paul chloe lucas sarah leo manon jules ines arthur alice gabriel anna "
    "raphael eva adam zoe noah lina ethan jade nathan rose victor lou theo mia"
).split()
ROLES = ("info", "sales", "support", "billing", "jobs", "press", "team", "orders", "noreply")
DESTINATION_WORDS = ("ops", "backup", "archive")
PROVIDERS = ("gmail.com", "outlook.com", "proton.me", "partner.example", "laposte.net")
QUOTAS_MB = (0, 0, 1024, 2048, 5120, 5120, 10240, 51200)

# The share of mailboxes that forward their mail somewhere, and of those that also delete it.
FORWARDING_SHARE = 0.10
DELETE_AFTER_FORWARDING_SHARE = 0.3


@functools.cache
def _password_hash() -> str:
    # One Argon2 hash for every mailbox: hashing 10,000 passwords would dominate the run.
    return hash_password(PASSWORD)


def make_domain(name: str, mailboxes: int, aliases: int, forwards: int) -> Domain:
    """A new client owning a new domain `name`, filled by add_addresses."""
    client = Client.objects.create(name=f"Bench {name}")
    domain = Domain.objects.create(client=client, name=name.lower())
    add_addresses(domain, mailboxes=mailboxes, aliases=aliases, forwards=forwards)
    return domain


# Rows per INSERT: a million rows in one statement would hold every parameter in memory at
# once; on PostgreSQL the totals' statement triggers then run once per batch.
BATCH = 5000

# The other customers of the provider, whose rows share the tables with the measured domain.
NEIGHBOURS = 100
NEIGHBOUR_SIZE = {"mailboxes": 100, "aliases": 100, "forwards": 20}


def make_neighbours(tag: str, count: int = NEIGHBOURS) -> list[Domain]:
    """`count` small domains of other clients (22,000 addresses for 100): a provider's
    database is never one domain. With the measured domain alone in its tables, PostgreSQL's
    planner reads them sequentially (the domain is most of every table) where, among other
    tenants' rows, it seeks its indexes as it would in production; SQLite always seeks."""
    return [
        make_domain(f"neighbour{number}-{tag}.bench.example", **NEIGHBOUR_SIZE)
        for number in range(count)
    ]


def add_addresses(domain: Domain, *, mailboxes: int, aliases: int, forwards: int) -> None:
    """Add mailboxes, aliases spread over them, and standalone forwards to `domain`."""
    if aliases and not mailboxes:
        raise ValueError("aliases need at least one mailbox to belong to")
    # Numbering continues after the domain's existing rows, so a second call never collides.
    offset = Address.objects.filter(domain=domain).count()
    # Seeded by the offset too: a second call on one domain draws a different spread.
    rng = random.Random(SEED + offset)
    now = timezone.now()
    with transaction.atomic():
        mailbox_rows = _add_mailboxes(domain, mailboxes, offset, rng, now)
        _add_aliases(domain, mailbox_rows, aliases, offset, rng)
        _add_forwards(domain, forwards, offset, rng)


def _used_bytes(rng: random.Random, quota_mb: int) -> int:
    """Disk use as a usage collector would report it: log-normal, a few empty, within quota."""
    if rng.random() < 0.05:
        return 0  # never logged in
    # Median about 400 MB, with a long tail of mailboxes holding tens of GB.
    used = int(rng.lognormvariate(19.8, 1.6))
    if quota_mb:
        used = min(used, quota_mb * 1024 * 1024)
    return used


def _growth_bytes(rng: random.Random) -> int:
    """The 7-day growth the collector's samples would give (no samples are written here;
    bench/billing_growth.py writes a year of them): a third of mailboxes idle (0, ties by
    name), most gaining a few MB a week, a few shrinking (a clean-up)."""
    draw = rng.random()
    if draw < 0.35:
        return 0
    if draw < 0.45:
        return -int(rng.lognormvariate(16.0, 1.5))
    return int(rng.lognormvariate(16.5, 1.8))


def _add_mailboxes(
    domain: Domain, count: int, offset: int, rng: random.Random, now: datetime
) -> list[Mailbox]:
    addresses = Address.objects.bulk_create(
        (
            Address(
                domain=domain,
                local_part=f"{SURNAMES[n % len(SURNAMES)]}.user{n}",
                kind=AddressKind.MAILBOX,
            )
            for n in range(offset, offset + count)
        ),
        batch_size=BATCH,
    )
    password_hash = _password_hash()
    rows = []
    forwarding: list[Destination] = []
    for n, address in enumerate(addresses, start=offset):
        quota_mb = rng.choice(QUOTAS_MB)
        forwards_mail = rng.random() < FORWARDING_SHARE
        rows.append(
            Mailbox(
                address=address,
                domain=domain,
                local_part=address.local_part,
                password_hash=password_hash,
                password_changed_at=now - timedelta(days=rng.randrange(0, 720)),
                quota_mb=quota_mb,
                used_bytes=_used_bytes(rng, quota_mb),
                used_measured_at=now - timedelta(minutes=rng.randrange(0, 60)),
                growth_7d_bytes=_growth_bytes(rng),
                delete_after_forwarding=(
                    forwards_mail and rng.random() < DELETE_AFTER_FORWARDING_SHARE
                ),
                eas_enabled=rng.random() < 0.15,
                mapi_enabled=rng.random() < 0.05,
            )
        )
        if forwards_mail:
            providers = rng.sample(PROVIDERS, rng.choice((1, 1, 1, 2)))
            forwarding.extend(
                Destination(address=address, email=f"home{n}@{provider}", position=i)
                for i, provider in enumerate(providers)
            )
    mailboxes = Mailbox.objects.bulk_create(rows, batch_size=BATCH)
    Destination.objects.bulk_create(forwarding, batch_size=BATCH)
    return mailboxes


def _add_aliases(
    domain: Domain, mailboxes: list[Mailbox], count: int, offset: int, rng: random.Random
) -> None:
    if not count:
        return
    # An uneven spread, as in real domains: most mailboxes have no alias or one, a few
    # shared ones (contact, accounting) have many. Small weights keep every mailbox eligible.
    weights = [rng.choice((0.05, 0.05, 1, 1, 1, 2, 3, 8)) for _ in mailboxes]
    owners = rng.choices(mailboxes, weights=weights, k=count)
    addresses = Address.objects.bulk_create(
        (
            Address(
                domain=domain,
                local_part=f"{FIRST_NAMES[k % len(FIRST_NAMES)]}.{k}",
                kind=AddressKind.ALIAS,
            )
            for k in range(offset, offset + count)
        ),
        batch_size=BATCH,
    )
    Alias.objects.bulk_create(
        (
            Alias(address=address, mailbox=owner)
            for address, owner in zip(addresses, owners, strict=True)
        ),
        batch_size=BATCH,
    )


def _add_forwards(domain: Domain, count: int, offset: int, rng: random.Random) -> None:
    addresses = Address.objects.bulk_create(
        (
            Address(
                domain=domain, local_part=f"{ROLES[j % len(ROLES)]}{j}", kind=AddressKind.FORWARD
            )
            for j in range(offset, offset + count)
        ),
        batch_size=BATCH,
    )
    Forward.objects.bulk_create(
        (Forward(address=address) for address in addresses), batch_size=BATCH
    )
    destinations = []
    for j, address in enumerate(addresses, start=offset):
        for i in range(rng.randint(1, 3)):
            provider = rng.choice(PROVIDERS)
            destinations.append(
                Destination(
                    address=address, email=f"{DESTINATION_WORDS[i]}{j}@{provider}", position=i
                )
            )
    Destination.objects.bulk_create(destinations, batch_size=BATCH)


def search_samples(domain: Domain) -> dict[str, str]:
    """Search texts that each match exactly one row of a domain filled by add_addresses.

    Taken from the middle of the domain's data, so they exist at every size. The trailing
    "@" stops "user12" from also matching user120…user129.
    """
    mailboxes = Address.objects.filter(domain=domain, kind=AddressKind.MAILBOX)
    aliases = Address.objects.filter(domain=domain, kind=AddressKind.ALIAS)
    forwards = Address.objects.filter(domain=domain, kind=AddressKind.FORWARD)
    mailbox = mailboxes.order_by("pk")[mailboxes.count() // 2]
    alias = aliases.order_by("pk")[aliases.count() // 2]
    forward = forwards.order_by("pk")[forwards.count() // 2]
    destination = (
        Destination.objects.filter(address=forward).order_by("position").values_list("email")[0][0]
    )
    return {
        "local part": mailbox.local_part.split(".")[1] + "@",
        "alias": f"{alias.local_part}@",
        "destination": destination.split("@")[0] + "@",
    }

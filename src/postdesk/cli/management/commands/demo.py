"""`postdesk demo`: a demo client with a domain, mailboxes, aliases and forwards; with
POSTDESK_PROBE_ADDRESS set (`./run demo --mail`), the provider's probe mailbox too, so the
dashboard's deliverability self-test has somewhere to send.

Safe to run again: what exists is kept; the demo logins get fresh passwords, printed once.
"""

import secrets
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from postdesk.billing.models import Plan
from postdesk.billing.selectors import billing_has_plan
from postdesk.billing.services import client_set_plan, plan_create
from postdesk.cli.base import OperatorCommand
from postdesk.dataplane import provisioner
from postdesk.mail.models import Domain, Mailbox
from postdesk.mail.passwords import generate_password
from postdesk.mail.services import (
    domain_add,
    forward_create,
    mailbox_create,
    mailbox_set_password,
    mailbox_usage_record,
)
from postdesk.tenancy.choices import Role
from postdesk.tenancy.models import Client, Membership, User
from postdesk.tenancy.services import client_create

CLIENT = "Demo Company"
DOMAIN = "example.com"
OWNER = "owner@example.com"
OPERATOR = "operator@example.com"
# The demo client's plan: monthly, every price per month (storage per GB on average).
PLAN = {
    "name": "Business",
    "currency": "CAD",
    "storage_gb_price": "0.50",
    "eas_price": "2.00",
    "mapi_price": "4.00",
    "eas_mapi_price": "5.00",
    "storage_limit_mb": 51200,
}
# The provider's own client, which holds the self-test's probe mailbox (docs/dns.md).
PROBE_CLIENT = "Postdesk probe"
# The plan starts before the usage seeded below, so this cycle's estimate includes it.
PLAN_STARTED_DAYS_AGO = 10

MAILBOXES = [
    # username, aliases, options, MB used 8 days ago and now (as the usage collector would
    # have measured them: the dashboard's storage and 7-day growth, without mail servers)
    ("marie.dupont", ["m.dupont", "marie"], {"eas_enabled": True, "quota_mb": 10240}, (1610, 1830)),
    (
        "jean.tremblay",
        [],
        {"eas_enabled": True, "mapi_enabled": True, "quota_mb": 5120},
        (3020, 4210),
    ),
    ("comptabilite", ["accounting"], {"mapi_enabled": True}, (790, 760)),
    (
        "sales",
        [],
        {"destinations": ["sales.team@example.net"], "keep_original_sender": True},
        (95, 95),
    ),
]
MB = 1024 * 1024
FORWARDS = [
    ("info", ["marie.dupont@example.com", "jean.tremblay@example.com"]),
    ("support", ["marie.dupont@example.com"]),
    ("orders", ["orders@example.net"]),
]


def _login_password() -> str:
    return secrets.token_urlsafe(12)


def _probe_mailbox(actor: Any) -> str:
    """The self-test's probe mailbox, as docs/dns.md has the provider create it, when a probe
    address is set; its address, or "" when there is none."""
    address = settings.POSTDESK_PROBE_ADDRESS
    if not address:
        return ""
    username, _, name = address.partition("@")
    client = Client.objects.filter(name=PROBE_CLIENT).first() or client_create(
        actor=actor, name=PROBE_CLIENT
    )
    domain = Domain.objects.filter(name=name).first() or domain_add(
        actor=actor, client=client, name=name
    )
    if not Mailbox.objects.filter(address__domain=domain, address__local_part=username).exists():
        # Nobody logs in: the password is never shown.
        password = generate_password(username=username, domain=name)
        mailbox_create(actor=actor, domain=domain, username=username, password=password)
    return address


class Command(OperatorCommand):
    help = "Load demo data (idempotent) and print the demo logins."

    def handle(self, *args: Any, **options: Any) -> None:
        actor = self.actor
        client = Client.objects.filter(name=CLIENT).first() or client_create(
            actor=actor, name=CLIENT
        )
        domain = Domain.objects.filter(name=DOMAIN).first() or domain_add(
            actor=actor, client=client, name=DOMAIN
        )
        if not billing_has_plan(actor=actor, domain=domain):
            plan = Plan.objects.filter(name=PLAN["name"]).first() or plan_create(
                actor=actor, **PLAN
            )
            client_set_plan(
                actor=actor,
                client=client,
                plan=plan,
                at=timezone.now() - timedelta(days=PLAN_STARTED_DAYS_AGO),
            )
        existing = set(
            Mailbox.objects.filter(address__domain=domain).values_list(
                "address__local_part", flat=True
            )
        )
        now = timezone.now()
        for username, aliases, extra, (before_mb, used_mb) in MAILBOXES:
            if username in existing:
                continue
            mailbox = mailbox_create(
                actor=actor,
                domain=domain,
                username=username,
                password=generate_password(username=username, domain=DOMAIN),
                aliases=aliases,
                **extra,
            )
            # With mail servers connected the collector measures the real use at once;
            # without, a history as it would have measured, so the pages have figures.
            if provisioner.connected():
                continue
            for moment, megabytes in ((now - timedelta(days=8), before_mb), (now, used_mb)):
                mailbox_usage_record(
                    actor=actor, mailbox=mailbox, used_bytes=megabytes * MB, at=moment
                )
        taken = set(domain.addresses.values_list("local_part", flat=True))
        for name, destinations in FORWARDS:
            if name not in taken:
                forward_create(actor=actor, domain=domain, name=name, destinations=destinations)

        # A mailbox login, to read mail over IMAP when the mail stack runs (./run demo --mail).
        demo_mailbox = Mailbox.objects.select_related("address__domain").get(
            address__domain=domain, address__local_part=MAILBOXES[0][0]
        )
        mailbox_password = generate_password(username=MAILBOXES[0][0], domain=DOMAIN)
        mailbox_set_password(actor=actor, mailbox=demo_mailbox, password=mailbox_password)

        probe = _probe_mailbox(actor)

        owner_password, operator_password = _login_password(), _login_password()
        with transaction.atomic():
            owner = User.objects.filter(email=OWNER).first() or User.objects.create_user(OWNER)
            owner.set_password(owner_password)
            owner.save()
            Membership.objects.get_or_create(
                user=owner, client=client, defaults={"role": Role.OWNER}
            )
            operator = User.objects.filter(email=OPERATOR).first() or User.objects.create_superuser(
                OPERATOR
            )
            operator.set_password(operator_password)
            operator.save()

        self.stdout.write(
            "\n".join(
                [
                    f"Demo data ready: client “{CLIENT}”, domain {DOMAIN}, plan {PLAN['name']}.",
                    f"  Client area login:  {OWNER} / {owner_password}",
                    f"  Operator (admin):   {OPERATOR} / {operator_password}",
                    f"  Mailbox (IMAP/SMTP): {demo_mailbox.address.email} / {mailbox_password}",
                    f"  Try (another terminal): ./run postdesk address list {DOMAIN}",
                    *(
                        [
                            f"  Self-test: “Send a test message” on the dashboard mails {probe}, "
                            "the provider's probe mailbox."
                        ]
                        if probe
                        else []
                    ),
                ]
            )
        )

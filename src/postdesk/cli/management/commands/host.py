import json
from dataclasses import asdict
from typing import Any

from postdesk.cli.base import OperatorCommand, add_subcommands
from postdesk.dataplane.choices import HostRole
from postdesk.mail.hosts import host_add, host_drain, host_list


class Command(OperatorCommand):
    help = "Manage the mail hosts and where mailboxes live (docs/dataplane.md)."

    def add_arguments(self, parser: Any) -> None:
        actions = add_subcommands(parser)
        add = actions.add_parser(
            "add",
            help="Register a mail host, active. The first backend becomes the home of every "
            "mailbox without one: register the host that runs the install today first.",
        )
        add.add_argument("name", metavar="NAME")
        add.add_argument("--address", required=True, metavar="IP", help="its IPv4 or IPv6 address")
        add.add_argument(
            "--role",
            required=True,
            metavar="|".join(HostRole.values) + "[,…]",
            help="what it does, comma-separated",
        )
        listing = actions.add_parser(
            "list",
            help="List the hosts, with how many mailboxes call each home and how many tasks "
            "wait for its worker (pending).",
        )
        listing.add_argument("--json", action="store_true", help="a JSON array of objects")
        drain = actions.add_parser(
            "drain",
            help="Give the host no new mailboxes; those there stay until they are moved.",
        )
        drain.add_argument("name", metavar="NAME")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        if action == "list":
            self._list(options["json"])
        elif action == "add":
            added = host_add(
                actor=self.actor,
                name=options["name"],
                address=options["address"],
                roles=options["role"].split(","),
            )
            host = added.host
            self.stdout.write(f"added host {host.name} ({host.address}, {','.join(host.roles)})")
            if added.mailboxes_adopted:
                self.stdout.write(
                    f"{added.mailboxes_adopted} mailbox(es) without a home now live on {host.name}"
                )
        else:
            host = host_drain(actor=self.actor, name=options["name"])
            self.stdout.write(f"host {host.name} is draining: it takes no new mailboxes")

    def _list(self, as_json: bool) -> None:
        # The JSON keys are HostRow's fields: name, address, roles, state, mailboxes, pending.
        hosts = [asdict(row) for row in host_list(actor=self.actor)]
        if as_json:
            self.stdout.write(json.dumps(hosts, indent=2))
            return
        for host in hosts:
            self.stdout.write(
                f"{host['name']}\t{host['address']}\t{','.join(host['roles'])}\t"
                f"{host['state']}\t{host['mailboxes']} mailbox(es)\t{host['pending']} pending"
            )

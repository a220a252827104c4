from typing import Any

from postdesk.cli.base import OperatorCommand, add_subcommands
from postdesk.mail.services import domain_add
from postdesk.tenancy.selectors import client_get_by_name


class Command(OperatorCommand):
    help = "Manage hosted domains."

    def add_arguments(self, parser: Any) -> None:
        actions = add_subcommands(parser)
        add = actions.add_parser("add", help="Host a domain for a client.")
        add.add_argument("domain", metavar="DOMAIN")
        add.add_argument("--client", required=True, metavar="NAME")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        if action == "add":
            client = client_get_by_name(actor=self.actor, name=options["client"])
            domain = domain_add(actor=self.actor, client=client, name=options["domain"])
            self.stdout.write(f"added domain {domain.name} for {client.name}")

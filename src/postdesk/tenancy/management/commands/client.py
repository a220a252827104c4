from typing import Any

from postdesk.cli import OperatorCommand, add_subcommands
from postdesk.tenancy.services import client_create


class Command(OperatorCommand):
    help = "Manage client accounts."

    def add_arguments(self, parser: Any) -> None:
        actions = add_subcommands(parser)
        create = actions.add_parser("create", help="Create a client account.")
        create.add_argument("name", metavar="NAME")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        if action == "create":
            client = client_create(actor=self.actor, name=options["name"])
            self.stdout.write(f"created client {client.name}")

from typing import Any

from postdesk.cli.base import OperatorCommand, add_subcommands
from postdesk.tenancy.choices import Role
from postdesk.tenancy.selectors import client_get_by_name
from postdesk.tenancy.services import user_create


class Command(OperatorCommand):
    help = "Manage the users who log in to the client area (password on stdin)."

    def add_arguments(self, parser: Any) -> None:
        actions = add_subcommands(parser)
        create = actions.add_parser(
            "create", help="Create a user as a member of a client; password as one line on stdin."
        )
        create.add_argument("email", metavar="EMAIL")
        create.add_argument("--client", required=True, metavar="NAME")
        create.add_argument("--role", required=True, choices=Role.values)

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        if action == "create":
            client = client_get_by_name(actor=self.actor, name=options["client"])
            password = self.read_password()
            user = user_create(
                actor=self.actor,
                email=options["email"],
                password=password,
                client=client,
                role=options["role"],
            )
            self.stdout.write(f"created user {user.email} ({options['role']} of {client.name})")

from typing import Any

from postdesk.cli.base import OperatorCommand, add_subcommands
from postdesk.mail.addresses import split_address
from postdesk.mail.selectors import domain_get, forward_get
from postdesk.mail.services import forward_create, forward_delete, forward_update


class Command(OperatorCommand):
    help = "Manage standalone forwards."

    def add_arguments(self, parser: Any) -> None:
        actions = add_subcommands(parser)
        create = actions.add_parser("create", help="Create a forward to one or more addresses.")
        create.add_argument("address", metavar="ADDRESS")
        create.add_argument("destinations", nargs="+", metavar="DEST")
        edit = actions.add_parser("edit", help="Replace a forward's destinations.")
        edit.add_argument("address", metavar="ADDRESS")
        edit.add_argument("destinations", nargs="+", metavar="DEST")
        delete = actions.add_parser("delete", help="Delete a forward.")
        delete.add_argument("address", metavar="ADDRESS")
        delete.add_argument("--yes", action="store_true", required=True, help="confirm")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        if action == "create":
            local_part, domain_name = split_address(options["address"])
            domain = domain_get(actor=self.actor, name=domain_name)
            forward = forward_create(
                actor=self.actor,
                domain=domain,
                name=local_part,
                destinations=options["destinations"],
            )
            self.stdout.write(f"created forward {forward.address.email}")
            return
        forward = forward_get(actor=self.actor, address=options["address"])
        if action == "edit":
            forward_update(actor=self.actor, forward=forward, destinations=options["destinations"])
            self.stdout.write(f"updated forward {forward.address.email}")
        else:
            forward_delete(actor=self.actor, forward=forward)
            self.stdout.write(f"deleted forward {forward.address.email}")

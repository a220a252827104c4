from typing import Any

from postdesk.billing.selectors import plan_get
from postdesk.billing.services import client_set_plan
from postdesk.cli.base import OperatorCommand, add_subcommands, aware_time
from postdesk.tenancy.selectors import client_get_by_name
from postdesk.tenancy.services import client_create


class Command(OperatorCommand):
    help = "Manage client accounts."

    def add_arguments(self, parser: Any) -> None:
        actions = add_subcommands(parser)
        create = actions.add_parser("create", help="Create a client account.")
        create.add_argument("name", metavar="NAME")
        set_plan = actions.add_parser(
            "set-plan", help="Put a client on a plan from TIME on (default now); history is kept."
        )
        set_plan.add_argument("client", metavar="CLIENT")
        set_plan.add_argument("plan", metavar="PLAN")
        set_plan.add_argument(
            "--at", type=aware_time, default=None, metavar="TIME", help="ISO 8601 with a zone"
        )

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        if action == "create":
            client = client_create(actor=self.actor, name=options["name"])
            self.stdout.write(f"created client {client.name}")
        elif action == "set-plan":
            client = client_get_by_name(actor=self.actor, name=options["client"])
            plan = plan_get(actor=self.actor, name=options["plan"])
            term = client_set_plan(actor=self.actor, client=client, plan=plan, at=options["at"])
            self.stdout.write(
                f"{client.name} is on plan {plan.name} from {term.starts_at.isoformat()}"
            )

import json
from argparse import ArgumentTypeError
from decimal import Decimal, InvalidOperation
from typing import Any

from postdesk.billing.choices import CYCLE_NAMES
from postdesk.billing.estimate import price_text
from postdesk.billing.selectors import plan_list
from postdesk.billing.services import plan_create
from postdesk.cli.base import OperatorCommand, add_subcommands

PRICES = ("storage_gb_price", "eas_price", "mapi_price", "eas_mapi_price")


def _price(text: str) -> Decimal:
    try:
        return Decimal(text.strip())
    except InvalidOperation:
        raise ArgumentTypeError("expected a decimal price, e.g. 4.50") from None


class Command(OperatorCommand):
    help = "Manage plans: prices per cycle and the billing cycle."

    def add_arguments(self, parser: Any) -> None:
        actions = add_subcommands(parser)
        create = actions.add_parser(
            "create", help="Create a plan. Every price is per billing cycle."
        )
        create.add_argument("name", metavar="NAME")
        cycle = create.add_mutually_exclusive_group()
        cycle.add_argument(
            "--cycle",
            choices=sorted(CYCLE_NAMES),
            default=None,
            help="the billing cycle (default monthly)",
        )
        cycle.add_argument(
            "--cycle-months", type=int, default=None, metavar="N", help="a cycle of N months"
        )
        create.add_argument("--currency", required=True, metavar="CODE", help="ISO 4217, e.g. CAD")
        for option, what in (
            ("--storage-gb", "per GB stored (1 GB = 1024³ bytes, averaged over the cycle)"),
            ("--eas", "per mailbox with ActiveSync"),
            ("--mapi", "per mailbox with MAPI/Exchange"),
            ("--eas-mapi", "per mailbox with both (replaces the two prices)"),
        ):
            create.add_argument(option, type=_price, required=True, metavar="PRICE", help=what)
        create.add_argument(
            "--storage-limit-mb",
            type=int,
            default=None,
            metavar="N",
            help="the plan's overall limit in MB, for mailboxes without their own (quota 0)",
        )
        listing = actions.add_parser(
            "list", help="List the plans, with how many clients each is the current plan of."
        )
        listing.add_argument("--json", action="store_true", help="a JSON array of objects")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        if action == "list":
            self._list(options["json"])
            return
        months = options["cycle_months"]
        if months is None:
            months = CYCLE_NAMES[options["cycle"] or "monthly"]
        plan = plan_create(
            actor=self.actor,
            name=options["name"],
            cycle_months=months,
            currency=options["currency"],
            storage_gb_price=options["storage_gb"],
            eas_price=options["eas"],
            mapi_price=options["mapi"],
            eas_mapi_price=options["eas_mapi"],
            storage_limit_mb=options["storage_limit_mb"],
        )
        self.stdout.write(f"created plan {plan.name}")

    def _list(self, as_json: bool) -> None:
        plans = [
            {
                "name": plan.name,
                "cycle_months": plan.cycle_months,
                "currency": plan.currency,
                **{f: str(price_text(getattr(plan, f), plan.currency)) for f in PRICES},
                "storage_limit_mb": plan.storage_limit_mb,
                "clients": plan.clients,
            }
            for plan in plan_list(actor=self.actor)
        ]
        if as_json:
            self.stdout.write(json.dumps(plans, indent=2))
            return
        for plan in plans:
            limit = plan["storage_limit_mb"]
            self.stdout.write(
                f"{plan['name']}\t{plan['cycle_months']} month(s)\t{plan['currency']}\t"
                f"storage/GB {plan['storage_gb_price']}, EAS {plan['eas_price']}, "
                f"MAPI {plan['mapi_price']}, EAS+MAPI {plan['eas_mapi_price']}\t"
                f"limit {f'{limit} MB' if limit else 'none'}\t{plan['clients']} client(s)"
            )

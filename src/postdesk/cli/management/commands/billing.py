import json
from typing import Any

from postdesk.billing.estimate import price_text
from postdesk.billing.selectors import billing_estimate
from postdesk.cli.base import OperatorCommand, add_subcommands, aware_time
from postdesk.mail.selectors import domain_get


class Command(OperatorCommand):
    help = "Billing estimates."

    def add_arguments(self, parser: Any) -> None:
        actions = add_subcommands(parser)
        estimate = actions.add_parser(
            "estimate", help="The estimate of a domain's billing cycle containing TIME (now)."
        )
        estimate.add_argument("domain", metavar="DOMAIN")
        estimate.add_argument(
            "--at", type=aware_time, default=None, metavar="TIME", help="ISO 8601 with a zone"
        )
        estimate.add_argument("--json", action="store_true")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        domain = domain_get(actor=self.actor, name=options["domain"])
        result = billing_estimate(actor=self.actor, domain=domain, at=options["at"])
        if options["json"]:
            self.stdout.write(json.dumps(result.as_dict(), indent=2))
            return
        currency = result.currency
        self.stdout.write(
            f"{domain.name}: {result.period_start.isoformat()} to "
            f"{result.period_end.isoformat()} ({currency}), as of {result.at.isoformat()}"
        )
        for line in result.lines:
            self.stdout.write(
                f"  {line.item:<9} {line.quantity:>12} x {price_text(line.unit_price, currency)}"
                f" = {line.amount} (accrued {line.accrued}, projected {line.projected})"
            )
        self.stdout.write(
            f"accrued {result.accrued} + projected {result.projected} = {result.total} {currency}"
        )
        saving = result.combined_saving
        # As on the client's page: shown whenever the plan's combined rate is a discount.
        if saving.each > 0:
            self.stdout.write(
                f"combined rate saves {saving.total} {currency} "
                f"({price_text(saving.each, currency)} each)"
            )

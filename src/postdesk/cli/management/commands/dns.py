import json
from typing import Any

from postdesk.cli.base import OperatorCommand, add_subcommands
from postdesk.dns.status import dns_check_domain, dns_recheck_all
from postdesk.mail.selectors import domain_get


class Command(OperatorCommand):
    help = "Check domains' DNS: SPF, DKIM, DMARC and MX."

    def add_arguments(self, parser: Any) -> None:
        actions = add_subcommands(parser)
        check = actions.add_parser("check", help="Check a domain's DNS now and store the result.")
        check.add_argument("domain", metavar="DOMAIN")
        check.add_argument("--json", action="store_true")
        recheck = actions.add_parser(
            "recheck-all", help="Re-check every domain (for cron); prints a summary."
        )
        recheck.add_argument(
            "--stale-after",
            type=int,
            default=0,
            metavar="MINUTES",
            help="only domains last checked longer ago than this",
        )
        recheck.add_argument("--concurrency", type=int, default=32, metavar="N")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        if action == "recheck-all":
            summary = dns_recheck_all(
                stale_after_seconds=options["stale_after"] * 60,
                concurrency=max(1, options["concurrency"]),
            )
            self.stdout.write(
                f"checked {summary.checked} domain(s): {summary.unknown} with a temporary "
                f"DNS failure (retried next run), {summary.failed} failed"
            )
            return
        domain = domain_get(actor=self.actor, name=options["domain"])
        _status, report = dns_check_domain(domain)
        if options["json"]:
            self.stdout.write(json.dumps(report.as_dict(), indent=2))
            return
        for name, part in report.as_dict().items():
            self.stdout.write(f"{name.upper()}: {part['state']}: {part['message']}")

import json
from typing import Any

from postdesk.cli.base import OperatorCommand, add_subcommands
from postdesk.dns.status import dns_check_domain, dns_recheck_all, sending_hosts_check
from postdesk.mail.selectors import domain_get


class Command(OperatorCommand):
    help = (
        "Check domains' DNS (SPF, DKIM, DMARC, MX, MTA-STS, TLS-RPT), and our sending "
        "servers' reverse DNS and blocklist listings."
    )

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
        hosts = actions.add_parser(
            "hosts",
            help="Check our sending IPs now: reverse DNS against the HELO name, and blocklists.",
        )
        hosts.add_argument("--json", action="store_true")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        if action == "hosts":
            self._hosts(json_output=options["json"])
            return
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

    def _hosts(self, *, json_output: bool) -> None:
        hosts = sending_hosts_check()
        if json_output:
            self.stdout.write(json.dumps([host.as_dict() for host in hosts], indent=2))
            return
        for host in hosts:
            self.stdout.write(f"{host.ip}: reverse DNS: {host.reverse_state}: {host.message}")
            for listing in host.listings:
                line = f"{host.ip}: {listing.zone}: {listing.state}"
                if listing.codes:
                    line += f" ({', '.join(listing.codes)})"
                if listing.reason:
                    line += f": {listing.reason}"
                self.stdout.write(line)

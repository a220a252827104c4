import json
from typing import Any

from postdesk.cli.base import OperatorCommand, add_subcommands
from postdesk.dns.probe import selftest_run
from postdesk.dns.selectors import deliverability_report
from postdesk.dns.services import deliverability_test_request
from postdesk.mail.selectors import domain_get


class Command(OperatorCommand):
    help = "Deliverability: how receiving servers judge mail from a domain."

    def add_arguments(self, parser: Any) -> None:
        actions = add_subcommands(parser)
        test = actions.add_parser(
            "test",
            help=(
                "Send a message from a mailbox to the probe address through the real "
                "submission and inbound paths, wait for it, and print what the receiver saw "
                "(SPF, DKIM, DMARC, TLS, time)."
            ),
        )
        test.add_argument("address", metavar="ADDRESS", help="the mailbox it leaves from")
        test.add_argument("--json", action="store_true")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        if action == "test":
            self._test(options["address"], as_json=options["json"])

    def _test(self, address: str, *, as_json: bool) -> None:
        domain = domain_get(actor=self.actor, name=address.rpartition("@")[2])
        test = deliverability_test_request(
            actor=self.actor, domain=domain, address=address, queue=False
        )
        selftest_run(test)
        report = deliverability_report(actor=self.actor, domain=domain)
        if as_json:
            self.stdout.write(json.dumps(report.as_dict(), indent=2))
            return
        self.stdout.write(f"{report.state}: {report.message}")
        if report.error:
            self.stdout.write(f"server's answer: {report.error}")
        for finding in report.findings:
            verdict = "ok" if finding.ok else "FAIL"
            self.stdout.write(f"{finding.check.upper()}: {verdict}: {finding.message}")
            if finding.fix:
                self.stdout.write(f"  fix: {finding.fix}")

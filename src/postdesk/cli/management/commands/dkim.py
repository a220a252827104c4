import json
from typing import Any

from django.utils.translation import gettext as _

from postdesk.cli.base import OperatorCommand, add_subcommands
from postdesk.dns.selectors import dkim_records
from postdesk.dns.services import (
    dkim_disable,
    dkim_enable,
    dkim_prepare_rotation,
    dkim_rotate,
)
from postdesk.errors import InvalidInput
from postdesk.mail.selectors import domain_get


class Command(OperatorCommand):
    help = "Manage a domain's DKIM signing key."

    def add_arguments(self, parser: Any) -> None:
        actions = add_subcommands(parser)
        enable = actions.add_parser("enable", help="Generate a key (or reuse a kept one) and sign.")
        enable.add_argument("domain", metavar="DOMAIN")
        record = actions.add_parser("record", help="The DNS record to publish.")
        record.add_argument("domain", metavar="DOMAIN")
        record.add_argument("--json", action="store_true", help='{"host", "value"}')
        disable = actions.add_parser("disable", help="Stop signing at once.")
        disable.add_argument("domain", metavar="DOMAIN")
        disable.add_argument("--yes", action="store_true", help="confirm")
        prepare = actions.add_parser(
            "prepare", help="Rotation, step 1: a new key to publish before switching."
        )
        prepare.add_argument("domain", metavar="DOMAIN")
        rotate = actions.add_parser(
            "rotate", help="Rotation, step 2: sign with the prepared key once it is published."
        )
        rotate.add_argument("domain", metavar="DOMAIN")
        rotate.add_argument(
            "--force", action="store_true", help="switch even if the record is not visible yet"
        )

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        domain = domain_get(actor=self.actor, name=options["domain"])
        if action == "enable":
            key = dkim_enable(actor=self.actor, domain=domain)
            self.stdout.write(f"DKIM signing enabled for {domain.name} (selector {key.selector})")
        elif action == "disable":
            dkim_disable(actor=self.actor, domain=domain, confirmed=options["yes"])
            self.stdout.write(f"DKIM signing disabled for {domain.name}")
        elif action == "prepare":
            key = dkim_prepare_rotation(actor=self.actor, domain=domain)
            self.stdout.write(f"prepared selector {key.selector}; publish its record, then rotate")
        elif action == "rotate":
            key = dkim_rotate(actor=self.actor, domain=domain, force=options["force"])
            self.stdout.write(f"now signing with selector {key.selector}")
        else:
            records = dkim_records(actor=self.actor, domain=domain)
            signing = [r for r in records if r.status == "signing"]
            if not signing:
                raise InvalidInput(
                    "dkim_disabled",
                    _("DKIM is not enabled for %(domain)s.") % {"domain": domain.name},
                    "domain",
                )
            if options["json"]:
                self.stdout.write(json.dumps({"host": signing[0].host, "value": signing[0].value}))
                return
            for r in records:
                self.stdout.write(f"{r.host}\tTXT\t{r.value}\t({r.status})")

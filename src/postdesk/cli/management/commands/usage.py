from typing import Any

from postdesk.cli.base import OperatorCommand, add_subcommands, aware_time
from postdesk.mail.selectors import mailbox_get
from postdesk.mail.services import mailbox_usage_record


class Command(OperatorCommand):
    help = "Record mailbox usage, as the usage collector does."

    def add_arguments(self, parser: Any) -> None:
        actions = add_subcommands(parser)
        record = actions.add_parser("record", help="Record a mailbox's disk use at a time.")
        record.add_argument("address", metavar="ADDRESS")
        record.add_argument("bytes", type=int, metavar="BYTES")
        record.add_argument(
            "--at", type=aware_time, default=None, metavar="TIME", help="ISO 8601 with a zone"
        )

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        mailbox = mailbox_get(actor=self.actor, address=options["address"])
        sample = mailbox_usage_record(
            actor=self.actor, mailbox=mailbox, used_bytes=options["bytes"], at=options["at"]
        )
        self.stdout.write(
            f"recorded {sample.bytes} bytes for {mailbox.address.email} at {sample.at.isoformat()}"
        )

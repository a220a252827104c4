import json
from argparse import BooleanOptionalAction
from typing import Any

from postdesk.cli.base import OperatorCommand, add_subcommands, aware_time
from postdesk.mail.addresses import split_address
from postdesk.mail.hosts import mailbox_move, mailbox_moves
from postdesk.mail.passwords import generate_password
from postdesk.mail.selectors import domain_get, mailbox_get
from postdesk.mail.services import (
    mailbox_create,
    mailbox_delete,
    mailbox_set_password,
    mailbox_update,
)


def _toggle(parser: Any, name: str, off: str, dest: str, help: str) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(name, dest=dest, action="store_true", default=None, help=help)
    group.add_argument(off, dest=dest, action="store_false", default=None)


class Command(OperatorCommand):
    help = "Manage mailboxes. Passwords are read as one line on stdin unless generated."

    def add_arguments(self, parser: Any) -> None:
        actions = add_subcommands(parser)

        create = actions.add_parser("create", help="Create a mailbox.")
        create.add_argument("address", metavar="ADDRESS")
        create.add_argument(
            "--generate-password", action="store_true", help="generate a password and print it once"
        )
        create.add_argument("--alias", action="append", default=[], metavar="NAME")
        create.add_argument(
            "--quota",
            type=int,
            default=0,
            metavar="MB",
            help="disk space limit in MB (1 MB = 1024² bytes); 0 = the plan's limit only",
        )
        create.add_argument("--eas", action="store_true", help="enable ActiveSync")
        create.add_argument("--mapi", action="store_true", help="enable MAPI/Exchange")
        create.add_argument("--forward", action="append", default=[], metavar="DEST")
        create.add_argument("--delete-after-forwarding", action="store_true")
        create.add_argument("--keep-original-sender", action="store_true")
        create.add_argument(
            "--at",
            type=aware_time,
            default=None,
            metavar="TIME",
            help="date the change (ISO 8601 with a zone), to replay history for billing",
        )

        edit = actions.add_parser("edit", help="Change a mailbox's settings.")
        edit.add_argument("address", metavar="ADDRESS")
        edit.add_argument("--quota", type=int, metavar="MB")
        edit.add_argument("--add-alias", action="append", default=[], metavar="NAME")
        edit.add_argument("--remove-alias", action="append", default=[], metavar="NAME")
        forwarding = edit.add_mutually_exclusive_group()
        forwarding.add_argument(
            "--forward",
            action="append",
            metavar="DEST",
            help="replaces the forwarding list (repeat for several)",
        )
        forwarding.add_argument(
            "--no-forward", action="store_true", help="clears the forwarding list"
        )
        _toggle(
            edit,
            "--delete-after-forwarding",
            "--keep-after-forwarding",
            "delete_after_forwarding",
            "remove messages once forwarded",
        )
        _toggle(
            edit,
            "--keep-original-sender",
            "--no-keep-original-sender",
            "keep_original_sender",
            "forwarded messages keep the original sender",
        )
        edit.add_argument(
            "--eas", action=BooleanOptionalAction, default=None, help="enable or disable ActiveSync"
        )
        edit.add_argument(
            "--mapi",
            action=BooleanOptionalAction,
            default=None,
            help="enable or disable MAPI/Exchange",
        )
        edit.add_argument(
            "--at",
            type=aware_time,
            default=None,
            metavar="TIME",
            help="date the change (ISO 8601 with a zone), to replay history for billing",
        )

        delete = actions.add_parser("delete", help="Delete a mailbox, its messages and aliases.")
        delete.add_argument("address", metavar="ADDRESS")
        delete.add_argument(
            "--yes",
            action="store_true",
            required=True,
            help="confirm: the messages are removed for good",
        )
        delete.add_argument(
            "--at",
            type=aware_time,
            default=None,
            metavar="TIME",
            help="date the deletion (ISO 8601 with a zone), to replay history for billing",
        )

        password = actions.add_parser("password", help="Set a mailbox's password.")
        password.add_argument("address", metavar="ADDRESS")
        password.add_argument("--generate-password", action="store_true")

        move = actions.add_parser(
            "move",
            help="Move a mailbox to another backend (docs/scale.md): copied while it works, "
            "then locked for a moment for a last copy; its old home's worker runs it.",
        )
        move.add_argument("address", metavar="ADDRESS")
        move.add_argument("--to", required=True, metavar="HOST", help="an active backend")
        moves = actions.add_parser(
            "moves", help="List the latest moves, newest first: under way, done or failed."
        )
        moves.add_argument("--json", action="store_true", help="a JSON array of objects")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        getattr(self, f"_{action}")(options)

    def _new_password(self, options: dict[str, Any], username: str, domain: str) -> str:
        if options["generate_password"]:
            return generate_password(username=username, domain=domain)
        return self.read_password()

    def _create(self, options: dict[str, Any]) -> None:
        local_part, domain_name = split_address(options["address"])
        domain = domain_get(actor=self.actor, name=domain_name)
        password = self._new_password(options, local_part, domain.name)
        mailbox = mailbox_create(
            actor=self.actor,
            domain=domain,
            username=local_part,
            password=password,
            aliases=options["alias"],
            quota_mb=options["quota"],
            destinations=options["forward"],
            delete_after_forwarding=options["delete_after_forwarding"],
            keep_original_sender=options["keep_original_sender"],
            eas_enabled=options["eas"],
            mapi_enabled=options["mapi"],
            at=options["at"],
        )
        self.stdout.write(f"created mailbox {mailbox.address.email}")
        if options["generate_password"]:
            self.stdout.write(f"password: {password}")

    def _edit(self, options: dict[str, Any]) -> None:
        mailbox = mailbox_get(actor=self.actor, address=options["address"])
        destinations = options["forward"]
        if options["no_forward"]:
            destinations = []
        mailbox_update(
            actor=self.actor,
            mailbox=mailbox,
            quota_mb=options["quota"],
            add_aliases=options["add_alias"],
            remove_aliases=options["remove_alias"],
            destinations=destinations,
            delete_after_forwarding=options["delete_after_forwarding"],
            keep_original_sender=options["keep_original_sender"],
            eas_enabled=options["eas"],
            mapi_enabled=options["mapi"],
            at=options["at"],
        )
        self.stdout.write(f"updated mailbox {mailbox.address.email}")

    def _delete(self, options: dict[str, Any]) -> None:
        mailbox = mailbox_get(actor=self.actor, address=options["address"])
        mailbox_delete(actor=self.actor, mailbox=mailbox, at=options["at"])
        self.stdout.write(f"deleted mailbox {mailbox.address.email}")

    def _password(self, options: dict[str, Any]) -> None:
        mailbox = mailbox_get(actor=self.actor, address=options["address"])
        address = mailbox.address
        password = self._new_password(options, address.local_part, address.domain.name)
        mailbox_set_password(actor=self.actor, mailbox=mailbox, password=password)
        self.stdout.write(f"password changed for {address.email}")
        if options["generate_password"]:
            self.stdout.write(f"password: {password}")

    def _move(self, options: dict[str, Any]) -> None:
        move = mailbox_move(actor=self.actor, address=options["address"], to=options["to"])
        self.stdout.write(
            f"move of {move.mailbox.address.email} from {move.source.name} to "
            f"{move.target.name} queued: {move.source.name}'s worker runs it "
            "(`mailbox moves`, `tasks pending`)"
        )

    def _moves(self, options: dict[str, Any]) -> None:
        rows = [
            {
                "mailbox": row.mailbox,
                "from": row.source,
                "to": row.target,
                "state": row.state,
                "created_at": row.created_at.isoformat(),
                "finished_at": row.finished_at.isoformat() if row.finished_at else None,
                "last_error": row.last_error,
            }
            for row in mailbox_moves(actor=self.actor)
        ]
        if options["json"]:
            self.stdout.write(json.dumps(rows, indent=2))
            return
        for row in rows:
            error = f"\t{row['last_error']}" if row["last_error"] else ""
            self.stdout.write(
                f"{row['mailbox']}\t{row['from']} -> {row['to']}\t{row['state']}\t"
                f"{row['created_at']}{error}"
            )

import json
from typing import Any

from postdesk.cli.base import OperatorCommand, add_subcommands
from postdesk.mail.choices import AddressListSort, AddressListType
from postdesk.mail.selectors import address_list, domain_get


def _size(used_bytes: int | None) -> str:
    if used_bytes is None:
        return "-"
    value = float(used_bytes)
    # Binary values under the guide's names (1 GB = 1024 MB), as quotas are set and storage billed.
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


class Command(OperatorCommand):
    help = "List a domain's mailboxes and forwards."

    def add_arguments(self, parser: Any) -> None:
        actions = add_subcommands(parser)
        listing = actions.add_parser("list", help="List every address of a domain.")
        listing.add_argument("domain", metavar="DOMAIN")
        listing.add_argument(
            "--search",
            default="",
            metavar="TEXT",
            help="part of an address, an alias or a destination",
        )
        listing.add_argument(
            "--type",
            choices=[AddressListType.MAILBOX.value, AddressListType.FORWARD.value],
            default=AddressListType.ALL,
        )
        listing.add_argument(
            "--sort",
            choices=["address", "storage", "growth"],
            default="address",
            help="storage: largest first; growth: the most bytes gained over 7 days first",
        )
        listing.add_argument("--json", action="store_true", help="a JSON array of objects")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        domain = domain_get(actor=self.actor, name=options["domain"])
        sort = AddressListSort(options["sort"])
        rows = []
        page_number = 1
        # The selector pages; the CLI lists everything, a page at a time.
        while True:
            page = address_list(
                actor=self.actor,
                domain=domain,
                search=options["search"],
                type=options["type"],
                sort=sort,
                page=page_number,
                per_page=1000,
            )
            rows.extend(page.rows)
            if not page.has_next:
                break
            page_number += 1
        if options["json"]:
            self.stdout.write(json.dumps([row.as_dict() for row in rows], indent=2))
            return
        for row in rows:
            details = []
            if row.aliases:
                details.append("aliases: " + ", ".join(row.aliases))
            if row.destinations:
                details.append("→ " + ", ".join(row.destinations))
            if row.type == "mailbox":
                details.append(_size(row.used_bytes))
                if row.growth_7d_bytes:
                    sign = "+" if row.growth_7d_bytes > 0 else "-"
                    details.append(f"{sign}{_size(abs(row.growth_7d_bytes))} in 7 days")
                details.extend(
                    p for p, on in (("EAS", row.eas_enabled), ("MAPI", row.mapi_enabled)) if on
                )
            self.stdout.write(f"{row.address}\t{row.type}\t" + "; ".join(details))

import json
from typing import Any

from postdesk.cli.base import OperatorCommand, add_subcommands
from postdesk.dataplane.replication import replicas


class Command(OperatorCommand):
    help = "Watch the panel's database and its replicas (docs/scale.md)."

    def add_arguments(self, parser: Any) -> None:
        actions = add_subcommands(parser)
        listing = actions.add_parser(
            "replicas",
            help="List the standbys streaming from this database (run against the primary) "
            "with whether commits wait for each and how far behind each replays.",
        )
        listing.add_argument("--json", action="store_true", help="a JSON array of objects")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        found = [replica.as_dict() for replica in replicas()]
        if options["json"]:
            self.stdout.write(json.dumps(found, indent=2))
            return
        if not found:
            self.stdout.write("no replica streams from this database")
        for replica in found:
            seconds = replica["lag_seconds"]
            behind = "unknown" if seconds is None else f"{seconds:.3f} s"
            self.stdout.write(
                f"{replica['name']}\t{replica['address'] or 'local'}\t{replica['state']}\t"
                f"{replica['sync_state']}\t"
                f"{behind} behind\t{replica['lag_bytes']} byte(s) behind"
            )

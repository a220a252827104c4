from typing import Any

from django.core.management.base import CommandError
from django.utils import timezone

from postdesk.api.models import TokenScope
from postdesk.api.selectors import token_list, token_owner_get
from postdesk.api.services import token_create, token_revoke
from postdesk.cli.base import EXIT_USAGE, OperatorCommand, add_subcommands


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%dT%H:%MZ") if value else "-"


class Command(OperatorCommand):
    help = "Manage API tokens. A new token is printed once, alone on stdout."

    def add_arguments(self, parser: Any) -> None:
        actions = add_subcommands(parser)
        create = actions.add_parser(
            "create",
            help="Create a personal token for EMAIL, or a provisioning token with --operator.",
        )
        create.add_argument("email", nargs="?", metavar="EMAIL")
        create.add_argument(
            "--operator", metavar="NAME", help="a provisioning token (for a billing system)"
        )
        create.add_argument(
            "--scope", choices=TokenScope.values, default=TokenScope.READ, help="default: read"
        )
        create.add_argument(
            "--expires", type=int, metavar="DAYS", help="valid for DAYS days; default: no expiry"
        )
        revoke = actions.add_parser("revoke", help="Refuse a token from now on.")
        revoke.add_argument("prefix", metavar="PREFIX")
        actions.add_parser("list", help="Every token: prefix, owner, scope, dates, state.")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        getattr(self, f"_{action}")(options)

    def _create(self, options: dict[str, Any]) -> None:
        if (options["email"] is None) == (options["operator"] is None):
            raise CommandError(
                "give either EMAIL or --operator NAME [usage]", returncode=EXIT_USAGE
            )
        if options["operator"] is not None:
            created = token_create(
                actor=self.actor,
                operator_name=options["operator"],
                scope=options["scope"],
                expires_days=options["expires"],
            )
        else:
            created = token_create(
                actor=self.actor,
                user=token_owner_get(actor=self.actor, email=options["email"]),
                scope=options["scope"],
                expires_days=options["expires"],
            )
        # Alone on stdout, so `TOKEN=$(postdesk token create …)` captures exactly the token.
        self.stdout.write(created.plaintext)

    def _revoke(self, options: dict[str, Any]) -> None:
        token = token_revoke(actor=self.actor, prefix=options["prefix"])
        self.stdout.write(f"revoked token {token.prefix} ({token.owner_label})")

    def _list(self, options: dict[str, Any]) -> None:
        now = timezone.now()
        for token in token_list(actor=self.actor):
            if token.revoked_at:
                state = "revoked"
            elif token.expires_at and token.expires_at <= now:
                state = "expired"
            else:
                state = "active"
            self.stdout.write(
                "\t".join(
                    [
                        token.prefix,
                        token.owner_label,
                        token.scope,
                        f"created {_when(token.created_at)}",
                        f"expires {_when(token.expires_at)}",
                        f"last used {_when(token.last_used_at)}",
                        state,
                    ]
                )
            )

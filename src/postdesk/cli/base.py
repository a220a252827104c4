"""What every `postdesk` operator command shares.

The contract with scripts: exit 0 on success; otherwise exit non-zero with exactly one line on
stderr, `error: MESSAGE [CODE]`. Passwords are read as one line on stdin (without echo on a
terminal), never from argv.
"""

from __future__ import annotations

import getpass
import os
import sys
from argparse import ArgumentTypeError
from datetime import datetime
from typing import Any

from django.core.management.base import (
    BaseCommand,
    CommandError,
    CommandParser,
    handle_default_options,
)
from django.db import connections

from postdesk.errors import PostdeskError
from postdesk.tenancy.access import Actor, Source

EXIT_FAILURE = 1
EXIT_USAGE = 2


class OneLineParser(CommandParser):
    """argparse prints the usage before an error; scripts want the error alone."""

    def error(self, message: str) -> None:  # type: ignore[override]
        prefix = "unrecognized arguments: "
        if message.startswith(prefix):
            # Name the unknown options, never their values: `--password SECRET` must not echo.
            options = [w for w in message[len(prefix) :].split() if w.startswith("-")]
            message = prefix + (" ".join(options) or "…")
        if self.called_from_command_line:
            self.exit(EXIT_USAGE, f"error: {message} [usage]\n")
        raise CommandError(f"Error: {message}")


class OperatorCommand(BaseCommand):
    """A command run by the provider's operator, who acts for every client."""

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.__class__ = OneLineParser
        return parser

    def run_from_argv(self, argv: list[str]) -> None:
        self._called_from_command_line = True
        parser = self.create_parser(argv[0], argv[1])
        options = parser.parse_args(argv[2:])
        cmd_options = vars(options)
        args = cmd_options.pop("args", ())
        handle_default_options(options)
        try:
            self.execute(*args, **cmd_options)
        except PostdeskError as error:
            if options.traceback:
                raise
            text = " ".join(str(e.message) for e in error.errors)
            sys.stderr.write(f"error: {_one_line(text)} [{error.code}]\n")
            sys.exit(EXIT_FAILURE)
        except CommandError as error:
            if options.traceback:
                raise
            sys.stderr.write(f"error: {_one_line(str(error))}\n")
            sys.exit(error.returncode or EXIT_FAILURE)
        finally:
            connections.close_all()

    def execute(self, *args: Any, **options: Any) -> Any:
        # Output goes to scripts: no colour codes, whatever the terminal.
        options["no_color"] = True
        return super().execute(*args, **options)

    @property
    def actor(self) -> Actor:
        name = os.environ.get("SUDO_USER") or getpass.getuser()
        return Actor.operator(name, source=Source.CLI)

    def read_password(self) -> str:
        """One line from stdin; on a terminal, asked twice without echo."""
        if sys.stdin is None:
            raise CommandError("no password on stdin")
        if sys.stdin.isatty():
            first = getpass.getpass("Password: ")
            second = getpass.getpass("Password (again): ")
            if first != second:
                raise CommandError("the two passwords do not match")
            return first
        line = sys.stdin.readline()
        password = line.removesuffix("\n").removesuffix("\r")
        if not password:
            raise CommandError("expected the password as one line on stdin")
        return password


def _one_line(text: str) -> str:
    return " ".join(text.split())


def add_subcommands(parser: CommandParser, dest: str = "action") -> Any:
    return parser.add_subparsers(
        dest=dest, required=True, metavar="ACTION", parser_class=OneLineParser
    )


def aware_time(text: str) -> datetime:
    """argparse type for `--at TIME`: ISO 8601 with a zone (`Z` or `±HH:MM`), else a usage error.

    A time without a zone is refused: the instant it means would depend on the machine.
    """
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ArgumentTypeError(
            "expected an ISO 8601 time with a zone, e.g. 2024-05-01T00:00:00Z"
        ) from None
    if value.tzinfo is None or value.utcoffset() is None:
        raise ArgumentTypeError("the time needs a zone (Z or ±HH:MM), e.g. 2024-05-01T00:00:00Z")
    return value

import shutil
import sys
from pathlib import Path
from typing import Any

from django.utils.translation import gettext as _

from postdesk.cli.base import OperatorCommand, add_subcommands
from postdesk.dataplane import stack, tls
from postdesk.dataplane.choices import HostRole
from postdesk.dataplane.provisioner import ProvisionerUnavailable
from postdesk.dataplane.queues import worker_queues
from postdesk.dataplane.render import RenderError, StackConfig, render_stack
from postdesk.dataplane.routing import UnknownHost, fleet_host
from postdesk.dataplane.system import PeriodicJob, render_system, system_config
from postdesk.errors import InvalidInput, NotFound
from postdesk.jobs.services import jobs_all
from postdesk.mail.hosts import host_list
from postdesk.tenancy.access import Actor
from postdesk.workflows.usage import collect_usage


def _ports(parser: Any) -> None:
    parser.add_argument("--smtp-port", type=int, default=2525)
    parser.add_argument("--submission-port", type=int, default=2587)
    parser.add_argument(
        "--submissions-port", type=int, default=2465, help="submission over implicit TLS"
    )
    parser.add_argument("--imap-port", type=int, default=2143)
    parser.add_argument("--imaps-port", type=int, default=2993, help="IMAP over implicit TLS")
    parser.add_argument("--pop3-port", type=int, default=2110, help="POP3 with STARTTLS")
    parser.add_argument("--pop3s-port", type=int, default=2995, help="POP3 over implicit TLS")
    parser.add_argument("--gate-port", type=int, default=8443)
    parser.add_argument(
        "--tls-cert",
        metavar="FILE",
        help="PEM certificate, its chain after it (default: a self-signed one in DIR/tls)",
    )
    parser.add_argument("--tls-key", metavar="FILE", help="PEM private key, unencrypted")
    parser.add_argument(
        "--relay", metavar="HOST:PORT", help="where mail to other domains goes (never direct)"
    )
    parser.add_argument("--hostname", default="mail.postdesk.test")
    parser.add_argument(
        "--panel-url",
        default="http://127.0.0.1:8000",
        help="where nginx reaches Postdesk for the EAS/MAPI gate",
    )
    parser.add_argument(
        "--role",
        default=",".join(HostRole.values),
        metavar="ROLE[,ROLE…]",
        help="what this host does in a fleet: backend, mx, proxy (default: all three, the "
        "install's single host); other than all three needs --host (docs/scale.md)",
    )
    parser.add_argument(
        "--host",
        metavar="NAME",
        help="the registered mail host (`host add`) this stack is: its address, and which "
        "mailboxes are its own; the rest are forwarded to their home. With render --system, "
        "its worker runs the host's own task queue, host-NAME (docs/dataplane.md)",
    )
    parser.add_argument(
        "--lmtp-port",
        type=int,
        help="LMTP, the same on every host of a fleet (default: a free loopback port)",
    )
    parser.add_argument(
        "--doveadm-port",
        type=int,
        help="Dovecot's doveadm HTTP API, the same on every host of a fleet: the panel's gate "
        "reaches a mailbox's home there (default: a free loopback port)",
    )
    parser.add_argument(
        "--dsync-port",
        type=int,
        help="a backend's doveadm server, where the other backends copy a mailbox moved to it "
        "(dsync), the same on every host of a fleet (default: a free port)",
    )


def _relay(options: dict[str, Any]) -> str | None:
    relay = options.get("relay")
    if relay and (":" not in relay or not relay.rsplit(":", 1)[1].isdigit()):
        raise InvalidInput("relay_invalid", _("Give the relay as HOST:PORT."), "relay")
    return relay


def _fleet(options: dict[str, Any]) -> dict[str, Any]:
    """The host's roles and, with --host, the registered host it is."""
    roles = frozenset(role.strip().lower() for role in options["role"].split(",")) - {""}
    try:
        host = fleet_host(options["host"]) if options.get("host") else None
    except UnknownHost as error:
        raise InvalidInput("host_not_found", str(error), "host") from None
    return {"roles": roles, "host": host}


def _certificate_files(options: dict[str, Any]) -> dict[str, Path | None]:
    return {
        name: Path(options[name]) if options.get(name) else None for name in ("tls_cert", "tls_key")
    }


def _config(directory: str, options: dict[str, Any]) -> StackConfig:
    return StackConfig(
        dir=Path(directory).resolve(),
        smtp_port=options["smtp_port"],
        submission_port=options["submission_port"],
        submissions_port=options["submissions_port"],
        imap_port=options["imap_port"],
        imaps_port=options["imaps_port"],
        pop3_port=options["pop3_port"],
        pop3s_port=options["pop3s_port"],
        gate_port=options["gate_port"],
        **_certificate_files(options),
        relay=_relay(options),
        hostname=options["hostname"],
        panel_url=options["panel_url"].rstrip("/"),
        **_fleet(options),
        # The fleet's internal ports: a free one each unless given.
        **{
            port: options[port]
            for port in ("lmtp_port", "dsync_port", "doveadm_port")
            if options.get(port)
        },
    )


def _postdesk_executable() -> Path:
    """The `postdesk` of this install, for the units to run."""
    beside = Path(sys.executable).with_name("postdesk")
    found = beside if beside.exists() else shutil.which("postdesk")
    if not found:
        raise InvalidInput(
            "dataplane_failed", _("Cannot find the postdesk executable of this install.")
        )
    return Path(found).absolute()


def _render_system(options: dict[str, Any]) -> list[Path]:
    config = system_config(
        Path(options["out"]).resolve(),
        hostname=options["hostname"],
        **_certificate_files(options),
        relay=_relay(options),
        panel_url=options["panel_url"].rstrip("/"),
        vmail=Path(options["vmail"]),
        **_fleet(options),
    )
    # The jobs' registry is read here and handed down as plain data: the data plane does not
    # depend on the jobs app (import-linter).
    jobs = [
        PeriodicJob(job.name, int(job.every.total_seconds()), job.description) for job in jobs_all()
    ]
    return render_system(
        config,
        executable=_postdesk_executable(),
        jobs=jobs,
        workers=options["workers"],
        worker_queues=worker_queues(options["host"], default=options["default_queue"]),
    )


def _require_host(actor: Actor, name: str) -> None:
    """A worker for a queue no task goes to would wait forever: the host must be registered."""
    if name not in {row.name for row in host_list(actor=actor)}:
        raise NotFound(
            _("No mail host is named %(name)s: add it first (postdesk host add).") % {"name": name},
            "host",
        )


class Command(OperatorCommand):
    help = "Render the mail stack's configuration, or start and stop it on 127.0.0.1."

    def add_arguments(self, parser: Any) -> None:
        actions = add_subcommands(parser)
        render = actions.add_parser("render", help="Write the configuration files.")
        render.add_argument("--out", required=True, metavar="DIR")
        _ports(render)
        render.add_argument(
            "--system",
            action="store_true",
            help="for this host's own daemons on the standard ports, with systemd units: "
            "DIR mirrors the filesystem, each file names its final path (docs/deploy.md); "
            "the --*-port options are not used",
        )
        render.add_argument(
            "--vmail",
            default="/var/vmail",
            metavar="DIR",
            help="with --system: where mail is kept (default /var/vmail)",
        )
        render.add_argument(
            "--default-queue",
            action="store_true",
            help="with --host: its worker also runs the panel's default queue (the host the "
            "panel runs on)",
        )
        render.add_argument(
            "--workers",
            type=int,
            default=4,
            metavar="N",
            help="with --system: the panel's gunicorn workers (default 4)",
        )
        start = actions.add_parser("up", help="Start Postfix and Dovecot, wired to this database.")
        start.add_argument("--dir", required=True, metavar="DIR")
        _ports(start)
        stop = actions.add_parser("down", help="Stop what `up` started in DIR.")
        stop.add_argument("--dir", required=True, metavar="DIR")
        reload = actions.add_parser(
            "reload",
            help="Have the daemons in DIR read their configuration and certificate again "
            "(after a renewal), refusing no connection.",
        )
        reload.add_argument("--dir", required=True, metavar="DIR")
        collect = actions.add_parser(
            "collect-usage",
            help="Measure every mailbox's disk use through Dovecot into usage samples (cron).",
        )
        collect.add_argument(
            "--host",
            metavar="NAME",
            help="on a mail host of several: measure the mailboxes whose home it is "
            "(default: those without a home, every mailbox of a single host)",
        )

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        try:
            if action == "render":
                if options["system"]:
                    if options["host"]:
                        _require_host(self.actor, options["host"])
                    written = _render_system(options)
                else:
                    written = render_stack(_config(options["out"], options))
                for path in written:
                    self.stdout.write(str(path))
            elif action == "up":
                state = stack.up(_config(options["dir"], options))
                for name, port in state["ports"].items():
                    self.stdout.write(f"{name}\t127.0.0.1:{port}")
            elif action == "collect-usage":
                try:
                    summary = collect_usage(home=options["host"])
                except ProvisionerUnavailable as error:
                    raise InvalidInput("dataplane_unavailable", str(error)) from None
                self.stdout.write(f"measured {summary.measured} mailbox(es)")
                for address, message in summary.refused:
                    self.stderr.write(f"not recorded: {address}: {message}")
                if summary.unreported:
                    self.stderr.write(
                        f"not reported by Dovecot: {summary.unreported} mailbox(es), "
                        "their usage and growth kept as last measured"
                    )
            elif action == "reload":
                stack.reload(Path(options["dir"]).resolve())
                self.stdout.write(f"reloaded the mail stack in {options['dir']}")
            else:
                stack.down(Path(options["dir"]).resolve())
                self.stdout.write(f"stopped the mail stack in {options['dir']}")
        except (stack.StackError, tls.CertificateError, RenderError) as error:
            raise InvalidInput("dataplane_failed", str(error)) from None

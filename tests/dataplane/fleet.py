"""A fleet of mail hosts on one machine (#19 item 6, docs/scale.md): each host in a network
namespace of its own, with its own address on a bridge, running the stack `postdesk dataplane
up --role … --host …` starts on a real host, all reading the panel's database (a SQLite file
on the shared filesystem).

Everything made here is named after this process (namespaces, bridge, veth pairs) and removed
by name on the way out, whatever happened; the daemons of each host are stopped with
`dataplane down` first.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

POSTDESK = Path(sys.executable).with_name("postdesk")
PREFIX = 24
# Every host of a fleet listens on the same ports (routing.py): the MX reaches any home's
# LMTP, the proxy any home's IMAP and POP3, the panel any home's doveadm, at its address alone.
PORTS = {
    "smtp": 2525,
    "submission": 2587,
    "submissions": 2465,
    "imap": 2143,
    "imaps": 2993,
    "pop3": 2110,
    "pop3s": 2995,
    "gate": 8443,
    "lmtp": 2424,
    # A backend's doveadm server, where another backend's dsync copies a mailbox moved to it.
    "dsync": 2412,
    # Its doveadm HTTP API, where the panel's gate reaches a mailbox's home.
    "doveadm": 2428,
}


def _ip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=False)


def _free_network() -> str:
    """A 10.77.N.0/24 no address of the machine is in: two fleets at once (a CI run beside a
    developer's) on one subnet would route each other's clients to the wrong hosts."""
    taken = _ip("-4", "-o", "addr", "show").stdout
    start = os.getpid() % 250
    for offset in range(250):
        network = f"10.77.{(start + offset) % 250}"
        if f" {network}." not in taken:
            return network
    raise RuntimeError("no free 10.77.N.0/24 for a fleet")


def _must(*args: str) -> None:
    done = _ip(*args)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


@dataclass
class FleetHost:
    name: str
    address: str
    roles: str
    namespace: str
    dir: Path
    running: bool = False

    @property
    def vmail(self) -> Path:
        return self.dir / "vmail"

    @property
    def postfix(self) -> Path:
        return self.dir / "postfix"


@dataclass
class Fleet:
    """Hosts in namespaces on one bridge; `up`/`down` a host's stack inside its namespace."""

    env: dict[str, str]
    tls_cert: Path
    tls_key: Path
    hosts: dict[str, FleetHost] = field(default_factory=dict)
    tag: str = field(default_factory=lambda: f"{os.getpid() % 100000}")
    network: str = field(default_factory=_free_network)
    root: Path = field(
        default_factory=lambda: Path(tempfile.mkdtemp(prefix="postdesk-fleet-", dir="/var/lib"))
    )

    @property
    def gateway(self) -> str:
        """The machine's own side of the bridge: where the tests' clients connect from."""
        return f"{self.network}.254"

    @property
    def bridge(self) -> str:
        return f"pdbr{self.tag}"

    def _veth(self, index: int) -> str:
        return f"pdv{self.tag}x{index}"  # at most 15 characters (IFNAMSIZ)

    def network_up(self, hosts: list[tuple[str, int, str]]) -> None:
        """A bridge with the machine on the gateway address, and per host (name, last octet,
        roles) a namespace joined to it by a veth pair."""
        _must("link", "add", self.bridge, "type", "bridge")
        _must("addr", "add", f"{self.gateway}/{PREFIX}", "dev", self.bridge)
        _must("link", "set", self.bridge, "up")
        for index, (name, octet, roles) in enumerate(hosts):
            host = FleetHost(
                name=name,
                address=f"{self.network}.{octet}",
                roles=roles,
                namespace=f"pdfleet-{self.tag}-{name}",
                dir=self.root / name,
            )
            self.hosts[name] = host
            outside, inside = self._veth(index), f"{self._veth(index)}i"
            _must("netns", "add", host.namespace)
            _must("link", "add", outside, "type", "veth", "peer", "name", inside)
            _must("link", "set", outside, "master", self.bridge)
            _must("link", "set", outside, "up")
            _must("link", "set", inside, "netns", host.namespace)
            self.exec_in(host, "ip", "link", "set", "lo", "up")
            self.exec_in(host, "ip", "addr", "add", f"{host.address}/{PREFIX}", "dev", inside)
            self.exec_in(host, "ip", "link", "set", inside, "up")

    def exec_in(self, host: FleetHost, *command: str, timeout: float = 120) -> str:
        done = subprocess.run(
            ["ip", "netns", "exec", host.namespace, *command],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} in {host.name}: {done.stderr or done.stdout}")
        return done.stdout

    def up(self, name: str, tls: tuple[Path, Path] | None = None) -> None:
        """Start the host's stack in its namespace, as an operator starts one on a host; with
        `tls` (certificate, key), presenting that instead of the fleet's."""
        host = self.hosts[name]
        tls_cert, tls_key = tls or (self.tls_cert, self.tls_key)
        ports = [f"--{service}-port={port}" for service, port in PORTS.items()]
        self.exec_in(
            host,
            str(POSTDESK),
            "dataplane",
            "up",
            "--dir",
            str(host.dir),
            "--role",
            host.roles,
            "--host",
            host.name,
            *ports,
            f"--tls-cert={tls_cert}",
            f"--tls-key={tls_key}",
        )
        host.running = True

    def worker(self, name: str, timeout: float = 120) -> str:
        """Run the host's task worker once (`db_worker --batch`) in its namespace, as its
        systemd unit would, with the settings its stack gives it (its own Dovecot and disk)."""
        host = self.hosts[name]
        stack = json.loads((host.dir / "stack.json").read_text())
        env = {
            "POSTDESK_DOVEADM_URL": stack["doveadm_url"],
            "POSTDESK_DOVEADM_API_KEY": stack["doveadm_api_key"],
            "POSTDESK_VMAIL_DIR": stack["vmail"],
            "POSTDESK_POSTFIX_CONFIG_DIR": stack["postfix_config"],
        }
        command = ["env", *(f"{key}={value}" for key, value in env.items()), str(POSTDESK)]
        return self.exec_in(
            host,
            *command,
            "db_worker",
            "--queue-name",
            f"host-{name}",
            "--batch",
            "--no-startup-delay",
            timeout=timeout,
        )

    def down(self, name: str) -> None:
        host = self.hosts[name]
        if host.running:
            self.exec_in(host, str(POSTDESK), "dataplane", "down", "--dir", str(host.dir))
            host.running = False

    def remove(self) -> list[str]:
        """Stop every stack and remove every namespace, link and directory made here; return
        what could not be undone (nothing, normally)."""
        left = []
        for name in list(self.hosts):
            try:
                self.down(name)
            except (RuntimeError, subprocess.TimeoutExpired) as error:
                left.append(str(error))
        for index, host in enumerate(self.hosts.values()):
            _ip("link", "del", self._veth(index))  # its peer goes with it
            done = _ip("netns", "del", host.namespace)
            if done.returncode != 0 and "No such file" not in done.stderr:
                left.append(f"netns {host.namespace}: {done.stderr.strip()}")
        done = _ip("link", "del", self.bridge)
        if done.returncode != 0 and "Cannot find" not in done.stderr:
            left.append(f"bridge {self.bridge}: {done.stderr.strip()}")
        shutil.rmtree(self.root, ignore_errors=True)
        return left

"""A real authoritative DNS server on 127.0.0.1 for the tests, with a zone they change at will.

Built on dnslib's server framework: one UDP and one TCP listener on the same random free port,
each in a daemon thread, answering from an in-memory zone. Tests shape the answers:

    server.set_txt("example.com", "v=spf1 -all", ("v=DKIM1; k=rsa; ", "p=MIIB..."))
    server.set_mx("example.com", [(10, "mx1.example.net")])
    server.set_a("mx1.example.net", "192.0.2.1"); server.set_aaaa("mx1.example.net", "2001:db8::1")
    server.set_ptr("1.2.0.192.in-addr.arpa", "mx1.example.net")
    server.set_cname("www.example.com", "example.com")
    server.fail("broken.example")   # SERVFAIL
    server.hang("slow.example")     # no reply at all: the client times out
    server.remove("example.com")    # NXDOMAIN again
    server.clear()

A CNAME is answered for every type, followed by the target's records when the zone holds
them, as an authoritative server does for a target in its own zone.

Like a real server it answers NXDOMAIN for a name it does not hold, NOERROR with an empty answer
for a name it holds without records of the asked type, splits TXT strings longer than 255 bytes
into several character-strings, and truncates (TC bit) a UDP reply larger than the client can
take (512 bytes, or its EDNS payload size) so that the client retries over TCP.
"""

from __future__ import annotations

import socketserver
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from dnslib import (
    AAAA,
    CLASS,
    CNAME,
    MX,
    PTR,
    QTYPE,
    RCODE,
    RR,
    TXT,
    A,
    DNSError,
    DNSLabel,
    DNSRecord,
)
from dnslib.server import BaseResolver, DNSHandler, DNSLogger, DNSServer

# A TXT record as the tests give it: one string, or the strings of one record split by hand.
TxtRecord = str | bytes | Sequence[str | bytes]

_MAX_STRING = 255  # RFC 1035 §3.3: a character-string is one length byte and its data.
_UDP_LIMIT = 512  # RFC 1035 §4.2.1: without EDNS, a UDP message is at most 512 bytes.
_TTL = 60
_POLL_INTERVAL = 0.05  # How often the serving loops look for stop(): keeps stop() fast.


def _key(name: str | DNSLabel) -> tuple[bytes, ...]:
    # DNS names compare case-insensitively, and "example.com" and "example.com." are the same
    # name; dnslib's labels drop the final dot, so lower-cased labels make the key.
    labels = name.label if isinstance(name, DNSLabel) else DNSLabel(name.strip()).label
    return tuple(label.lower() for label in labels)


def _character_strings(record: TxtRecord) -> list[bytes]:
    """One TXT record as the character-strings sent on the wire, none over 255 bytes."""
    parts = [record] if isinstance(record, (str, bytes)) else list(record)
    strings: list[bytes] = []
    for part in parts:
        data = part.encode() if isinstance(part, str) else bytes(part)
        # Split on bytes, as a zone compiler does: a UTF-8 character may straddle two strings,
        # which the client must cope with by joining before decoding.
        chunks = [data[i : i + _MAX_STRING] for i in range(0, len(data), _MAX_STRING)]
        strings.extend(chunks or [b""])
    return strings


@dataclass
class _Node:
    txt: list[list[bytes]] = field(default_factory=list)
    mx: list[tuple[int, str]] = field(default_factory=list)
    a: list[str] = field(default_factory=list)
    aaaa: list[str] = field(default_factory=list)
    ptr: list[str] = field(default_factory=list)
    cname: str | None = None
    # "answer", "fail" (SERVFAIL) or "hang" (no reply).
    mode: str = "answer"


class _NoReply(DNSError):
    """Raised by the handler to send nothing; dnslib's handler swallows DNSError."""


class _ZoneResolver(BaseResolver):
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.nodes: dict[tuple[bytes, ...], _Node] = {}
        self.queries = 0

    def resolve(self, request: DNSRecord, handler: Any) -> DNSRecord | None:
        question = request.q
        with self.lock:
            self.queries += 1
            node = self.nodes.get(_key(question.qname))
            # Copy under the lock: a test may change the zone while a reply is being built.
            node = _copy(node)
            target = _copy(self.nodes.get(_key(node.cname))) if node and node.cname else None

        reply = request.reply()
        mode = node.mode if node else "answer"
        if mode == "hang":
            return None
        if mode == "fail":
            reply.header.rcode = RCODE.SERVFAIL
            return reply
        if node is None:
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        if question.qclass != CLASS.IN:
            return reply
        owner = question.qname
        if node.cname is not None and question.qtype != QTYPE.CNAME:
            reply.add_answer(RR(owner, QTYPE.CNAME, rdata=CNAME(node.cname), ttl=_TTL))
            if target is None or target.mode != "answer":
                return reply
            owner, node = DNSLabel(node.cname), target
        for rtype, rdata in _records(node, question.qtype):
            reply.add_answer(RR(owner, rtype, rdata=rdata, ttl=_TTL))
        return reply


def _copy(node: _Node | None) -> _Node | None:
    if node is None:
        return None
    return _Node(
        list(node.txt),
        list(node.mx),
        list(node.a),
        list(node.aaaa),
        list(node.ptr),
        node.cname,
        node.mode,
    )


def _records(node: _Node, qtype: int) -> list[tuple[int, Any]]:
    if qtype == QTYPE.TXT:
        return [(QTYPE.TXT, TXT(strings)) for strings in node.txt]
    if qtype == QTYPE.MX:
        return [(QTYPE.MX, MX(host, preference)) for preference, host in node.mx]
    if qtype == QTYPE.A:
        return [(QTYPE.A, A(address)) for address in node.a]
    if qtype == QTYPE.AAAA:
        return [(QTYPE.AAAA, AAAA(address)) for address in node.aaaa]
    if qtype == QTYPE.PTR:
        return [(QTYPE.PTR, PTR(name)) for name in node.ptr]
    if qtype == QTYPE.CNAME and node.cname is not None:
        return [(QTYPE.CNAME, CNAME(node.cname))]
    return []


class _Handler(DNSHandler):
    def get_reply(self, data: bytes) -> bytes:
        request = DNSRecord.parse(data)
        reply = self.server.resolver.resolve(request, self)
        if reply is None:
            raise _NoReply("hang")
        wire = reply.pack()
        if self.protocol == "udp" and len(wire) > _udp_limit(request):
            # dnslib's own truncate() also drops the question, which strict clients reject as
            # an unrelated message; keep it, as real servers do, with no records and TC set.
            truncated = request.reply()
            truncated.header.rcode = reply.header.rcode
            truncated.header.tc = 1
            wire = truncated.pack()
        return wire


def _udp_limit(request: DNSRecord) -> int:
    # An EDNS OPT record's class field is the client's UDP payload size (RFC 6891 §6.2.3).
    for rr in request.ar:
        if rr.rtype == QTYPE.OPT:
            return max(_UDP_LIMIT, rr.rclass)
    return _UDP_LIMIT


class _UDPServer(socketserver.ThreadingMixIn, socketserver.UDPServer):
    daemon_threads = True
    # No SO_REUSEADDR: on Linux it would let two UDP sockets share a port, so two test runs
    # could steal each other's queries.
    allow_reuse_address = False


class _TCPServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    # For TCP it only allows binding over TIME_WAIT; two listeners still cannot share a port.
    allow_reuse_address = True
    request_queue_size = 128


class DnsTestServer:
    """An authoritative DNS server on 127.0.0.1:`port` (UDP and TCP) answering from a zone the
    test controls. Thread-safe: the zone may be changed while queries are answered."""

    address = "127.0.0.1"

    def __init__(self) -> None:
        self._stopped = False
        self._resolver = _ZoneResolver()
        # No log lines: dnslib prints every request and reply by default.
        logger = DNSLogger(log="-request,-reply,-truncated,-error", logf=lambda _msg: None)
        self._servers = self._bind(logger)
        self.port: int = self._servers[0].server.server_address[1]
        self._threads = [
            threading.Thread(
                target=s.server.serve_forever,
                kwargs={"poll_interval": _POLL_INTERVAL},
                name=f"test-dns-{'tcp' if i else 'udp'}-{self.port}",
                daemon=True,
            )
            for i, s in enumerate(self._servers)
        ]
        for thread in self._threads:
            thread.start()

    def _bind(self, logger: DNSLogger) -> list[DNSServer]:
        # Let the kernel choose a free UDP port, then take the same port for TCP; another
        # process may hold that TCP port, so try again with a new one a few times.
        last_error: OSError | None = None
        for _attempt in range(20):
            udp = DNSServer(
                self._resolver, self.address, 0, logger=logger, handler=_Handler, server=_UDPServer
            )
            port = udp.server.server_address[1]
            try:
                tcp = DNSServer(
                    self._resolver,
                    self.address,
                    port,
                    logger=logger,
                    handler=_Handler,
                    server=_TCPServer,
                )
            except OSError as exc:
                udp.server.server_close()
                last_error = exc
                continue
            return [udp, tcp]
        raise RuntimeError(f"no port free for both UDP and TCP: {last_error}")

    # --- the zone -------------------------------------------------------------------------

    def _node(self, name: str) -> _Node:
        return self._resolver.nodes.setdefault(_key(name), _Node())

    def set_txt(self, name: str, *records: TxtRecord) -> None:
        """Replace the TXT records of `name`; each record a string, or the several strings
        one record is split into. With no record the name exists with no TXT (NOERROR)."""
        encoded = [_character_strings(r) for r in records]
        with self._resolver.lock:
            self._node(name).txt = encoded

    def set_mx(self, name: str, records: Iterable[tuple[int, str]]) -> None:
        """Replace the MX records of `name`: (preference, host); host "." is a null MX."""
        mx = [(int(preference), host) for preference, host in records]
        with self._resolver.lock:
            self._node(name).mx = mx

    def set_a(self, name: str, *addresses: str) -> None:
        """Replace the A records of `name`."""
        with self._resolver.lock:
            self._node(name).a = list(addresses)

    def set_aaaa(self, name: str, *addresses: str) -> None:
        """Replace the AAAA records of `name`."""
        with self._resolver.lock:
            self._node(name).aaaa = list(addresses)

    def set_ptr(self, name: str, *targets: str) -> None:
        """Replace the PTR records of `name` (an in-addr.arpa or ip6.arpa name)."""
        with self._resolver.lock:
            self._node(name).ptr = list(targets)

    def set_cname(self, name: str, target: str) -> None:
        """Make `name` an alias of `target` (its other records are then not answered)."""
        with self._resolver.lock:
            self._node(name).cname = target

    def fail(self, name: str) -> None:
        """Answer SERVFAIL for `name`, whatever its records."""
        with self._resolver.lock:
            self._node(name).mode = "fail"

    def hang(self, name: str) -> None:
        """Send no reply at all for `name`, so that the client times out."""
        with self._resolver.lock:
            self._node(name).mode = "hang"

    def recover(self, name: str) -> None:
        """Answer normally again for `name` after `fail` or `hang`, its records kept."""
        with self._resolver.lock:
            node = self._resolver.nodes.get(_key(name))
            if node is not None:
                node.mode = "answer"

    def remove(self, name: str) -> None:
        """Forget `name`: NXDOMAIN from now on."""
        with self._resolver.lock:
            self._resolver.nodes.pop(_key(name), None)

    def clear(self) -> None:
        """Forget every name and reset the query counter."""
        with self._resolver.lock:
            self._resolver.nodes.clear()
            self._resolver.queries = 0

    @property
    def queries(self) -> int:
        """Queries received since start or `clear()`, over UDP and TCP, including those
        answered with SERVFAIL, left unanswered by `hang`, or truncated and asked again."""
        with self._resolver.lock:
            return self._resolver.queries

    @property
    def nameserver(self) -> str:
        """This server as a `POSTDESK_DNS_NAMESERVERS` entry."""
        return f"{self.address}:{self.port}"

    # --- life cycle -----------------------------------------------------------------------

    def stop(self) -> None:
        """Stop both listeners and close their sockets; quick, and safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        for s in self._servers:
            s.server.shutdown()
            s.server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> DnsTestServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

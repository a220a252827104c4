"""DNS lookups for the health checks, on dnspython, with answers reduced to plain data.

The checks need three outcomes from a lookup, never more: the records, "there are none" (`[]`:
the name does not exist, or has no record of that type), or "could not tell now"
(`TemporaryDnsFailure`: timeout, SERVFAIL, network error), which a check reports as unknown and
retries instead of telling a customer their record is missing. Every dnspython exception is
mapped to one of those here, so no caller has to know dnspython.

Which servers are asked comes from `POSTDESK_DNS_NAMESERVERS` ("host" or "host:port" IP
addresses, IPv6 as "[::1]:5353"; empty: the system's resolv.conf) and how long to wait from
`POSTDESK_DNS_TIMEOUT`. Nothing is cached: a customer who has just published a record and
presses "check now" must see it as soon as the nameservers we ask do.
"""

from __future__ import annotations

import ipaddress

import dns.exception
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from postdesk.dns.answers import TemporaryDnsFailure

DEFAULT_PORT = 53


def parse_nameserver(text: str) -> tuple[str, int]:
    """Split one `POSTDESK_DNS_NAMESERVERS` entry into (IP address, port).

    Accepted: "192.0.2.1", "192.0.2.1:5353", "2001:db8::1", "[2001:db8::1]",
    "[2001:db8::1]:5353". The port defaults to 53. Host names are refused: the resolver
    would need a resolver to find them, and resolv.conf refuses them for the same reason.
    """
    entry = text.strip()
    if not entry:
        raise ValueError("empty nameserver entry")
    host, port_text = entry, ""
    if entry.startswith("["):
        # Bracketed IPv6, the only unambiguous way to give an IPv6 address a port.
        end = entry.find("]")
        if end == -1:
            raise ValueError(f"nameserver {text!r}: missing ']' after the IPv6 address")
        host, rest = entry[1:end], entry[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"nameserver {text!r}: expected ':PORT' after ']'")
            port_text = rest[1:]
            if not port_text:
                raise ValueError(f"nameserver {text!r}: empty port")
    elif entry.count(":") == 1:
        host, port_text = entry.split(":")
        if not port_text:
            raise ValueError(f"nameserver {text!r}: empty port")
    # Otherwise there is no port: no colon at all, or a bare IPv6 address (two or more).

    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(
            f"nameserver {text!r}: {host!r} is not an IP address "
            '(use "host" or "host:port", IPv6 as "[::1]:5353")'
        ) from None
    if entry.startswith("[") and address.version != 6:
        raise ValueError(f"nameserver {text!r}: brackets are only for IPv6 addresses")

    port = DEFAULT_PORT
    if port_text:
        # isdigit() also accepts non-ASCII digits such as "٥٣", which int() would then read.
        if not (port_text.isascii() and port_text.isdigit()):
            raise ValueError(f"nameserver {text!r}: port {port_text!r} is not a number")
        port = int(port_text)
        if not 1 <= port <= 65535:
            raise ValueError(f"nameserver {text!r}: port {port} is out of range 1-65535")
    return str(address), port


def make_resolver() -> dns.resolver.Resolver:
    """A resolver configured from the settings, without a cache.

    It holds configuration only (each query keeps its own state), so one resolver may be shared
    by threads checking many domains. A bad setting, or no usable resolv.conf when the setting
    is empty, raises `ImproperlyConfigured`: that is a deployment fault to fix, not a DNS
    answer to retry.
    """
    timeout = float(settings.POSTDESK_DNS_TIMEOUT)
    if not timeout > 0:
        raise ImproperlyConfigured(f"POSTDESK_DNS_TIMEOUT must be positive, got {timeout!r}")

    entries = settings.POSTDESK_DNS_NAMESERVERS
    if isinstance(entries, str):
        # Tolerate the environment variable's own form if someone assigns it unsplit.
        entries = [e for e in entries.split(",") if e.strip()]

    if entries:
        try:
            servers = [parse_nameserver(e) for e in entries]
        except ValueError as exc:
            raise ImproperlyConfigured(f"POSTDESK_DNS_NAMESERVERS: {exc}") from exc
        resolver = dns.resolver.Resolver(configure=False)
        # Do53Nameserver carries its own port; the resolver-wide `port` would force one port on
        # every server, which cannot express "127.0.0.1:5353, 192.0.2.1".
        resolver.nameservers = [dns.nameserver.Do53Nameserver(h, p) for h, p in servers]
    else:
        try:
            resolver = dns.resolver.Resolver(configure=True)
        except dns.resolver.NoResolverConfiguration as exc:
            raise ImproperlyConfigured(
                f"POSTDESK_DNS_NAMESERVERS is empty and the system has no usable resolver "
                f"configuration ({exc}); set POSTDESK_DNS_NAMESERVERS"
            ) from exc

    # `timeout` bounds one attempt at one server, `lifetime` the whole lookup including retries
    # and the TCP fallback: equal, a check never waits longer than the setting says.
    resolver.timeout = timeout
    resolver.lifetime = timeout
    resolver.cache = None
    # dnspython's default, stated because it matters: a SERVFAIL is a failure now, not a reason
    # to keep asking the same server until the lifetime runs out.
    resolver.retry_servfail = False
    return resolver


def _resolve(
    name: str, rdtype: dns.rdatatype.RdataType, resolver: dns.resolver.Resolver | None
) -> dns.resolver.Answer | None:
    """The answer for (name, type), `None` when there are no such records, or
    `TemporaryDnsFailure`."""
    try:
        # Absolute, so resolv.conf's search list never turns "example.com" into
        # "example.com.corp.lan" and reads someone else's record.
        qname = dns.name.from_text(name, origin=dns.name.root)
    except dns.exception.DNSException:
        # Empty label, label over 63 bytes, name over 255, bad IDN: no such name can exist, so
        # it has no records (an SPF include: of it is then a permanent error, as RFC 7208 says).
        return None

    if resolver is None:
        resolver = make_resolver()
    try:
        # tcp=False: UDP first; dnspython retries the same server over TCP when the UDP reply
        # has the TC bit (Do53Nameserver.query raises Truncated, the resolution catches it).
        return resolver.resolve(qname, rdtype, tcp=False, search=False, raise_on_no_answer=True)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer, dns.resolver.YXDOMAIN):
        # YXDOMAIN (a DNAME made the name too long) is as final as NXDOMAIN: nothing is there.
        return None
    except dns.resolver.LifetimeTimeout as exc:
        raise TemporaryDnsFailure(f"DNS timeout looking up {name} {rdtype.name}") from exc
    except dns.resolver.NoNameservers as exc:
        # Every server failed: SERVFAIL, REFUSED, connection refused, malformed replies.
        raise TemporaryDnsFailure(
            f"no nameserver could answer {name} {rdtype.name}: {exc}"
        ) from exc
    except (dns.exception.DNSException, OSError) as exc:
        # Anything else dnspython or the socket layer raises (no route, too many open files,
        # an unexpected dnspython error class) is still "could not tell now".
        raise TemporaryDnsFailure(f"DNS lookup of {name} {rdtype.name} failed: {exc}") from exc


def lookup_txt(name: str, resolver: dns.resolver.Resolver | None = None) -> list[str]:
    """Each TXT record of `name` as one string; `[]` when there are none.

    A record made of several character-strings (each at most 255 bytes, so any long SPF or
    DKIM record) is joined with nothing between them (RFC 7208 §3.3, RFC 6376 §3.6.2.2), as
    bytes before decoding, so a UTF-8 character split across two strings survives. Bytes that
    are not UTF-8 become U+FFFD rather than failing the check.
    """
    answer = _resolve(name, dns.rdatatype.TXT, resolver)
    if answer is None:
        return []
    return [b"".join(rdata.strings).decode("utf-8", errors="replace") for rdata in answer]


def lookup_mx(name: str, resolver: dns.resolver.Resolver | None = None) -> list[tuple[int, str]]:
    """The MX records of `name` as (preference, host) sorted, host lower-case without the final
    dot; `[]` when there are none. A null MX (RFC 7505, "0 .": this domain accepts no mail)
    is `(0, "")`."""
    answer = _resolve(name, dns.rdatatype.MX, resolver)
    if answer is None:
        return []
    records = []
    for rdata in answer:
        exchange = rdata.exchange
        # The root name's text is ".", not "": say "no host" the way the docstring promises.
        host = "" if exchange == dns.name.root else exchange.to_text(omit_final_dot=True).lower()
        records.append((int(rdata.preference), host))
    return sorted(records)


def lookup_a(name: str, resolver: dns.resolver.Resolver | None = None) -> list[str]:
    """The IPv4 addresses of `name` as text; `[]` when there are none."""
    return _addresses(name, dns.rdatatype.A, resolver)


def lookup_aaaa(name: str, resolver: dns.resolver.Resolver | None = None) -> list[str]:
    """The IPv6 addresses of `name` as text (compressed form); `[]` when there are none."""
    return _addresses(name, dns.rdatatype.AAAA, resolver)


def _addresses(
    name: str, rdtype: dns.rdatatype.RdataType, resolver: dns.resolver.Resolver | None
) -> list[str]:
    answer = _resolve(name, rdtype, resolver)
    if answer is None:
        return []
    return [str(ipaddress.ip_address(rdata.address)) for rdata in answer]


def lookup_ptr(name: str, resolver: dns.resolver.Resolver | None = None) -> list[str]:
    """The names the PTR records of `name` (an in-addr.arpa or ip6.arpa name) point to,
    lower-case without the final dot; `[]` when there are none."""
    answer = _resolve(name, dns.rdatatype.PTR, resolver)
    if answer is None:
        return []
    return [rdata.target.to_text(omit_final_dot=True).lower() for rdata in answer]

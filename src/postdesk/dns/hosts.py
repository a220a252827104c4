"""Our sending servers as receivers see them, for the operator: pure functions over lookups.

For each sending IP address (POSTDESK_SENDING_IPS):
- reverse DNS: receivers (Gmail, Outlook) refuse or distrust mail from an address whose PTR
  name does not resolve back to it (forward-confirmed reverse DNS), and many compare that
  name with the HELO name (POSTDESK_SENDING_HELO). States:
  `confirmed` (a PTR name whose A/AAAA holds the address, and it is the HELO name),
  `helo_mismatch` (confirmed, but under another name than the HELO),
  `not_confirmed` (PTR names, none resolving back to the address), `no_ptr`, `unknown`;
- DNS blocklists (POSTDESK_DNSBL_ZONES): the address, reversed, under each zone (RFC 5782 §2).
  An A answer in 127.0.0.0/8 means listed (the TXT record, when there is one, says why);
  NXDOMAIN means not listed. Spamhaus answers 127.255.255.x to say it refused the query
  (through a public resolver, or too many queries): that is `refused`, never "listed". Any
  other answer (a resolver that rewrites NXDOMAIN to an advertising page) is `unknown`.

Customers never see this: it is about the provider's servers, not their domain.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import dns.reversename
from django.utils.translation import gettext as _

from .answers import DnsLookups, TemporaryDnsFailure

_LISTED = ipaddress.ip_network("127.0.0.0/8")
# Spamhaus' return codes for a refused query (its "DNSBL error codes"), not listings.
_REFUSED = ipaddress.ip_network("127.255.255.0/24")


class ReverseDnsState(StrEnum):
    CONFIRMED = "confirmed"
    HELO_MISMATCH = "helo_mismatch"
    NOT_CONFIRMED = "not_confirmed"
    NO_PTR = "no_ptr"
    UNKNOWN = "unknown"


class ListingState(StrEnum):
    LISTED = "listed"
    NOT_LISTED = "not_listed"
    REFUSED = "refused"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Listing:
    zone: str
    query: str
    state: str
    codes: list[str]  # the A answers (127.0.0.x: which list of the zone)
    reason: str  # the zone's TXT explanation, when listed

    def as_dict(self) -> dict[str, object]:
        return {
            "zone": self.zone,
            "query": self.query,
            "state": self.state,
            "codes": self.codes,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class SendingHost:
    ip: str
    helo: str
    reverse_state: str
    ptr_names: list[str]
    confirmed_names: list[str]  # PTR names whose A/AAAA records hold the address
    message: str
    listings: list[Listing]

    def as_dict(self) -> dict[str, object]:
        return {
            "ip": self.ip,
            "helo": self.helo,
            "reverse_dns": {
                "state": self.reverse_state,
                "ptr": self.ptr_names,
                "confirmed": self.confirmed_names,
                "message": self.message,
            },
            "blocklists": [listing.as_dict() for listing in self.listings],
        }


def reverse_name(ip: str) -> str:
    """The in-addr.arpa (IPv6: ip6.arpa) name of an address, where its PTR record lives."""
    return dns.reversename.from_address(ip).to_text(omit_final_dot=True)


def blocklist_query(ip: str, zone: str) -> str:
    """RFC 5782 §2.1/§2.4: the address's reversed octets (IPv6: nibbles) under the zone."""
    labels = reverse_name(ip).removesuffix(".in-addr.arpa").removesuffix(".ip6.arpa")
    return f"{labels}.{zone.strip('.')}"


def check_sending_hosts(
    sending_ips: Sequence[str], helo: str, zones: Sequence[str], lookups: DnsLookups
) -> list[SendingHost]:
    return [_check_host(ip, helo.lower().rstrip("."), zones, lookups) for ip in sending_ips]


def _check_host(ip: str, helo: str, zones: Sequence[str], lookups: DnsLookups) -> SendingHost:
    address = ipaddress.ip_address(ip)
    state, names, confirmed = _reverse_dns(address, helo, lookups)
    return SendingHost(
        str(address),
        helo,
        state,
        names,
        confirmed,
        _reverse_message(state, str(address), helo, names, confirmed),
        [_listing(str(address), zone, lookups) for zone in zones],
    )


def _reverse_dns(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, helo: str, lookups: DnsLookups
) -> tuple[str, list[str], list[str]]:
    try:
        names = lookups.ptr(reverse_name(str(address)))
        if not names:
            return ReverseDnsState.NO_PTR, [], []
        lookup = lookups.a if address.version == 4 else lookups.aaaa
        confirmed = [
            name for name in names if address in {ipaddress.ip_address(a) for a in lookup(name)}
        ]
    except TemporaryDnsFailure:
        return ReverseDnsState.UNKNOWN, [], []
    if not confirmed:
        return ReverseDnsState.NOT_CONFIRMED, names, []
    if helo not in confirmed:
        return ReverseDnsState.HELO_MISMATCH, names, confirmed
    return ReverseDnsState.CONFIRMED, names, confirmed


def _reverse_message(state: str, ip: str, helo: str, names: list[str], confirmed: list[str]) -> str:
    values = {"ip": ip, "helo": helo, "names": ", ".join(names), "confirmed": ", ".join(confirmed)}
    if state == ReverseDnsState.CONFIRMED:
        return _("%(ip)s resolves to %(helo)s and back, which is the HELO name.") % values
    if state == ReverseDnsState.HELO_MISMATCH:
        return (
            _(
                "%(ip)s resolves to %(confirmed)s and back, but the HELO name is %(helo)s: "
                "some receivers distrust mail whose HELO name differs. Make the HELO name "
                "%(confirmed)s, or point the PTR record at %(helo)s."
            )
            % values
        )
    if state == ReverseDnsState.NOT_CONFIRMED:
        return (
            _(
                "%(ip)s has a PTR record (%(names)s), but no such name has %(ip)s among its "
                "addresses: receivers treat the reverse DNS as missing. Give %(helo)s the "
                "address %(ip)s and point the PTR record at it."
            )
            % values
        )
    if state == ReverseDnsState.NO_PTR:
        return (
            _(
                "%(ip)s has no PTR record: Gmail and others refuse or distrust mail from it. "
                "Ask whoever provides the address to set its PTR record to %(helo)s."
            )
            % values
        )
    return _("The DNS did not answer in time. Try again shortly.")


def _listing(ip: str, zone: str, lookups: DnsLookups) -> Listing:
    query = blocklist_query(ip, zone)
    try:
        codes = lookups.a(query)
        if not codes:
            return Listing(zone, query, ListingState.NOT_LISTED, [], "")
        answers = [ipaddress.ip_address(code) for code in codes]
        if any(a in _REFUSED for a in answers):
            return Listing(zone, query, ListingState.REFUSED, codes, "")
        if not all(a in _LISTED for a in answers):
            return Listing(zone, query, ListingState.UNKNOWN, codes, "")
    except TemporaryDnsFailure:
        return Listing(zone, query, ListingState.UNKNOWN, [], "")
    try:
        reason = " ".join(lookups.txt(query))
    except TemporaryDnsFailure:
        reason = ""  # listed all the same; only the explanation is missing
    return Listing(zone, query, ListingState.LISTED, codes, reason)

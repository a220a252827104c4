"""SPF check: do receivers pass our servers for the customer's domain, and what to publish?

`check_spf(domain, required, dns, sending_ips, helo)` reads the domain's SPF record and runs
a receiver's RFC 7208 `check_host()` (postdesk.dns.check_host) for each of our sending IP
addresses, with MAIL FROM postmaster@DOMAIN and our HELO name, following every include,
redirect, `a`, `mx`, `ptr` and `exists` through `dns`, with macros expanded and the limits of
§4.6.4. It answers with one state:

- `configured`: exactly one SPF record, and receivers answer "pass" for every sending IP.
  Nothing to do. A warning may come with it (see below).
- `not_configured`: no SPF record at all. The advice is a complete new record.
- `needs_update`: one valid record that does not pass our servers (fail, softfail, or
  neutral). The message names the term a receiver stops at; the advice is the customer's
  record with our mechanism inserted before it, every other term kept as written.
- `invalid`: receivers reject the record (permerror) or it lets the whole world send: several
  SPF records, a syntax error, more than 10 DNS-querying terms, more than 2 void lookups, an
  `mx` with more than 10 MX names, an include or redirect to a domain without a usable SPF
  record, or a pass-all (`+all`, a bare `all`). The message says which term and why; the
  advice is the single repaired record to keep.
- `unknown`: the DNS could not answer now (`TemporaryDnsFailure`, here or in any lookup the
  evaluation for our servers needs: a temperror): the check is retried, never shown as "not
  configured".

`warning` (empty when none) does not block `configured`: the record passes our servers, but a
receiver evaluating it for the customer's other senders meets a permerror on a branch our
servers never reach (an include or `redirect=` to a domain without SPF record, the lookup
limits), or passes any server at all through an include. It is found by evaluating the record
for an address that matches nothing (`OTHER_SENDERS`), which walks every branch up to the end.

Every result carries `record`, the exact TXT value the customer should have published
(the current one when configured; empty when unknown, since advising a record we cannot compare
with what is published could lead to a second SPF record), and a message for the customer.

Choices where RFC 7208 leaves a checker room, or a strict reading would help nobody:
- A pass-all (`+all` or a bare `all`) in the domain's own record is `invalid` even though it
  passes our servers: it lets the whole world send as the customer.
- `lookups` is the most DNS-querying terms any evaluation above used (11 means "over the
  limit": receivers stop there).
- Several records are merged in the order the DNS returned them (DNS has no order; the advice
  is stable as long as the resolver's order is). A `redirect=` of a record without `all` becomes
  an `include:` in the merge, since the merged record ends with an `all` that would void it.
- The advice is checked with `check_host()` before it is given: our mechanism goes before the
  first term where a receiver stops without passing our servers (an `all`, a `redirect=`, a
  term matching them with a non-pass qualifier, or the term where a limit is exceeded); an
  include or redirect whose own target has no usable SPF record (no record, several, a syntax
  error; without macros, so the same for every sender) authorizes nobody and only breaks the
  record, so the advice leaves it out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from django.utils.translation import gettext as _

from .answers import DnsLookups, TemporaryDnsFailure
from .check_host import (
    MAX_MX_NAMES,
    MAX_VOID_LOOKUPS,
    Evaluation,
    Problem,
    Verdict,
    check_host,
    client_address,
)
from .spf_syntax import (
    MAX_LOOKUPS,
    PASS,
    VERSION,
    Term,
    is_spf,
    normalize,
    parse_record,
    parse_term,
)

# Addresses that match no sane SPF record (reserved 240.0.0.0/4, and 100::/64, RFC 6666's
# discard-only prefix): evaluating the record for them walks every branch a customer's other
# senders may reach. One per address family of our sending IPs.
OTHER_SENDERS = {4: "240.0.0.1", 6: "100::1"}


class SpfState(StrEnum):
    CONFIGURED = "configured"
    NOT_CONFIGURED = "not_configured"
    NEEDS_UPDATE = "needs_update"
    INVALID = "invalid"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class SpfResult:
    state: str
    record: str
    message: str
    fault: str | None
    current: list[str]
    lookups: int
    warning: str = ""


# A receiver's permerror for our servers, as the fault the result names.
_PROBLEM_FAULT = {
    Problem.TOO_MANY_LOOKUPS: "too_many_lookups",
    Problem.TOO_MANY_VOID_LOOKUPS: "too_many_void_lookups",
    Problem.TOO_MANY_MX: "too_many_mx",
    Problem.NO_RECORD: "broken_include",
    Problem.MULTIPLE_RECORDS: "broken_include",
    Problem.SYNTAX: "broken_include",
}


def _format(terms: list[Term]) -> str:
    return " ".join([VERSION, *(term.text for term in terms)])


def _first_all(terms: list[Term]) -> int | None:
    return next((i for i, t in enumerate(terms) if t.name == "all" and not t.modifier), None)


def _insert_ours(terms: list[Term], required: Term, position: int | None) -> list[Term]:
    """Our mechanism placed where a receiver reaches it before anything that rejects us.

    `position` is the term where evaluation stopped without passing us; None when it ran off
    the end (then before the first `all` or `redirect=` if any, else at the end). Other copies
    of our mechanism (with a non-pass qualifier, or unreachable after `all`) are dropped; every
    other term is kept, in order, as written."""
    if position is None:
        position = _first_all(terms)
        if position is None:
            redirects = [i for i, t in enumerate(terms) if t.modifier and t.name == "redirect"]
            position = redirects[0] if redirects else len(terms)
    result: list[Term] = []
    for index, term in enumerate(terms):
        if index == position:
            result.append(required)
        copy_of_ours = not term.modifier and term.identity == required.identity
        if not copy_of_ours:
            result.append(term)
    if position >= len(terms):
        result.append(required)
    return result


def _dead_reference(terms: list[Term], evaluation: Evaluation) -> bool:
    """Whether the term evaluation stopped at is an include/redirect whose own target has no
    usable SPF record: it authorizes nobody, for any sender, and only breaks the record."""
    if evaluation.verdict != Verdict.PERMERROR or evaluation.term is None:
        return False
    term = terms[evaluation.term]
    return (
        term.name in ("include", "redirect")
        and term.domain is not None
        and "%" not in term.domain
        and normalize(term.domain) == evaluation.where
        and evaluation.problem in (Problem.NO_RECORD, Problem.MULTIPLE_RECORDS, Problem.SYNTAX)
    )


def _advise(
    terms: list[Term], required: Term, evaluate: Callable[[list[Term]], list[Evaluation]]
) -> list[Term]:
    """The record to publish: `terms` changed until receivers pass our servers, checked by
    evaluating each step. Stops (keeping the last step) when the DNS cannot tell, or when
    nothing more can be done without choosing for the customer (the lookup limit)."""
    advice = terms
    for _attempt in range(len(terms) + 2):  # each step removes a term or inserts ours once
        try:
            failing = [e for e in evaluate(advice) if e.verdict != Verdict.PASS]
        except TemporaryDnsFailure:
            return advice
        if not failing or any(e.verdict == Verdict.TEMPERROR for e in failing):
            return advice
        first = min(failing, key=lambda e: len(advice) if e.term is None else e.term)
        if _dead_reference(advice, first):
            advice = [t for i, t in enumerate(advice) if i != first.term]
            continue
        # Over the lookup limit, which terms to drop is the customer's choice (the message
        # says so): ours goes where it would go in a record within the limit.
        position = None if first.problem == Problem.TOO_MANY_LOOKUPS else first.term
        ours_at = next(
            (
                i
                for i, t in enumerate(advice)
                if not t.modifier and t.identity == required.identity and t.qualifier == PASS
            ),
            None,
        )
        if ours_at is not None and (position is None or ours_at <= position):
            return advice  # ours is already reached first: the rest is the customer's choice
        advice = _insert_ours(advice, required, position)
    return advice


def _dedupe_key(term: Term) -> str:
    return f"{term.qualifier}{term.identity}"


def _merge(records: list[list[Term]]) -> list[Term]:
    """Several records as the one to keep: their valid terms in order (first record first),
    identical terms once, and a single final `all` with the first record's qualifier unless it
    passes everyone (`~all` when none has one)."""
    merged: list[Term] = []
    seen: set[str] = set()
    final_all: Term | None = None
    for record in records:
        terms = [term for term in record if not term.error]
        has_all = _first_all(terms) is not None
        for term in terms:
            if term.name == "all" and not term.modifier:
                final_all = final_all or term
                continue
            if term.modifier and term.name == "redirect":
                if has_all:
                    continue  # it was ignored in its own record (§6.1); keep it ignored
                # With the final `all` it would be ignored; as an include it still authorizes
                # the servers its record was delegating to.
                term = parse_term(f"include:{term.domain}")
            # exp= may appear once: the first record's explanation is kept.
            key = "exp" if term.modifier and term.name == "exp" else _dedupe_key(term)
            if key in seen:
                continue
            seen.add(key)
            merged.append(term)
    if final_all is None or final_all.qualifier == PASS:
        final_all = parse_term("~all")
    return [*merged, final_all]


def _pass_all(terms: list[Term]) -> Term | None:
    # A bare `all` has the default qualifier "+": it is a pass-all just like `+all`. Only the
    # first `all` counts: one written after it is never reached.
    index = _first_all(terms)
    if index is not None and terms[index].qualifier == PASS:
        return terms[index]
    return None


def new_record(required: str) -> str:
    """The record a domain without SPF should publish: our mechanism, then a soft fail."""
    return _format([parse_term(required.strip()), parse_term("~all")])


def check_spf(
    domain: str, required: str, dns: DnsLookups, sending_ips: Sequence[str], helo: str
) -> SpfResult:
    """The SPF state of `domain` for our mechanism `required` (e.g. "include:spf.example.net")
    and our servers' addresses `sending_ips`, which send with HELO `helo`.

    `dns` answers the lookups (see postdesk.dns.answers): TXT of the domain and of the
    includes and redirects it leads to, and whatever else a receiver's evaluation asks.
    """
    ours = parse_term(required.strip())
    if ours.error or ours.modifier or ours.name == "all" or ours.qualifier != PASS:
        raise ValueError(f"not a pass mechanism: {required!r}")
    if not sending_ips:
        raise ValueError("no sending IP address to evaluate SPF for")
    domain = normalize(domain)
    sender = f"postmaster@{domain}"

    try:
        current = [txt for txt in dns.txt(domain) if is_spf(txt)]
    except TemporaryDnsFailure:
        return _unknown([])

    if not current:
        return SpfResult(
            state=SpfState.NOT_CONFIGURED,
            record=new_record(required),
            message=_(
                "Your domain has no SPF record, so receiving servers cannot tell that our "
                "servers may send your emails, and your messages may end up in spam. Add a TXT "
                "record with the suggested value to your domain's DNS zone."
            ),
            fault=None,
            current=[],
            lookups=0,
        )

    parsed = [parse_record(txt) for txt in current]
    faulty = [term.text for record in parsed for term in record if term.error]
    valid = [[term for term in record if not term.error] for record in parsed]
    # What receivers would evaluate once the record-level faults are repaired: the one record
    # without its unreadable terms, or the merge of several records.
    terms = _merge(parsed) if len(parsed) > 1 else valid[0]
    pass_all = [found for found in map(_pass_all, valid) if found is not None]

    def evaluate(record: list[Term], addresses: Sequence[str] = sending_ips) -> list[Evaluation]:
        return [check_host(ip, domain, sender, helo, dns, _format(record)) for ip in addresses]

    ours_evaluated = evaluate(terms)
    if any(e.verdict == Verdict.TEMPERROR for e in ours_evaluated):
        return _unknown(current)
    others = evaluate(terms, _other_senders(sending_ips))
    lookups = max(e.lookups for e in [*ours_evaluated, *others])
    broken = next((e for e in ours_evaluated if e.verdict == Verdict.PERMERROR), None)
    reached = all(e.verdict == Verdict.PASS for e in ours_evaluated)

    faults = []
    if len(parsed) > 1:
        faults.append("multiple_records")
    if faulty:
        faults.append("syntax")
    if broken is not None and broken.problem is not None:
        faults.append(_PROBLEM_FAULT[broken.problem])
    if pass_all:
        faults.append("plus_all")

    if not faults and reached:
        return SpfResult(
            state=SpfState.CONFIGURED,
            record=current[0],
            message=_("Your SPF record includes our servers. No action needed."),
            fault=None,
            current=current,
            lookups=lookups,
            warning=_warning(terms, others),
        )

    advice = terms
    index = _first_all(advice)
    if index is not None and advice[index].qualifier == PASS:
        advice = [*advice[:index], parse_term("~all"), *advice[index + 1 :]]
    advice = _advise(advice, ours, evaluate)

    sentences: list[str] = []
    if not faults:
        sentences.append(
            _(
                "Your domain already has an SPF record, but it does not authorize our servers, "
                "so your emails may end up in spam. Replace the existing record with the "
                "suggested one, which keeps your current entries and adds ours. Do not create "
                "a second SPF record: only one is allowed per domain."
            )
        )
        stopped = next(e for e in ours_evaluated if e.verdict != Verdict.PASS)
        sentences.append(_where_it_stops(terms, stopped))
    if "multiple_records" in faults:
        sentences.append(
            _(
                "Your domain has several SPF records. Only one is allowed per domain: with more "
                "than one, receiving servers ignore them all and your emails may end up in spam."
            )
        )
    if "syntax" in faults:
        sentences.append(
            _(
                "Your SPF record contains something receiving servers cannot read: %(terms)s. "
                "Because of it, they ignore the whole record."
            )
            % {"terms": ", ".join(faulty)}
        )
    if broken is not None:
        sentences.append(
            _(
                "Receiving servers reject your SPF record for our servers (a permanent "
                "error, “permerror”): %(reason)s"
            )
            % {"reason": _why(terms, broken)}
        )
    if "plus_all" in faults:
        sentences.append(
            _(
                "Your SPF record ends with %(term)s, which allows any server in the world to "
                "send emails in your name. It should end with ~all."
            )
            % {"term": pass_all[0].text}
        )
    if "multiple_records" in faults:
        sentences.append(
            _(
                "Delete all your SPF records and publish only the suggested one, which combines "
                "their entries and includes our servers."
            )
        )
    elif faults and faults != ["too_many_lookups"]:
        sentences.append(
            _(
                "Replace your SPF record with the suggested one, which fixes this and includes "
                "our servers."
            )
        )
    elif faults:
        # Too many lookups cannot be fixed for the customer: which services to drop is theirs.
        sentences.append(
            _("Replace your SPF record with the suggested one, which includes our servers.")
        )
    if "too_many_lookups" in faults:
        sentences.append(
            _(
                "Before publishing it, remove the includes of services you no longer use, so "
                "that it needs at most %(limit)s lookups."
            )
            % {"limit": MAX_LOOKUPS}
        )
    elif _over_limit(evaluate, advice):
        sentences.append(
            _(
                "With our servers added, the suggested record needs more than %(limit)s DNS "
                "lookups: before publishing it, remove the includes of services you no longer "
                "use."
            )
            % {"limit": MAX_LOOKUPS}
        )

    return SpfResult(
        state=SpfState.INVALID if faults else SpfState.NEEDS_UPDATE,
        record=_format(advice),
        message=" ".join(sentences),
        fault=faults[0] if faults else None,
        current=current,
        lookups=lookups,
    )


def _other_senders(sending_ips: Sequence[str]) -> list[str]:
    families = sorted({client_address(ip).version for ip in sending_ips})
    return [OTHER_SENDERS[family] for family in families]


def _over_limit(evaluate: Callable[[list[Term]], list[Evaluation]], advice: list[Term]) -> bool:
    # Adding our include adds its own lookups: a record just under the limit goes over it.
    try:
        return any(e.problem == Problem.TOO_MANY_LOOKUPS for e in evaluate(advice))
    except TemporaryDnsFailure:
        return False  # only a warning: not worth turning the whole answer into "unknown"


def _term_text(terms: list[Term], evaluation: Evaluation) -> str:
    return terms[evaluation.term].text if evaluation.term is not None else ""


def _where_it_stops(terms: list[Term], evaluation: Evaluation) -> str:
    """Which term of the record a receiver stops at for one of our servers, and what it says."""
    verdicts = {
        Verdict.FAIL: _("which rejects it"),
        Verdict.SOFTFAIL: _("which marks it as suspicious"),
        Verdict.NEUTRAL: _("which neither authorizes nor rejects it"),
    }
    if evaluation.term is None:
        return _(
            "For our server %(ip)s, no term of your record matches, so receiving servers "
            "treat it as neither authorized nor rejected."
        ) % {"ip": evaluation.ip}
    return _("For our server %(ip)s, receiving servers stop at “%(term)s”, %(verdict)s.") % {
        "ip": evaluation.ip,
        "term": _term_text(terms, evaluation),
        "verdict": verdicts.get(evaluation.verdict, ""),
    }


def _why(terms: list[Term], evaluation: Evaluation) -> str:
    """A receiver's permerror in plain words: which term, and what is wrong with it."""
    values = {
        "term": _term_text(terms, evaluation),
        "culprit": evaluation.culprit,
        "domain": evaluation.where,
        "limit": MAX_LOOKUPS,
        "voids": MAX_VOID_LOOKUPS,
        "mx": MAX_MX_NAMES,
    }
    problem = evaluation.problem
    if problem == Problem.NO_RECORD:
        return _("“%(term)s” leads to %(domain)s, which publishes no SPF record.") % values
    if problem == Problem.MULTIPLE_RECORDS:
        return _("“%(term)s” leads to %(domain)s, which publishes several SPF records.") % values
    if problem == Problem.SYNTAX:
        return (
            _(
                "“%(term)s” leads to the SPF record of %(domain)s, which contains something "
                "receiving servers cannot read: %(culprit)s."
            )
            % values
        )
    if problem == Problem.TOO_MANY_LOOKUPS and values["term"] != values["culprit"]:
        return (
            _(
                "evaluating it takes more than %(limit)s DNS lookups, counting the includes "
                "inside other includes; receiving servers give up at “%(culprit)s”, reached "
                "through “%(term)s”."
            )
            % values
        )
    if problem == Problem.TOO_MANY_LOOKUPS:
        return (
            _(
                "evaluating it takes more than %(limit)s DNS lookups, counting the includes "
                "inside other includes; receiving servers give up at “%(culprit)s”."
            )
            % values
        )
    if problem == Problem.TOO_MANY_VOID_LOOKUPS:
        return (
            _(
                "more than %(voids)s of its lookups find nothing (the last one: %(domain)s, "
                "for “%(culprit)s”). Remove the terms that name domains or servers that no "
                "longer exist."
            )
            % values
        )
    return (
        _(
            "“%(culprit)s” names %(domain)s, which has more than %(mx)s MX records. List your "
            "servers' addresses with ip4: or ip6: instead."
        )
        % values
    )


def _warning(terms: list[Term], others: list[Evaluation]) -> str:
    """What goes wrong for the customer's other senders while our servers pass."""
    for evaluation in others:
        if evaluation.verdict == Verdict.PERMERROR:
            return _(
                "Your SPF record authorizes our servers, but receiving servers reject it for "
                "your other senders (a permanent error, “permerror”): %(reason)s Fix it if "
                "you send emails through other services."
            ) % {"reason": _why(terms, evaluation)}
        if evaluation.verdict == Verdict.PASS:
            return _(
                "Your SPF record authorizes any server in the world to send emails in your "
                "name, through “%(term)s”. Remove it unless you trust it."
            ) % {"term": _term_text(terms, evaluation)}
    return ""


def _unknown(current: list[str]) -> SpfResult:
    return SpfResult(
        state=SpfState.UNKNOWN,
        record="",
        message=_(
            "We could not check your SPF record because of a temporary DNS failure. We will "
            "check again automatically; there is nothing to do for now."
        ),
        fault="temporary_failure",
        current=current,
        lookups=0,
    )

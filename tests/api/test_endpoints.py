"""Each /api/v1 operation does what the service behind it does, in JSON, in the caller's
language; errors are {code, message, field, errors} with the right status."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from django.utils import timezone, translation
from django_tasks_db.models import DBTaskResult

from postdesk.api.schemas import CHECKED_ERRORS, READ_ERRORS, WRITE_ERRORS, AddressPageOut
from postdesk.audit.models import AuditEvent
from postdesk.dataplane.passwords import verify_password
from postdesk.dns.dkim import record_value
from postdesk.dns.models import DkimKey, DkimKeyStatus
from postdesk.dns.mtasts import policy_id
from postdesk.dns.services import dkim_enable, dkim_prepare_rotation
from postdesk.dns.status import dns_check_domain
from postdesk.mail.models import Address, Forward, Mailbox
from postdesk.mail.services import mailbox_create
from tests.conftest import GOOD_PASSWORD

pytestmark = pytest.mark.django_db


def test_domain_list_and_detail(api, owner_token, domain, other_domain):
    response = api.get("domains", owner_token)
    assert response.status == 200
    assert response.body["total"] == 1
    assert [(d["name"], d["client"]) for d in response.body["items"]] == [("example.com", "Acme")]
    assert api.get("domains/EXAMPLE.com", owner_token).body["name"] == "example.com"


def test_operator_token_sees_every_client(api, operator_token, domain, other_domain):
    names = [d["name"] for d in api.get("domains", operator_token).body["items"]]
    assert names == ["example.com", "example.net"]


def test_create_mailbox_with_every_option(api, owner_token, domain):
    response = api.post(
        "domains/example.com/mailboxes",
        owner_token,
        {
            "username": "Jean",
            "password": GOOD_PASSWORD,
            "aliases": ["j.tremblay"],
            "quota_mb": 2048,
            "destinations": ["jean@elsewhere.example"],
            "delete_after_forwarding": True,
            "keep_original_sender": True,
            "eas": True,
            "mapi": True,
        },
    )
    assert response.status == 201, response.body
    body = response.body
    assert body["address"] == "jean@example.com"
    assert body["aliases"] == ["j.tremblay@example.com"]
    assert body["destinations"] == ["jean@elsewhere.example"]
    assert (body["quota_mb"], body["eas"], body["mapi"]) == (2048, True, True)
    assert body["delete_after_forwarding"] and body["keep_original_sender"]
    assert body["password"] is None  # only a generated password is echoed
    mailbox = Mailbox.objects.get(address__local_part="jean")
    assert verify_password(GOOD_PASSWORD, mailbox.password_hash)
    event = AuditEvent.objects.get(action="mailbox.create")
    assert (event.actor_label, event.source, event.ip) == ("owner@example.org", "api", "127.0.0.1")


def test_without_a_password_one_is_generated_and_returned_once(api, owner_token, domain):
    response = api.post("domains/example.com/mailboxes", owner_token, {"username": "gen"})
    assert response.status == 201
    password = response.body["password"]
    assert verify_password(password, Mailbox.objects.get().password_hash)
    assert "password" not in api.get("mailboxes/gen@example.com", owner_token).body


def test_taken_address_is_409_in_the_callers_language(api, owner_token, mailbox, forward):
    for name, phrase in [
        ("marie", "boîte courriel"),
        ("m.dupont", "alias"),
        ("info", "redirection"),
    ]:
        response = api.post(
            "domains/example.com/mailboxes",
            owner_token,
            {"username": name, "password": GOOD_PASSWORD},
            lang="fr",
        )
        assert response.status == 409, response.body
        assert response.body["code"] == "address_taken"
        assert response.body["field"] == "username"
        assert phrase in response.body["message"].lower()
    forward_taken = api.post(
        "domains/example.com/forwards", owner_token, {"name": "marie", "destinations": ["a@b.org"]}
    )
    assert (forward_taken.status, forward_taken.body["field"]) == (409, "name")
    assert Mailbox.objects.count() == 1


def test_several_invalid_fields_are_reported_together(api, owner_token, domain):
    response = api.post(
        "domains/example.com/mailboxes",
        owner_token,
        {"username": "bad..name", "password": "short", "quota_mb": -1, "destinations": ["nope"]},
    )
    assert response.status == 400
    fields = [e["field"] for e in response.body["errors"]]
    assert {"username", "quota_mb", "destinations"} <= set(fields)
    assert response.body["field"] == fields[0]
    assert not Address.objects.exists()


def test_a_taken_username_comes_back_with_the_other_errors(api, owner_token, mailbox):
    """Not after them, on a second call (#14): the service looks names up in the same pass."""
    response = api.post(
        "domains/example.com/mailboxes",
        owner_token,
        {"username": "marie", "password": GOOD_PASSWORD, "quota_mb": -1, "aliases": ["m.dupont"]},
    )
    assert response.status == 400
    by_field = {e["field"]: e["code"] for e in response.body["errors"]}
    assert by_field == {
        "quota_mb": "quota_invalid",
        "username": "address_taken",
        "aliases": "address_taken",
    }
    assert Mailbox.objects.count() == 1


def test_schema_errors_are_422_in_the_same_shape(api, owner_token, domain):
    response = api.post(
        "domains/example.com/mailboxes",
        owner_token,
        {"username": "x", "quota_mb": "5", "eas": "yes", "typo": 1},
        lang="fr",
    )
    assert response.status == 422
    by_field = {e["field"]: e for e in response.body["errors"]}
    assert set(by_field) == {"quota_mb", "eas", "typo"}
    assert by_field["typo"]["code"] == "unknown_field"
    with translation.override("fr"):
        # Its French comes with the catalogue; the language is the caller's either way.
        assert by_field["quota_mb"]["message"] == translation.gettext("Enter a whole number.")
    assert {"code", "message", "field"} <= set(response.body)

    missing = api.post("domains/example.com/mailboxes", owner_token, {})
    assert (missing.status, missing.body["code"], missing.body["field"]) == (
        422,
        "required",
        "username",
    )
    broken = api.post("domains/example.com/mailboxes", owner_token, raw="{not json")
    assert (broken.status, broken.body["code"]) == (400, "invalid_json")


def test_get_update_and_delete_a_mailbox(api, owner_token, mailbox):
    path = "mailboxes/marie@example.com"
    assert api.get(path, owner_token).body["aliases"] == ["m.dupont@example.com"]

    response = api.patch(
        path,
        owner_token,
        {"quota_mb": 500, "aliases": ["marie.d"], "destinations": [], "mapi": True},
    )
    assert response.status == 200, response.body
    assert response.body["aliases"] == ["marie.d@example.com"]
    assert response.body["destinations"] == []
    assert (response.body["quota_mb"], response.body["mapi"], response.body["eas"]) == (
        500,
        True,
        False,
    )
    # A field left out stays as it is.
    assert api.patch(path, owner_token, {"eas": True}).body["quota_mb"] == 500
    # The removed alias is reserved for the reuse delay.
    reused = api.post(
        "domains/example.com/forwards",
        owner_token,
        {"name": "m.dupont", "destinations": ["a@b.org"]},
    )
    assert (reused.status, reused.body["code"]) == (409, "address_taken")

    assert api.delete(path, owner_token).status == 204
    assert api.get(path, owner_token).status == 404
    assert not Mailbox.objects.exists()


def test_set_and_generate_a_password(api, owner_token, mailbox):
    path = "mailboxes/marie@example.com/password"
    new = "Hm4^wQs9=Ljd8Pz"
    assert api.post(path, owner_token, {"password": new}).status == 204
    assert verify_password(new, Mailbox.objects.get().password_hash)

    weak = api.post(path, owner_token, {"password": "weak"}, lang="fr")
    assert weak.status == 400 and weak.body["field"] == "password"
    assert verify_password(new, Mailbox.objects.get().password_hash)

    generated = api.post(path, owner_token, {})
    assert generated.status == 200
    assert verify_password(generated.body["password"], Mailbox.objects.get().password_hash)


def test_add_and_remove_aliases(api, owner_token, mailbox):
    added = api.post("mailboxes/marie@example.com/aliases", owner_token, {"name": "mdupont"})
    assert added.status == 201
    assert added.body["aliases"] == ["m.dupont@example.com", "mdupont@example.com"]
    # By local part or by full address.
    assert api.delete("mailboxes/marie@example.com/aliases/m.dupont", owner_token).status == 204
    assert (
        api.delete("mailboxes/marie@example.com/aliases/mdupont@example.com", owner_token).status
        == 204
    )
    assert api.get("mailboxes/marie@example.com", owner_token).body["aliases"] == []
    gone = api.delete("mailboxes/marie@example.com/aliases/nobody", owner_token)
    assert (gone.status, gone.body["code"]) == (400, "alias_not_found")


def test_forward_life_cycle(api, owner_token, domain):
    created = api.post(
        "domains/example.com/forwards",
        owner_token,
        {"name": "sales", "destinations": ["a@partner.example", "b@partner.example"]},
    )
    assert created.status == 201
    assert created.body["destinations"] == ["a@partner.example", "b@partner.example"]
    path = "forwards/sales@example.com"
    assert api.put(path, owner_token, {"destinations": ["c@partner.example"]}).body[
        "destinations"
    ] == ["c@partner.example"]
    empty = api.put(path, owner_token, {"destinations": []})
    assert (empty.status, empty.body["code"]) == (400, "destination_required")
    assert api.get(path, owner_token).body["destinations"] == ["c@partner.example"]
    assert api.delete(path, owner_token).status == 204
    assert not Forward.objects.exists()
    # A forward is not a mailbox, and the other way round.
    assert api.get("mailboxes/sales@example.com", owner_token).status == 404


def test_address_list_search_type_sort_and_pages(api, owner_token, operator, domain):
    for i, name in enumerate(["alice", "bob", "carol", "dave", "eve"]):
        mailbox = mailbox_create(
            actor=operator, domain=domain, username=name, password=GOOD_PASSWORD
        )
        Mailbox.objects.filter(pk=mailbox.pk).update(used_bytes=i * 1000)
    api.post(
        "domains/example.com/forwards", owner_token, {"name": "team", "destinations": ["x@y.org"]}
    )
    base = "domains/example.com/addresses"

    page = api.get(f"{base}?per_page=2&page=2", owner_token).body
    assert [r["address"] for r in page["items"]] == ["carol@example.com", "dave@example.com"]
    assert (page["total"], page["page"], page["per_page"], page["num_pages"]) == (6, 2, 2, 3)
    # Past the end: the last page, as on the dashboard.
    assert api.get(f"{base}?per_page=2&page=99", owner_token).body["page"] == 3

    storage = api.get(f"{base}?sort=storage&type=mailbox", owner_token).body["items"]
    assert [r["address"].split("@")[0] for r in storage] == ["eve", "dave", "carol", "bob", "alice"]
    forwards = api.get(f"{base}?type=forward", owner_token).body["items"]
    assert [(r["address"], r["destinations"], r["quota_mb"]) for r in forwards] == [
        ("team@example.com", ["x@y.org"], None)
    ]
    found = api.get(f"{base}?search=x@y", owner_token).body
    assert [r["address"] for r in found["items"]] == ["team@example.com"]

    bad = api.get(f"{base}?sort=size&per_page=0", owner_token)
    assert bad.status == 422
    assert {e["field"] for e in bad.body["errors"]} == {"sort", "per_page"}


def test_an_address_page_is_exactly_what_its_schema_says(api, owner_token, mailbox, forward):
    """The page is rendered without Ninja's output validation (it cost a fifth of the
    request): what leaves must still be the schema's shape, no key more or less."""
    response = api.get("domains/example.com/addresses?per_page=1", owner_token)
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    body = response.body
    assert body == AddressPageOut.model_validate(body).model_dump(mode="json")
    assert {row["type"] for row in body["items"]} == {"forward"}
    following = api.get(f"domains/example.com/addresses?cursor={body['next']}", owner_token).body
    assert following == AddressPageOut.model_validate(following).model_dump(mode="json")
    assert [row["address"] for row in following["items"]] == [mailbox.address.email]


def test_dns_status_is_the_stored_report_in_the_readers_language(
    api, owner_token, domain, dns_server, settings
):
    settings.POSTDESK_SPF_MECHANISM = "include:spf.host.example"
    never = api.get("domains/example.com/dns", owner_token).body
    assert never == {
        "checked_at": None,
        "spf": None,
        "dkim": None,
        "dmarc": None,
        "mx": None,
        "mta_sts": None,
        "tls_rpt": None,
    }

    dns_server.set_txt("example.com", "v=spf1 include:spf.host.example ~all")
    # Our record, which receivers follow (RFC 7208: an include without one is a permerror).
    dns_server.set_txt("spf.host.example", "v=spf1 ip4:192.0.2.0/24 -all")
    dns_check_domain(domain)
    queries = dns_server.queries
    english = api.get("domains/example.com/dns", owner_token).body
    french = api.get("domains/example.com/dns", owner_token, lang="fr").body
    assert dns_server.queries == queries  # reading asks no DNS
    assert english["checked_at"] is not None
    assert english["spf"]["state"] == french["spf"]["state"] == "configured"
    assert english["spf"]["message"] != french["spf"]["message"]
    assert set(english) == {"checked_at", "spf", "dkim", "dmarc", "mx", "mta_sts", "tls_rpt"}
    assert english["mx"]["records"]  # what to publish: [preference, host] pairs


def test_dns_status_says_all_that_dns_check_json_says(
    api, operator, owner_token, domain, dns_server, settings
):
    """Every key of `postdesk dns check --json`, with what receivers make of real records."""
    settings.POSTDESK_SPF_MECHANISM = "include:spf.host.example"
    settings.POSTDESK_MX_HOSTS = ["mx1.host.example", "mx2.host.example"]
    settings.POSTDESK_MTA_STS_TARGET = "front.host.example"
    settings.POSTDESK_TLS_RPT_ADDRESS = "tls@host.example"
    # SPF passes our sending IP (192.0.2.1) through our include; the redirect, never reached
    # for it, is a permerror for the customer's other senders: configured, with a warning.
    dns_server.set_txt("spf.host.example", "v=spf1 ip4:192.0.2.1 -all")
    dns_server.set_txt("example.com", "v=spf1 include:spf.host.example redirect=gone.example")
    # DKIM: the signing key published; a rotation's new key not yet.
    signing = dkim_enable(actor=operator, domain=domain)
    dns_server.set_txt("mail._domainkey.example.com", record_value(signing.public_key))
    prepared = dkim_prepare_rotation(actor=operator, domain=domain)
    # DMARC monitoring only, its reports sent to a domain that has not authorized them.
    dns_server.set_txt("_dmarc.example.com", "v=DMARC1; p=none; rua=mailto:d@reports.example.net")
    dns_server.set_mx("example.com", [(0, ".")])  # a null MX: no mail accepted
    # MTA-STS: the host leads to our front, but the record has the enforce policy's id.
    dns_server.set_a("front.host.example", "192.0.2.10")
    dns_server.set_cname("mta-sts.example.com", "front.host.example")
    old_id = policy_id("enforce", settings.POSTDESK_MX_HOSTS)
    dns_server.set_txt("_mta-sts.example.com", f"v=STSv1; id={old_id}")
    dns_server.set_txt("_smtp._tls.example.com", "v=TLSRPTv1; rua=mailto:tls@host.example")
    _, report = dns_check_domain(domain)

    body = api.get("domains/example.com/dns", owner_token).body
    spf, dkim, dmarc, mx = body["spf"], body["dkim"], body["dmarc"], body["mx"]
    assert spf["state"] == "configured"
    assert "gone.example, which publishes no SPF record" in spf["warning"]

    assert (dkim["state"], dkim["selector"], dkim["bits"]) == ("active", "mail", 2048)
    assert dkim["found"] == [record_value(signing.public_key)]
    assert prepared.selector in dkim["warning"]  # publish the new key before it signs
    assert [(k["status"], k["selector"], k["state"]) for k in dkim["keys"]] == [
        ("signing", "mail", "active"),
        ("prepared", prepared.selector, "pending"),
    ]
    assert dkim["keys"][1]["value"] == record_value(prepared.public_key)

    assert (dmarc["policy"], dmarc["policy_domain"]) == ("none", "example.com")
    assert dmarc["found"] == ["v=DMARC1; p=none; rua=mailto:d@reports.example.net"]
    assert dmarc["alignment"] == {
        "adkim": "r",
        "aspf": "r",
        "dkim_aligned": True,
        "spf_aligned": True,
        "aligned": True,
    }
    # Dated from this first check (the API's dates, like checked_at, to the millisecond).
    since = datetime.fromisoformat(dmarc["policy_none_since"])
    assert abs(since - report.dmarc.none_since) < timedelta(milliseconds=1)
    [reports] = dmarc["reports"]
    assert (reports["uri"], reports["external"], reports["authorized"]) == (
        "mailto:d@reports.example.net",
        True,
        False,
    )
    assert reports["host"] == "example.com._report._dmarc.reports.example.net"
    assert any(reports["host"] in warning for warning in dmarc["warnings"])

    assert (mx["state"], mx["found"]) == ("null_mx", [[0, "."]])

    mta_sts = body["mta_sts"]
    current_id = policy_id("testing", settings.POSTDESK_MX_HOSTS)
    assert (mta_sts["state"], mta_sts["mode"]) == ("needs_update", "testing")
    assert {(r["type"], r["host"], r["value"]) for r in mta_sts["found"]} == {
        ("TXT", "_mta-sts.example.com", f"v=STSv1; id={old_id}"),
        ("A", "mta-sts.example.com", "192.0.2.10"),
    }
    assert [(r["type"], r["value"]) for r in mta_sts["expected"]] == [
        ("TXT", f"v=STSv1; id={current_id}"),
        ("CNAME", "front.host.example"),
    ]
    assert current_id in mta_sts["message"]
    tls_rpt = body["tls_rpt"]
    assert tls_rpt["state"] == "configured"
    assert tls_rpt["found"] == tls_rpt["expected"]
    assert tls_rpt["found"][0]["value"] == "v=TLSRPTv1; rua=mailto:tls@host.example"

    # The same keys and values as the command's JSON (the date compared above).
    command = json.loads(json.dumps(report.as_dict()))
    for found in (command, body):
        del found["dmarc"]["policy_none_since"]
    assert {key: body[key] for key in command} == command


def test_check_now_queues_a_check(api, owner_token, domain):
    response = api.post("domains/example.com/dns/check", owner_token)
    assert (response.status, response.body) == (202, {"queued": True})
    assert DBTaskResult.objects.filter(task_path__endswith="check_domain_dns").count() == 1


def test_dkim_enable_record_disable(api, owner_token, domain):
    assert api.get("domains/example.com/dkim", owner_token).body == {
        "enabled": False,
        "records": [],
    }
    enabled = api.post("domains/example.com/dkim/enable", owner_token)
    assert enabled.status == 200
    [record] = enabled.body["records"]
    assert record["host"] == "mail._domainkey.example.com"
    assert record["value"].startswith("v=DKIM1; k=rsa; p=")
    assert api.get("domains/example.com/dkim", owner_token).body == enabled.body

    refused = api.post("domains/example.com/dkim/disable", owner_token, {}, lang="fr")
    assert (refused.status, refused.body["code"], refused.body["field"]) == (
        400,
        "confirmation_required",
        "confirm",
    )
    assert DkimKey.objects.get().status == DkimKeyStatus.SIGNING
    done = api.post("domains/example.com/dkim/disable", owner_token, {"confirm": True})
    assert done.status == 204
    assert DkimKey.objects.get().status == DkimKeyStatus.DISABLED
    assert api.get("domains/example.com/dkim", owner_token).body["enabled"] is False


def test_unknown_route_and_unknown_object_are_json_404(api, owner_token, domain):
    for path in ["no-such-thing", "mailboxes/nobody@example.com", "domains/nowhere.example"]:
        response = api.get(path, owner_token, lang="fr")
        assert response.status == 404, path
        assert response.body["code"] == "not_found"


def test_openapi_schema_and_docs_are_served(api):
    schema = api.get("openapi.json").body
    assert schema["openapi"].startswith("3.")
    assert "/api/v1/domains/{domain}/mailboxes" in schema["paths"]
    assert schema["components"]["securitySchemes"]["TokenAuth"]["scheme"] == "bearer"
    docs = api.get("docs")
    assert docs.status == 200
    assert b"swagger" in docs.body.lower()


def test_every_route_documents_one_named_set_of_errors(api):
    """The error statuses come from api.schemas' named maps, whole: a route documents the
    errors of a read, of a read with checked values, or of a change, and nothing between."""
    named = {
        "read": set(READ_ERRORS),
        "checked": set(CHECKED_ERRORS),
        "write": set(WRITE_ERRORS),
    }
    documented = {}
    for path, operations in api.get("openapi.json").body["paths"].items():
        for method, operation in operations.items():
            errors = {int(status) for status in operation["responses"] if int(status) >= 400}
            kinds = [kind for kind, statuses in named.items() if statuses == errors]
            assert kinds, (method, path, errors)
            documented[operation["operationId"]] = kinds[0]
    assert documented["mailbox_detail"] == "read"
    assert documented["domain_estimate"] == "checked"
    assert documented["mailbox_create"] == "write"
    assert documented["client_create"] == "write"
    assert len(documented) == 36


def test_times_are_utc(api, owner_token, mailbox):
    created = api.get("mailboxes/marie@example.com", owner_token).body["created_at"]
    assert created.endswith("Z") or created.endswith("+00:00")
    assert abs((timezone.now() - mailbox.created_at).total_seconds()) < 60


def test_the_schema_describes_the_dns_status_fields(api):
    components = api.get("openapi.json").body["components"]["schemas"]
    report = components["DnsReportOut"]["properties"]
    assert {"mta_sts", "tls_rpt"} <= set(report)
    for name, field in {
        "SpfOut": "warning",
        "DkimCheckOut": "keys",
        "DmarcOut": "policy_none_since",
        "DmarcReportOut": "authorized",
        "MxOut": "found",
        "MtaStsOut": "expected",
        "TlsRptOut": "found",
    }.items():
        assert components[name]["properties"][field]["description"], (name, field)
    assert "null_mx" in components["MxOut"]["properties"]["state"]["description"]

"""`postdesk dns` and `postdesk dkim`, run as a script would, against the loopback DNS server."""

from __future__ import annotations

import json
import re

import pytest

from tests.cli import assert_fails, assert_ok, run_postdesk

pytestmark = pytest.mark.own_database


@pytest.fixture
def pd(tmp_path, _dns_server_process):
    server = _dns_server_process
    server.clear()
    env = {
        "POSTDESK_DNS_NAMESERVERS": server.nameserver,
        "POSTDESK_DNS_TIMEOUT": "1",
        "POSTDESK_SPF_MECHANISM": "include:spf.host.example",
        "POSTDESK_MX_HOSTS": "mx1.host.example,mx2.host.example",
        "POSTDESK_MTA_STS_TARGET": "front.host.example",
        "POSTDESK_TLS_RPT_ADDRESS": "tls@host.example",
    }

    def run(*args: str, **more_env: str):
        return run_postdesk(tmp_path, *args, env={**env, **more_env})

    for step in (
        ("migrate", "--noinput"),
        ("client", "create", "Acme"),
        ("domain", "add", "example.com", "--client", "Acme"),
    ):
        assert_ok(run(*step))
    run.server = server
    yield run
    server.clear()


def test_dns_check_json_and_the_dkim_life_cycle(pd):
    pd.server.set_txt("example.com", "v=spf1 include:other.example ~all")
    # Receivers follow the includes (RFC 7208): both records must exist.
    pd.server.set_txt("other.example", "v=spf1 ip4:203.0.113.0/24 -all")
    pd.server.set_txt("spf.host.example", "v=spf1 ip4:192.0.2.0/24 -all")
    pd.server.set_mx("example.com", [(10, "mx1.host.example")])
    result = pd("dns", "check", "example.com", "--json")
    assert_ok(result)
    report = json.loads(result.stdout)
    assert set(report) == {"spf", "dkim", "dmarc", "mx", "mta_sts", "tls_rpt"}
    assert {"state", "record", "message"} <= set(report["spf"])
    assert {"state", "host", "value"} <= set(report["dkim"])
    assert report["spf"]["state"] == "needs_update"
    assert report["spf"]["record"] == ("v=spf1 include:other.example include:spf.host.example ~all")
    assert report["dkim"]["state"] == "disabled"
    assert report["dmarc"]["state"] == "not_configured"
    assert report["mx"]["state"] == "configured"
    assert report["mta_sts"]["state"] == "not_configured"
    assert report["mta_sts"]["mode"] == "testing"
    assert report["mta_sts"]["found"] == []
    [txt, host] = report["mta_sts"]["expected"]
    assert txt["type"] == "TXT" and txt["host"] == "_mta-sts.example.com"
    assert re.fullmatch(r"v=STSv1; id=[0-9a-f]{20}", txt["value"])
    assert host == {"type": "CNAME", "host": "mta-sts.example.com", "value": "front.host.example"}
    assert report["tls_rpt"]["state"] == "not_configured"
    assert report["tls_rpt"]["expected"] == [
        {
            "type": "TXT",
            "host": "_smtp._tls.example.com",
            "value": "v=TLSRPTv1; rua=mailto:tls@host.example",
        }
    ]
    for key in ("mta_sts", "tls_rpt"):
        assert {"state", "found", "expected", "message"} <= set(report[key])
        assert report[key]["message"]

    # Published: the JSON says so, with what it found.
    pd.server.set_txt(txt["host"], txt["value"])
    pd.server.set_a("front.host.example", "192.0.2.10")
    pd.server.set_cname("mta-sts.example.com", "front.host.example")
    pd.server.set_txt("_smtp._tls.example.com", "v=TLSRPTv1; rua=mailto:tls@host.example")
    report = json.loads(pd("dns", "check", "example.com", "--json").stdout)
    assert report["mta_sts"]["state"] == "configured"
    assert {"type": "A", "host": "mta-sts.example.com", "value": "192.0.2.10"} in (
        report["mta_sts"]["found"]
    )
    assert report["tls_rpt"]["state"] == "configured"
    assert report["tls_rpt"]["found"] == report["tls_rpt"]["expected"]

    assert_fails(pd("dkim", "record", "example.com", "--json"), "dkim_disabled")
    assert_ok(pd("dkim", "enable", "example.com"))
    record = json.loads(pd("dkim", "record", "example.com", "--json").stdout)
    assert record["host"] == "mail._domainkey.example.com"
    assert record["value"].startswith("v=DKIM1; k=rsa; p=")
    assert json.loads(pd("dns", "check", "example.com", "--json").stdout)["dkim"]["state"] == (
        "pending"
    )
    pd.server.set_txt(record["host"], record["value"])
    assert json.loads(pd("dns", "check", "example.com", "--json").stdout)["dkim"]["state"] == (
        "active"
    )

    # Without --yes: refused, and nothing changes.
    assert_fails(pd("dkim", "disable", "example.com"), "confirmation_required")
    assert json.loads(pd("dkim", "record", "example.com", "--json").stdout) == record
    assert_ok(pd("dkim", "disable", "example.com", "--yes"))
    assert_fails(pd("dkim", "record", "example.com", "--json"), "dkim_disabled")


def test_unknown_domain_and_recheck_all(pd):
    assert_fails(pd("dns", "check", "nowhere.example"), "not_found")
    assert_fails(pd("dkim", "enable", "nowhere.example"), "not_found")
    result = pd("dns", "recheck-all")
    assert_ok(result)
    assert "checked 1 domain(s)" in result.stdout


def test_dns_check_json_spf_is_judged_for_the_sending_ips_with_a_warning(pd):
    # The sending IP (POSTDESK_SENDING_IPS' default, 192.0.2.1) passes through our include;
    # the redirect, never reached for it, is a permerror for other senders: the "warning" key.
    pd.server.set_txt("spf.host.example", "v=spf1 ip4:192.0.2.1 -all")
    pd.server.set_txt("example.com", "v=spf1 include:spf.host.example redirect=gone.example")
    report = json.loads(pd("dns", "check", "example.com", "--json").stdout)
    assert report["spf"]["state"] == "configured"
    assert "gone.example, which publishes no SPF record" in report["spf"]["warning"]
    # Our record no longer covering the sending IP: receivers stop at the final -all.
    pd.server.set_txt("spf.host.example", "v=spf1 ip4:198.51.100.1 -all")
    report = json.loads(pd("dns", "check", "example.com", "--json").stdout)
    assert report["spf"]["state"] == "invalid"  # the redirect is then reached: permerror
    assert "“redirect=gone.example” leads to gone.example" in report["spf"]["message"]
    assert report["spf"]["record"] == "v=spf1 include:spf.host.example"
    assert report["spf"]["warning"] == ""


def test_dns_check_json_says_what_receivers_make_of_dkim_dmarc_and_mx(pd):
    pd.server.set_txt("spf.host.example", "v=spf1 ip4:192.0.2.1 -all")
    pd.server.set_txt("example.com", "v=spf1 include:spf.host.example -all")
    pd.server.set_txt("_dmarc.example.com", "v=DMARC1; p=none; rua=mailto:d@reports.example.net")
    pd.server.set_mx("example.com", [(0, ".")])
    assert_ok(pd("dkim", "enable", "example.com"))
    record = json.loads(pd("dkim", "record", "example.com", "--json").stdout)
    pd.server.set_txt(record["host"], record["value"].replace("k=rsa;", "k=rsa; t=y;"))
    report = json.loads(pd("dns", "check", "example.com", "--json").stdout)
    dkim, dmarc, mx = report["dkim"], report["dmarc"], report["mx"]
    assert (dkim["state"], dkim["selector"], dkim["bits"]) == ("testing", "mail", 2048)
    assert dkim["value"] == record["value"]  # the corrected record: no test flag
    assert [(k["status"], k["state"]) for k in dkim["keys"]] == [("signing", "testing")]
    assert dmarc["policy"] == "none"
    assert dmarc["alignment"] == {
        "adkim": "r",
        "aspf": "r",
        "dkim_aligned": False,
        "spf_aligned": True,
        "aligned": True,
    }
    assert dmarc["policy_none_since"]  # dated from this first check
    [external] = dmarc["reports"]
    assert (external["uri"], external["authorized"]) == ("mailto:d@reports.example.net", False)
    assert external["host"] == "example.com._report._dmarc.reports.example.net"
    assert any(external["host"] in w for w in dmarc["warnings"])
    assert (mx["state"], mx["found"]) == ("null_mx", [[0, "."]])


def test_dns_hosts_reverse_dns_and_blocklists_for_the_operator(pd):
    pd.server.set_ptr("1.2.0.192.in-addr.arpa", "mail.host.example")
    pd.server.set_a("mail.host.example", "192.0.2.1")
    pd.server.set_a("1.2.0.192.bl.test", "127.0.0.3")
    pd.server.set_txt("1.2.0.192.bl.test", "listed for testing")
    settings = {
        "POSTDESK_SENDING_IPS": "192.0.2.1,198.51.100.7",
        "POSTDESK_SENDING_HELO": "mail.host.example",
        "POSTDESK_DNSBL_ZONES": "bl.test",
    }
    result = pd("dns", "hosts", "--json", **settings)
    assert_ok(result)
    first, second = json.loads(result.stdout)
    assert first["ip"] == "192.0.2.1"
    assert first["reverse_dns"]["state"] == "confirmed"
    assert first["blocklists"] == [
        {
            "zone": "bl.test",
            "query": "1.2.0.192.bl.test",
            "state": "listed",
            "codes": ["127.0.0.3"],
            "reason": "listed for testing",
        }
    ]
    assert second["reverse_dns"]["state"] == "no_ptr"
    assert second["blocklists"][0]["state"] == "not_listed"
    text = pd("dns", "hosts", **settings).stdout
    assert "192.0.2.1: bl.test: listed (127.0.0.3): listed for testing" in text
    assert "198.51.100.7: reverse DNS: no_ptr: 198.51.100.7 has no PTR record" in text

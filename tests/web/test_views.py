"""The client area through Django's test client: what each role sees and may do, errors beside
their fields in both languages, and fixed query counts."""

from __future__ import annotations

import html
import re

import pytest
from django.urls import URLResolver, get_resolver, reverse
from django_tasks_db.models import DBTaskResult

from postdesk.dataplane.passwords import verify_password
from postdesk.dns.models import DkimKey, DkimKeyStatus
from postdesk.dns.services import dkim_enable
from postdesk.dns.status import dns_check_domain
from postdesk.mail.choices import AddressKind
from postdesk.mail.models import Address, Mailbox
from postdesk.mail.services import mailbox_create
from tests.budgets import query_budget
from tests.conftest import GOOD_PASSWORD

pytestmark = pytest.mark.django_db


def _web_routes():
    """Every route of the client area, read from the resolver so new ones are covered."""
    for entry in get_resolver().url_patterns:
        if isinstance(entry, URLResolver) and entry.app_name == "web":
            return [(p.name, set(p.pattern.converters)) for p in entry.url_patterns]
    raise AssertionError("the web app's URLs are not included")


def _url(name: str, params: set[str], domain: str = "example.com") -> str:
    kwargs = {}
    if "domain" in params:
        kwargs["domain"] = domain
    if "local_part" in params:
        kwargs["local_part"] = "info" if name.startswith("forward") else "marie"
    return reverse(f"web:{name}", kwargs=kwargs)


DOMAIN_ROUTES = [name for name, params in _web_routes() if "domain" in params]


def _text(response) -> str:
    # <wbr> lets long addresses wrap at their "@"; the text a person reads has none.
    return re.sub(r"\s+", " ", response.content.decode()).replace("<wbr>", "")


# --- Login, language, domains ---------------------------------------------------------------


def test_pages_need_a_login(client, domain):
    response = client.get(reverse("web:dashboard", args=["example.com"]))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("web:login"))


def test_ping_answers_ok_to_a_logged_in_user_only(client, owner, django_assert_num_queries):
    url = reverse("web:ping")
    anonymous = client.get(url)
    assert anonymous.status_code == 302
    assert anonymous["Location"].startswith(reverse("web:login"))
    client.force_login(owner.user)
    # The session and its user: what every page pays before its own work.
    with django_assert_num_queries(query_budget("page:web:ping")):
        response = client.get(url)
    assert (response.status_code, response.content) == (200, b"ok")
    assert response["Content-Type"].startswith("text/plain")


def test_login_then_the_domains_of_the_users_clients_only(client, owner, domain, other_domain):
    owner.user.set_password("A-good-passw0rd!")
    owner.user.save()
    page = client.get(reverse("web:login"))
    assert 'for="id_username"' in page.content.decode()
    response = client.post(
        reverse("web:login"),
        {"username": "owner@example.org", "password": "A-good-passw0rd!"},
        follow=True,
    )
    text = _text(response)
    assert "example.com" in text
    assert "example.net" not in text


def test_wrong_password_is_said_on_the_login_page(client, owner):
    response = client.post(
        reverse("web:login"), {"username": "owner@example.org", "password": "nope"}
    )
    assert response.status_code == 200
    assert "enter a correct" in _text(response).lower()


def test_language_switch_to_french(owner_browser, domain):
    url = reverse("web:dashboard", args=["example.com"])
    response = owner_browser.post(
        reverse("web:set_language"), {"language": "fr", "next": url}, follow=True
    )
    text = _text(response)
    assert '<html lang="fr">' in text
    assert "Boîtes courriel" in text  # the type filter, from the committed catalogue


# --- Every page for every role; nothing for another client ---------------------------------


@pytest.mark.parametrize("role", ["owner", "admin", "viewer"])
def test_every_page_renders_for_each_role(request, role, domain, mailbox, forward):
    browser = request.getfixturevalue(f"{role}_browser")
    for name in ["domains", "dashboard", "mailbox_edit", "forward_edit"]:
        params = dict(_web_routes())[name]
        # With one domain, the domains list is its dashboard (a redirect).
        response = browser.get(_url(name, params), follow=True)
        assert response.status_code == 200, name
        assert b'<main id="main"' in response.content


def test_viewer_sees_no_write_controls(viewer_browser, domain, mailbox, forward):
    dashboard = _text(viewer_browser.get(reverse("web:dashboard", args=["example.com"])))
    assert "New email address" not in dashboard
    assert "New forward" not in dashboard
    assert "Enable DKIM" not in dashboard
    edit = _text(viewer_browser.get(reverse("web:mailbox_edit", args=["example.com", "marie"])))
    assert "only allows viewing" in edit
    assert 'type="submit"' not in edit.split('id="mailbox-form"')[1].split("</form>")[0]
    assert "Change password" not in edit
    assert "Delete permanently" not in edit


def test_owner_sees_write_controls(owner_browser, domain):
    dashboard = _text(owner_browser.get(reverse("web:dashboard", args=["example.com"])))
    assert "New email address" in dashboard
    assert "New forward" in dashboard
    assert "Enable DKIM" in dashboard


@pytest.mark.parametrize("name", DOMAIN_ROUTES)
def test_another_clients_user_gets_404_on_every_url(outsider_browser, name, mailbox, forward):
    url = _url(name, dict(_web_routes())[name])
    statuses = {outsider_browser.get(url).status_code, outsider_browser.post(url).status_code}
    # 405 only answers the method a route never accepts, whatever the domain.
    assert 404 in statuses and statuses <= {404, 405}, statuses


@pytest.mark.parametrize("name", DOMAIN_ROUTES)
def test_an_unknown_domain_is_404_too(owner_browser, name, domain):
    url = _url(name, dict(_web_routes())[name], domain="nowhere.example")
    statuses = {owner_browser.get(url).status_code, owner_browser.post(url).status_code}
    assert 404 in statuses and statuses <= {404, 405}, statuses


# Looking is enough to ask for a DNS check; every other POST changes something.
VIEWER_MAY_POST = {"dns_check"}


@pytest.mark.parametrize("name", DOMAIN_ROUTES)
def test_viewer_cannot_change_anything(viewer_browser, name, mailbox, forward):
    url = _url(name, dict(_web_routes())[name])
    data = {
        "username": "new",
        "password": GOOD_PASSWORD,
        "password_confirmation": GOOD_PASSWORD,
        "quota_mb": "1",
        "name": "new",
        "destinations": ["x@example.org"],
        "confirm": "yes",
    }
    status = viewer_browser.post(url, data).status_code
    if name in VIEWER_MAY_POST:
        assert status == 302
    else:
        assert status in (403, 405), (name, status)
    mailbox.refresh_from_db()
    assert mailbox.quota_mb == 5120
    assert verify_password(GOOD_PASSWORD, mailbox.password_hash)
    assert set(Address.objects.values_list("local_part", flat=True)) == {
        "marie",
        "m.dupont",
        "info",
    }
    assert not DkimKey.objects.exists()


# --- Dashboard --------------------------------------------------------------------------------


def test_dashboard_shows_usage_and_the_address_list(owner_browser, domain, mailbox, forward):
    Mailbox.objects.filter(pk=mailbox.pk).update(used_bytes=3 * 1024 * 1024)
    text = _text(owner_browser.get(reverse("web:dashboard", args=["example.com"])))
    assert "3.0 MB" in text
    assert "marie@example.com" in text
    assert "m.dupont@example.com" in text
    assert "marie@gmail.com" in text
    assert "info@example.com" in text
    assert "boss@example.org" in text
    assert "Not checked yet" in text  # SPF, before any DNS check


def test_each_row_links_to_its_edit_page(owner_browser, operator, domain, mailbox, forward):
    """The rows' links are built from one reversed URL a kind, not one `{% url %}` a row:
    each must still be the URL `reverse` gives, dots and hyphens of a name included."""
    mailbox_create(actor=operator, domain=domain, username="j.doe-2", password=GOOD_PASSWORD)
    page = owner_browser.get(
        reverse("web:dashboard", args=["example.com"]),
        headers={"HX-Request": "true", "HX-Target": "address-list"},
    ).content.decode()
    links = set(
        re.findall(r'class="address-link" href="([^"]+)"|href="([^"]+)" class="address-link"', page)
    )
    expected = {
        reverse("web:mailbox_edit", args=["example.com", "marie"]),
        reverse("web:mailbox_edit", args=["example.com", "j.doe-2"]),
        reverse("web:forward_edit", args=["example.com", "info"]),
    }
    assert {a or b for a, b in links} == expected
    assert f'href="{reverse("web:forward_edit", args=["example.com", "info"])}?open=delete"' in page


def test_spf_and_dkim_cards_after_a_check(owner_browser, operator, domain, dns_server):
    dkim_enable(actor=operator, domain=domain)
    dns_server.set_txt("example.com", "v=spf1 include:spf.postdesk.example ~all")
    # Our record, which receivers follow (RFC 7208: an include without one is a permerror).
    dns_server.set_txt("spf.postdesk.example", "v=spf1 ip4:192.0.2.0/24 -all")
    dns_check_domain(domain)
    text = _text(owner_browser.get(reverse("web:dashboard", args=["example.com"])))
    assert "Configured" in text
    assert "v=spf1 include:spf.postdesk.example ~all" in text
    assert "Pending" in text  # DKIM record not published
    assert "mail._domainkey.example.com" in text
    assert "v=DKIM1; k=rsa; p=" in text
    assert "Disable DKIM" in text


def test_spf_warning_for_other_senders_shows_on_the_card(owner_browser, domain, dns_server):
    dns_server.set_txt("spf.postdesk.example", "v=spf1 ip4:192.0.2.0/24 -all")
    dns_server.set_txt(
        "example.com", "v=spf1 include:spf.postdesk.example include:gone.example -all"
    )
    dns_check_domain(domain)
    text = _text(owner_browser.get(reverse("web:dashboard", args=["example.com"])))
    assert "Configured" in text
    assert "receiving servers reject it for your other senders" in text
    assert "gone.example, which publishes no SPF record" in text


def test_spf_not_configured_shows_the_record_to_publish(owner_browser, domain, dns_server):
    dns_check_domain(domain)
    text = _text(owner_browser.get(reverse("web:dashboard", args=["example.com"])))
    assert "Not configured" in text
    assert 'value="v=spf1 include:spf.postdesk.example ~all"' in text
    assert "What needs to be configured?" in text


def test_enable_then_disable_dkim(owner_browser, domain):
    response = owner_browser.post(reverse("web:dkim_enable", args=["example.com"]), follow=True)
    text = _text(response)
    assert "DKIM is enabled" in text
    assert "mail._domainkey.example.com" in text
    assert DkimKey.objects.filter(status=DkimKeyStatus.SIGNING).count() == 1
    # Without the confirmation nothing changes.
    refused = owner_browser.post(reverse("web:dkim_disable", args=["example.com"]), follow=True)
    assert "Confirm that you want to disable DKIM" in _text(refused)
    assert DkimKey.objects.filter(status=DkimKeyStatus.SIGNING).count() == 1
    owner_browser.post(reverse("web:dkim_disable", args=["example.com"]), {"confirm": "yes"})
    assert not DkimKey.objects.filter(status=DkimKeyStatus.SIGNING).exists()


def test_check_now_queues_a_dns_check(viewer_browser, domain):
    response = viewer_browser.post(reverse("web:dns_check", args=["example.com"]), follow=True)
    assert "A DNS check has been requested" in _text(response)
    assert DBTaskResult.objects.count() == 1


# --- Address list: search, filter, sort, pages ------------------------------------------------


def test_htmx_search_returns_the_list_alone_and_the_url_the_full_page(
    owner_browser, domain, mailbox, forward
):
    url = reverse("web:dashboard", args=["example.com"]) + "?q=dupont"
    partial = owner_browser.get(url, headers={"HX-Request": "true", "HX-Target": "address-list"})
    assert partial.status_code == 200
    text = _text(partial)
    assert "<html" not in text
    assert "marie@example.com" in text
    assert "info@example.com" not in text
    assert "HX-Request" in partial["Vary"]
    full = _text(owner_browser.get(url))
    assert "<html" in full
    assert 'value="dupont"' in full
    assert "info@example.com" not in full.split('id="address-list"')[1]


def test_search_by_destination_type_filter_and_bad_parameters(
    owner_browser, domain, mailbox, forward
):
    base = reverse("web:dashboard", args=["example.com"])
    by_destination = _text(owner_browser.get(base + "?q=boss@")).split('id="address-list"')[1]
    assert "info@example.com" in by_destination and "marie@example.com" not in by_destination
    forwards = _text(owner_browser.get(base + "?type=forward")).split('id="address-list"')[1]
    assert "info@example.com" in forwards and "marie@example.com" not in forwards
    odd = owner_browser.get(base + "?type=nope&sort=nope&page=abc")
    assert odd.status_code == 200


def test_sort_by_storage_and_pages(owner_browser, domain, settings):
    from bench.dataset import add_addresses

    settings.POSTDESK_PAGE_SIZE = 5
    add_addresses(domain, mailboxes=12, aliases=0, forwards=0)
    base = reverse("web:dashboard", args=["example.com"])
    page = _text(owner_browser.get(base + "?sort=storage"))
    largest = Mailbox.objects.order_by("-used_bytes").first().address.local_part
    table = page.split('id="address-list"')[1].split("<tbody>")[1]
    assert table.index(largest) < 300
    assert 'aria-sort="descending"' in page
    assert "Page 1 of 3" in page
    # Next is a cursor link: the page after the last row shown, as a bookmarkable URL.
    next_url = html.unescape(page.split('rel="next" href="')[1].split('"')[0])
    assert next_url.startswith(base + "?sort=storage&cursor=")
    second = _text(owner_browser.get(next_url))
    second_rows = second.split('id="address-list"')[1].split("</tbody>")[0]
    first_rows = table.split("</tbody>")[0]
    shown = [
        reverse("web:mailbox_edit", args=["example.com", m.local_part])
        for m in Mailbox.objects.order_by("-used_bytes", "local_part")
    ]
    assert all(f'"{url}"' in first_rows for url in shown[:5])
    assert all(f'"{url}"' in second_rows for url in shown[5:10])
    assert not any(f'"{url}"' in first_rows for url in shown[5:10])
    assert 'rel="prev"' in second and 'rel="next"' in second
    # A link by page number, made before cursors, still opens that page.
    last = _text(owner_browser.get(base + "?sort=storage&page=3"))
    assert "Page 3 of 3" in last
    # A cursor altered or of another list is refused, not read.
    assert owner_browser.get(next_url.replace("sort=storage", "sort=growth")).status_code == 400


def test_sort_by_control_works_without_javascript_and_follows_htmx_swaps(
    owner_browser, domain, mailbox, forward
):
    base = reverse("web:dashboard", args=["example.com"])
    # A plain GET form: the "Sort by" select is labelled and shows the order of the URL.
    full = _text(owner_browser.get(base + "?sort=storage_asc&q=e"))
    assert '<label for="id_sort">Sort by</label>' in full
    select = full.split('<select id="id_sort" name="sort">')[1].split("</select>")[0]
    assert '<option value="storage_asc" selected>Storage, smallest first</option>' in select
    assert select.count(" selected") == 1
    # The count is a live region outside the swapped list, present once.
    assert full.count('id="address-count"') == 1
    assert '<p id="address-count" class="list-summary" role="status" aria-live="polite">' in full
    # An htmx swap of the list updates both in place (out of band), in the user's language.
    owner_browser.cookies["django_language"] = "fr"
    partial = _text(
        owner_browser.get(
            base + "?sort=storage&type=all",
            headers={"HX-Request": "true", "HX-Target": "address-list"},
        )
    )
    assert '<p id="address-count" hx-swap-oob="innerHTML">2 adresses </p>' in partial
    assert '<option value="storage" selected>Stockage, du plus grand au plus petit' in partial
    one = _text(
        owner_browser.get(
            base + "?q=boss", headers={"HX-Request": "true", "HX-Target": "address-list"}
        )
    )
    assert '<p id="address-count" hx-swap-oob="innerHTML">1 adresse </p>' in one


# --- Mailbox form -----------------------------------------------------------------------------


def _mailbox_data(**overrides):
    data = {
        "username": "jean",
        "password": GOOD_PASSWORD,
        "password_confirmation": GOOD_PASSWORD,
        "aliases": ["j.martin", "jm", ""],
        "destinations": ["jean@gmail.com"],
        "quota_mb": "2048",
        "eas_enabled": "on",
        "keep_original_sender": "on",
    }
    data.update(overrides)
    return data


def test_create_a_mailbox(owner_browser, domain):
    response = owner_browser.post(
        reverse("web:mailbox_create", args=["example.com"]), _mailbox_data(), follow=True
    )
    assert "Mailbox jean@example.com created." in _text(response)
    mailbox = Mailbox.objects.get(address__local_part="jean")
    assert mailbox.quota_mb == 2048 and mailbox.eas_enabled and not mailbox.mapi_enabled
    assert mailbox.keep_original_sender and not mailbox.delete_after_forwarding
    assert sorted(a.address.local_part for a in mailbox.aliases.all()) == ["j.martin", "jm"]
    assert verify_password(GOOD_PASSWORD, mailbox.password_hash)


def test_errors_beside_their_fields_and_the_form_keeps_what_was_typed(owner_browser, mailbox):
    response = owner_browser.post(
        reverse("web:mailbox_create", args=["example.com"]),
        _mailbox_data(
            username="jean!", aliases=["m.dupont", "ok.alias"], quota_mb="-3", password="short"
        ),
    )
    assert response.status_code == 400
    text = _text(response)
    assert not Address.objects.filter(local_part__in=["jean", "ok.alias"]).exists()
    username_part = text.split('id="id_username"')[1]
    assert "“!” is not allowed" in username_part.split('id="id_username-errors"')[1][:300]
    assert 'value="jean!"' in text
    assert "Enter a whole number of megabytes" in text.split('id="id_quota_mb-errors"')[1][:300]
    assert 'value="ok.alias"' in text  # the tags typed are kept
    assert 'value="jean@gmail.com"' in text


def test_weak_password_is_reported_beside_the_password(owner_browser, domain):
    response = owner_browser.post(
        reverse("web:mailbox_create", args=["example.com"]),
        _mailbox_data(password="short", password_confirmation="short"),
    )
    assert response.status_code == 400
    text = _text(response)
    assert "Use at least 12 characters." in text.split("data-password-status")[1][:1000]
    assert not Mailbox.objects.exists()


def test_taken_alias_is_reported_beside_the_aliases(owner_browser, mailbox):
    response = owner_browser.post(
        reverse("web:mailbox_create", args=["example.com"]), _mailbox_data(aliases=["m.dupont"])
    )
    assert response.status_code == 400
    errors = _text(response).split('id="id_aliases-errors"')[1][:300]
    assert "m.dupont@example.com is already used as an alias." in errors


def test_errors_in_french(owner_browser, domain):
    owner_browser.cookies["django_language"] = "fr"
    response = owner_browser.post(
        reverse("web:mailbox_create", args=["example.com"]),
        _mailbox_data(username=".jean", quota_mb="x"),
    )
    text = _text(response)
    assert '<html lang="fr">' in text
    username_errors = text.split('id="id_username-errors"')[1][:300]
    assert "Un nom ne peut pas commencer ni se terminer par un point." in username_errors
    quota_errors = text.split('id="id_quota_mb-errors"')[1][:300]
    assert "Saisissez un nombre entier de mégaoctets" in quota_errors
    assert 'value="x"' in text


def test_edit_a_mailbox_and_remove_an_alias(owner_browser, mailbox):
    url = reverse("web:mailbox_edit", args=["example.com", "marie"])
    page = _text(owner_browser.get(url))
    assert 'value="m.dupont"' in page
    assert "stay reserved for 15 minutes" in page
    assert "will be disconnected" in page
    response = owner_browser.post(
        url,
        {"aliases": ["marie.d"], "destinations": [], "quota_mb": "10240", "mapi_enabled": "on"},
        follow=True,
    )
    assert "Changes saved." in _text(response)
    assert "m.dupont@example.com stays reserved for 15 minutes" in _text(response)
    mailbox.refresh_from_db()
    assert mailbox.quota_mb == 10240 and mailbox.mapi_enabled and not mailbox.eas_enabled
    assert Address.objects.get(local_part="m.dupont").kind == AddressKind.RELEASED
    # The removed alias stays reserved: taking it again is refused, beside the field.
    again = owner_browser.post(url, {"aliases": ["marie.d", "m.dupont"], "quota_mb": "0"})
    assert again.status_code == 400
    assert "stays reserved for" in _text(again).split('id="id_aliases-errors"')[1][:400]


def test_the_reservation_notice_words_a_one_minute_delay_and_french(
    owner_browser, mailbox, settings
):
    from datetime import timedelta

    settings.POSTDESK_ALIAS_REUSE_DELAY = timedelta(minutes=1)
    url = reverse("web:mailbox_edit", args=["example.com", "marie"])
    response = owner_browser.post(
        url, {"aliases": [], "destinations": [], "quota_mb": "0"}, follow=True
    )
    assert "m.dupont@example.com stays reserved for 1 minute: no address" in _text(response)
    owner_browser.post(url, {"aliases": ["m.dupont2"], "destinations": [], "quota_mb": "0"})
    french = owner_browser.post(
        url,
        {"aliases": [], "destinations": [], "quota_mb": "0"},
        follow=True,
        HTTP_ACCEPT_LANGUAGE="fr",
    )
    assert "m.dupont2@example.com reste réservé pendant 1 minute : aucune adresse" in _text(french)


def test_change_the_password(owner_browser, mailbox):
    url = reverse("web:mailbox_password", args=["example.com", "marie"])
    new = "Zx9#kLm2!pQrT"
    weak = owner_browser.post(url, {"password": "marie-Abc123!x", "password_confirmation": "x"})
    assert weak.status_code == 400
    text = _text(weak)
    assert "data-open-on-load" in text
    assert "Do not include the username." in text.split('id="id_password-errors"')[1][:400]
    response = owner_browser.post(url, {"password": new, "password_confirmation": new}, follow=True)
    assert "has been changed" in _text(response)
    mailbox.refresh_from_db()
    assert verify_password(new, mailbox.password_hash)


def _settings_form(page: str) -> str:
    """The settings form of a mailbox's edit page, its CSRF token (new on each page) left out."""
    form = page.split('id="mailbox-form"')[1].split("</form>")[0]
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]*"', "", form)


def test_a_refused_password_change_shows_the_edit_page_as_a_get_does(owner_browser, mailbox):
    """One rendering of the edit page: after a refused password, the settings form is the
    one a GET shows (the stored settings as its initial values)."""
    edit = reverse("web:mailbox_edit", args=["example.com", "marie"])
    url = reverse("web:mailbox_password", args=["example.com", "marie"])
    refused = owner_browser.post(url, {"password": "marie-Abc123!x", "password_confirmation": "x"})
    assert refused.status_code == 400
    assert "m.dupont" in _settings_form(_text(refused))
    assert _settings_form(_text(refused)) == _settings_form(_text(owner_browser.get(edit)))


def test_delete_a_mailbox(owner_browser, mailbox):
    response = owner_browser.post(
        reverse("web:mailbox_delete", args=["example.com", "marie"]), follow=True
    )
    text = _text(response)
    assert "Mailbox marie@example.com deleted." in text
    assert "m.dupont@example.com" not in text.split('id="address-list"')[1]
    assert not Mailbox.objects.exists()


def test_generated_password_passes_the_checks(owner_browser, domain):
    response = owner_browser.get(
        reverse("web:password_generate", args=["example.com"]) + "?username=jean"
    )
    password = response.json()["password"]
    assert len(password) >= 12 and "jean" not in password.lower()
    assert "no-store" in response["Cache-Control"] or "no-cache" in response["Cache-Control"]


# --- Forward form -----------------------------------------------------------------------------


def test_create_edit_and_delete_a_forward(owner_browser, domain):
    create = reverse("web:forward_create", args=["example.com"])
    empty = owner_browser.post(create, {"name": "sales", "destinations": [""]})
    assert empty.status_code == 400
    assert "Add at least one destination address." in _text(empty)
    owner_browser.post(create, {"name": "sales", "destinations": ["a@example.org"]})
    edit = reverse("web:forward_edit", args=["example.com", "sales"])
    assert 'value="a@example.org"' in _text(owner_browser.get(edit))
    owner_browser.post(edit, {"destinations": ["a@example.org", "b@example.org"]})
    assert 'value="b@example.org"' in _text(owner_browser.get(edit))
    response = owner_browser.post(
        reverse("web:forward_delete", args=["example.com", "sales"]), follow=True
    )
    assert "Forward sales@example.com deleted." in _text(response)


# --- Query counts -----------------------------------------------------------------------------


@pytest.mark.parametrize("with_dns", [False, True])
def test_dashboard_query_count_is_fixed(
    owner_browser, owner, operator, domain, django_assert_max_num_queries, with_dns, dns_server
):
    from bench.dataset import add_addresses

    if with_dns:
        dkim_enable(actor=operator, domain=domain)
        dns_check_domain(domain)
    url = reverse("web:dashboard", args=["example.com"])
    counts = []
    for mailboxes, aliases, forwards in [(8, 4, 2), (300, 200, 100)]:
        add_addresses(domain, mailboxes=mailboxes, aliases=aliases, forwards=forwards)
        with django_assert_max_num_queries(query_budget("page:web:dashboard")) as captured:
            assert owner_browser.get(url).status_code == 200
        counts.append(len(captured))
        with django_assert_max_num_queries(query_budget("page:web:address_list")) as captured:
            owner_browser.get(
                url + "?q=user&sort=storage",
                headers={"HX-Request": "true", "HX-Target": "address-list"},
            )
    assert counts[0] == counts[1]


def test_domains_page_query_count(owner_browser, domain, django_assert_max_num_queries):
    with django_assert_max_num_queries(query_budget("page:web:domains")):
        owner_browser.get(reverse("web:domains"))


def test_domain_summary_counts_in_one_query(
    owner, domain, mailbox, forward, django_assert_num_queries
):
    from postdesk.mail.selectors import domain_summary

    Mailbox.objects.filter(pk=mailbox.pk).update(used_bytes=1234)
    domain_summary(actor=owner, domain=domain)  # reads and caches the role
    with django_assert_num_queries(1):
        summary = domain_summary(actor=owner, domain=domain)
    assert (summary.used_bytes, summary.mailboxes, summary.aliases, summary.forwards) == (
        1234,
        1,
        1,
        1,
    )
    assert (summary.eas_accounts, summary.mapi_accounts) == (1, 0)


def test_mailbox_edit_page_query_count_is_fixed(
    owner_browser, operator, domain, mailbox, django_assert_max_num_queries
):
    from bench.dataset import add_addresses

    from postdesk.mail.services import mailbox_update

    url = reverse("web:mailbox_edit", args=["example.com", "marie"])
    counts = []
    for aliases, destinations in [(1, 1), (30, 20)]:
        mailbox_update(
            actor=operator,
            mailbox=mailbox,
            aliases=[f"marie{n}" for n in range(aliases)],
            destinations=[f"marie{n}@gmail.com" for n in range(destinations)],
        )
        add_addresses(domain, mailboxes=20, aliases=10, forwards=5)
        with django_assert_max_num_queries(query_budget("page:web:mailbox_edit")) as captured:
            page = _text(owner_browser.get(url))
        assert f"marie{aliases - 1}@example.com" in page
        counts.append(len(captured))
    assert counts[0] == counts[1]

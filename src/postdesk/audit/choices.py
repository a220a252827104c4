"""Every action the audit log records, with what it means in the customer's words.

The name (`mailbox.update`) is what the log stores and the API returns, so it never changes;
the label is what the client area shows. A service records one of these; an event whose name
is not here (written by an older version) shows as recorded.
"""

from django.db import models
from django.utils.translation import gettext_lazy as _


class Action(models.TextChoices):
    DOMAIN_ADD = "domain.add", _("Domain added")
    MAILBOX_CREATE = "mailbox.create", _("Mailbox created")
    MAILBOX_UPDATE = "mailbox.update", _("Mailbox changed")
    MAILBOX_PASSWORD = "mailbox.password", _("Mailbox password changed")
    MAILBOX_DELETE = "mailbox.delete", _("Mailbox deleted")
    FORWARD_CREATE = "forward.create", _("Forward created")
    FORWARD_UPDATE = "forward.update", _("Forward changed")
    FORWARD_DELETE = "forward.delete", _("Forward deleted")
    DKIM_ENABLE = "dkim.enable", _("DKIM enabled")
    DKIM_DISABLE = "dkim.disable", _("DKIM disabled")
    DKIM_PREPARE = "dkim.prepare", _("DKIM key prepared")
    DKIM_ROTATE = "dkim.rotate", _("DKIM key rotated")
    MTA_STS_MODE = "mta_sts.mode", _("MTA-STS mode changed")
    DOMAIN_DAV = "domain.dav", _("Calendar and contact apps switched")
    DELIVERABILITY_TEST = "deliverability.test", _("Deliverability test sent")
    CLIENT_CREATE = "client.create", _("Account created")
    CLIENT_SET_PLAN = "client.set_plan", _("Plan changed")
    CLIENT_SUSPEND = "client.suspend", _("Account suspended")
    CLIENT_UNSUSPEND = "client.unsuspend", _("Account reactivated")
    CLIENT_TERMINATE = "client.terminate", _("Account terminated")
    PLAN_CREATE = "plan.create", _("Plan created")
    MEMBERSHIP_ADD = "membership.add", _("User added")
    USER_CREATE = "user.create", _("User created")
    USER_REACTIVATE = "user.reactivate", _("User reactivated")
    ACCOUNT_TOTP_ENABLE = "account.totp_enable", _("Two-factor authentication turned on")
    ACCOUNT_TOTP_DISABLE = "account.totp_disable", _("Two-factor authentication turned off")
    ACCOUNT_SESSIONS_END = "account.sessions_end", _("Other sessions logged out")
    ACCOUNT_PASSWORD_CHANGE = "account.password_change", _("Login password changed")
    TOKEN_CREATE = "token.create", _("API token created")
    TOKEN_REVOKE = "token.revoke", _("API token revoked")
    HOST_ADD = "host.add", _("Mail host added")
    HOST_DRAIN = "host.drain", _("Mail host drained")
    MAILBOX_MOVE = "mailbox.move", _("Mailbox move queued")


# The actions whose `changes` hold [before, after] for each field that changed; the others
# record the values the object was made with.
RECORDS_BEFORE_AFTER = frozenset(
    {Action.MAILBOX_UPDATE, Action.FORWARD_UPDATE, Action.MTA_STS_MODE, Action.DOMAIN_DAV}
)

# The fields an event's `changes` name, as the client area shows them: every key a service
# records (tests/web/test_first_hour_words.py runs each service and checks).
FIELD_LABELS = {
    # Mailboxes and forwards (mail.services)
    "aliases": _("Aliases"),
    "aliases_added": _("Aliases added"),
    "aliases_removed": _("Aliases removed"),
    "destinations": _("Destinations"),
    "quota_mb": _("Disk space limit (MB)"),
    "delete_after_forwarding": _("Delete after forwarding"),
    "keep_original_sender": _("Keep original sender and recipients"),
    "eas_enabled": _("ActiveSync (EAS)"),
    "mapi_enabled": _("MAPI/Exchange"),
    # Domains' DNS (dns.services)
    "mta_sts_mode": _("MTA-STS mode"),
    # Domains' groupware (mail.services)
    "dav_enabled": _("Calendar and contact apps (CalDAV/CardDAV)"),
    # Accounts and users (tenancy.services, workflows.clients)
    "role": _("Role"),
    "suspended_at": _("Suspended since"),
    "client_id": _("Account number"),
    "domains": _("Domains"),
    "mailboxes": _("Mailboxes"),
    "deactivated_users": _("Users deactivated"),
    # Plans (billing.services)
    "plan": _("Plan"),
    "starts_at": _("Starts on"),
    "cycle_months": _("Billing cycle (months)"),
    "currency": _("Currency"),
    "prices": _("Prices"),
    "storage_limit_mb": _("Plan disk space limit (MB)"),
    "storage_gb_price": _("Disk space price (per GB)"),
    "eas_price": _("ActiveSync (EAS) price"),
    "mapi_price": _("MAPI/Exchange price"),
    "eas_mapi_price": _("EAS + MAPI price"),
    # Mail hosts (mail.hosts)
    "address": _("Address"),
    "roles": _("Roles"),
    # API tokens (api.services)
    "owner": _("Token of"),
    "scope": _("Access"),
    "expires_at": _("Expires on"),
}

# The fields whose values are moments (ISO 8601 as recorded): shown in the reader's format.
DATETIME_FIELDS = frozenset({"suspended_at", "starts_at", "expires_at"})

# The fields whose values are amounts of money (decimals recorded as text): shown with the
# reader's decimal separator.
MONEY_FIELDS = frozenset({"storage_gb_price", "eas_price", "mapi_price", "eas_mapi_price"})

# The fields whose values are a choice's name, in words: the same words as tenancy's Role and
# api's TokenScope (audit imports neither; a test checks they agree).
VALUE_LABELS = {
    "role": {"owner": _("Owner"), "admin": _("Administrator"), "viewer": _("Viewer")},
    "scope": {"read": _("Read"), "write": _("Read and write")},
    "mta_sts_mode": {"testing": _("Testing"), "enforce": _("Enforce")},
}

# Where a change came from (tenancy.access.Source's values), in the customer's words.
SOURCE_LABELS = {
    "web": _("Client area"),
    "api": _("API"),
    "cli": _("Provider"),
    "system": _("System"),
}


def action_label(name: str) -> str:
    """What an action means, or its name as recorded when it is not one we know."""
    try:
        return str(Action(name).label)
    except ValueError:
        return name

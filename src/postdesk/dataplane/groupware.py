"""SOGo, the groupware behind the gate: webmail (/SOGo/), ActiveSync, CalDAV/CardDAV.

SOGo reads its users from the `dataplane_sogo_users` view of the panel's database and checks
their `{ARGON2ID}` hash itself (libsodium), so a new mailbox logs in at once and there is no
sync step. It reads mail from our Dovecot over IMAP and sends through our submission port
(so OpenDKIM signs), both with STARTTLS and the mailbox's own credentials. SOGo keeps its
own tables (profiles, folders, sessions, calendars and contacts) only in PostgreSQL or
MySQL: the groupware runs when the panel's database is PostgreSQL, in that same database
(tables named `sogo_*`), and not on SQLite (docs/dataplane.md says why).

Its configuration is one property list: for the loopback stack, the `sogod` user-defaults
domain of a private GNUstep tree (GNUSTEP_CONFIG_FILE names it), which overrides Debian's
/etc/sogo/sogo.conf key by key without touching it; for the host (`render --system`),
/etc/sogo/sogo.conf itself.
"""

from __future__ import annotations

import plistlib
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import quote
from xml.parsers.expat import ExpatError

SOGOD = Path("/usr/sbin/sogod")
ACTIVESYNC_BUNDLE = Path("/usr/lib/GNUstep/SOGo/ActiveSync.SOGo")
WEB_RESOURCES = Path("/usr/lib/GNUstep/SOGo/WebServerResources")
USER = "sogo"
USERS_VIEW = "dataplane_sogo_users"
ENCRYPTION_KEY = "SOGoEncryptionKey"


def unavailable_reason(db: dict[str, Any], *, installed_here: bool = True) -> str:
    """Why the groupware cannot run on this database (and, with `installed_here`, on this
    machine); "" when it can."""
    if db["engine"] != "pgsql":
        return (
            "SOGo keeps its own tables only in PostgreSQL or MySQL: the groupware runs when "
            "the panel's database is PostgreSQL (DATABASE_URL)"
        )
    if installed_here:
        if not SOGOD.exists() or not ACTIVESYNC_BUNDLE.exists():
            return "Debian's sogo and sogo-activesync are not installed"
        if shutil.which("memcached") is None:
            return "Debian's memcached is not installed (SOGo's cache)"
    return ""


def database_url(db: dict[str, Any], table: str) -> str:
    """SOGo's URL for a table of the panel's PostgreSQL database."""
    login = quote(db["user"], safe="")
    if db["password"]:
        login += ":" + quote(db["password"], safe="")
    return f"postgresql://{login}@{db['host']}:{db['port']}/{quote(db['name'], safe='')}/{table}"


def defaults(
    *,
    db: dict[str, Any],
    users_db: dict[str, Any] | None = None,
    hostname: str,
    sogo_port: int,
    memcached_port: int,
    imap_port: int,
    submission_port: int,
    encryption_key: str,
    workers: int,
) -> dict[str, Any]:
    """SOGo's settings (its user defaults), for the panel's database and our mail daemons.
    `users_db`: where it reads the users' view, when not `db` (a replica, docs/scale.md);
    `encryption_key`: the key of its session cookies (a new one logs every webmail user out)."""
    loopback = "127.0.0.1"
    tls = "tls=YES&tlsVerifyMode=allowInsecureLocalhost"
    return {
        "WOPort": f"127.0.0.1:{sogo_port}",
        "WOWorkersCount": workers,
        # SOGo's own tables, in the panel's database. With OCSStoreURL, OCSAclURL and
        # OCSCacheFolderURL set, every user's calendars and contacts share three tables
        # instead of SOGo creating tables per user and folder.
        "SOGoProfileURL": database_url(db, "sogo_user_profile"),
        "OCSFolderInfoURL": database_url(db, "sogo_folder_info"),
        "OCSSessionsFolderURL": database_url(db, "sogo_sessions_folder"),
        "OCSEMailAlarmsFolderURL": database_url(db, "sogo_alarms_folder"),
        "OCSStoreURL": database_url(db, "sogo_store"),
        "OCSAclURL": database_url(db, "sogo_acl"),
        "OCSCacheFolderURL": database_url(db, "sogo_cache_folder"),
        "OCSAdminURL": database_url(db, "sogo_admin"),
        "SOGoUserSources": [
            {
                "type": "sql",
                "id": "postdesk",
                "viewURL": database_url(users_db or db, USERS_VIEW),
                "canAuthenticate": "YES",
                # Every client's mailboxes are in the view: no shared address book of them.
                "isAddressBook": "NO",
                "userPasswordAlgorithm": "argon2id",
                "prependPasswordScheme": "YES",
                # SOGo's own refusal, whatever the gate in front says (docs/dataplane.md).
                "ModulesConstraints": {"ActiveSync": {"activesync": "1"}},
            }
        ],
        "SOGoMailDomain": hostname,
        # STARTTLS on loopback, the certificate not verified (allowInsecureLocalhost: SOPE
        # checks the name against 127.0.0.1, which no certificate for the host name carries,
        # and the connection never leaves the host; Dovecot would even take it in clear).
        "SOGoIMAPServer": f"imap://{loopback}:{imap_port}/?{tls}",
        "SOGoMailingMechanism": "smtp",
        # The submission port, so the message is signed (OpenDKIM) like any client's.
        "SOGoSMTPServer": f"smtp://{loopback}:{submission_port}/?{tls}",
        "SOGoSMTPAuthenticationType": "PLAIN",
        "SOGoMemcachedHost": f"127.0.0.1:{memcached_port}",
        # Forwarding and filters are the panel's (its Sieve script); passwords too.
        "SOGoSieveServer": "",
        "SOGoSieveScriptsEnabled": "NO",
        "SOGoVacationEnabled": "NO",
        "SOGoForwardEnabled": "NO",
        "SOGoPasswordChangeEnabled": "NO",
        "SOGoMailAuxiliaryUserAccountsEnabled": "NO",
        ENCRYPTION_KEY: encryption_key,
        "SOGoTimeZone": "UTC",
        "SOGoSentFolderName": "Sent",
        "SOGoTrashFolderName": "Trash",
        "SOGoDraftsFolderName": "Drafts",
        "SOGoIMAPAclConformsToIMAPExt": "NO",
    }


# SOGo's tables that hold a user's data, as `defaults` names them: the folders (calendars,
# address books) listed in FOLDER_INFO by owner (c_path2), their content and ACLs by folder.
FOLDER_INFO = "sogo_folder_info"
FOLDER_CONTENT = ("sogo_store", "sogo_acl")
QUICK_PREFIX = "sogo_quick_"  # SOGo's per-kind index of the store (appointments, contacts)


def user_data_removal(tables: set[str]) -> list[str]:
    """What `sogo-tool remove` deletes of a user, as SQL statements taking the user's address
    once each (%s), for those of SOGo's `tables` that exist: the user's folders with their
    content, indexes and ACLs, the rights the user was given on others' folders, alarms,
    cache, preferences and settings."""
    if FOLDER_INFO not in tables:  # SOGo never started on this database
        return []
    owned = f"SELECT c_folder_id FROM {FOLDER_INFO} WHERE c_path2 = %s"  # noqa: S608
    by_folder = [*FOLDER_CONTENT, *sorted(t for t in tables if t.startswith(QUICK_PREFIX))]
    statements = [f"DELETE FROM {t} WHERE c_folder_id IN ({owned})" for t in by_folder]  # noqa: S608
    statements += [
        "DELETE FROM sogo_acl WHERE c_uid = %s",
        # An alarm's path is /Users/UID/Calendar/…
        "DELETE FROM sogo_alarms_folder WHERE split_part(c_path, '/', 3) = %s",
        "DELETE FROM sogo_cache_folder WHERE c_uid = %s",
        f"DELETE FROM {FOLDER_INFO} WHERE c_path2 = %s",  # noqa: S608
        "DELETE FROM sogo_user_profile WHERE c_uid = %s",
    ]
    return [sql for sql in statements if sql.split()[2] in tables]


def render(settings: dict[str, Any]) -> str:
    """The settings as the property list GNUstep reads (XML)."""
    return plistlib.dumps(settings, sort_keys=True).decode()


def encryption_key(rendered: bytes) -> str | None:
    """The cookie key of SOGo's settings as `render` wrote them; None in any other file
    (Debian's own sogo.conf is not XML)."""
    try:
        settings = plistlib.loads(rendered)
    except (ValueError, ExpatError):
        return None
    key = settings.get(ENCRYPTION_KEY) if isinstance(settings, dict) else None
    return key if isinstance(key, str) and key else None


def gnustep_config(defaults_dir: Path) -> str:
    """A GNUstep.conf that puts the `sogod` user defaults in `defaults_dir`: with
    GNUSTEP_CONFIG_FILE naming it, a private sogod reads its settings there, not from the
    home of Debian's `sogo` user."""
    return f"GNUSTEP_USER_DEFAULTS_DIR={defaults_dir}\nGNUSTEP_USER_CONFIG_FILE=\n"

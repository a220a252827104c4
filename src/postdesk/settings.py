"""Settings, read from the environment.

DATABASE_URL       database (default: SQLite file in POSTDESK_DATA_DIR)
DJANGO_DEBUG       "1"/"true" for development
DJANGO_SECRET_KEY  when unset, generated once and kept in POSTDESK_DATA_DIR/secret_key
POSTDESK_*         product settings, listed below with their defaults
"""

import ipaddress
import os
import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent


def _env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return default if value in (None, "") else int(value)


def _env_client_hosts(name: str) -> dict[int, tuple[str, ...]]:
    """`CLIENT_ID=HOST,HOST;CLIENT_ID=HOST`: the hosts each listed client's new mailboxes go to."""
    pins: dict[int, tuple[str, ...]] = {}
    for entry in os.environ.get(name, "").split(";"):
        if not entry.strip():
            continue
        client, _sep, hosts = entry.partition("=")
        names = tuple(h.strip().lower() for h in hosts.split(",") if h.strip())
        if not client.strip().isdigit() or not names:
            raise ValueError(f"{name}: expected CLIENT_ID=HOST[,HOST…] entries, got {entry!r}")
        pins[int(client)] = names
    return pins


DATA_DIR = Path(os.environ.get("POSTDESK_DATA_DIR", "./var")).resolve()


def _secret_key() -> str:
    if key := os.environ.get("DJANGO_SECRET_KEY"):
        return key
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    key_file = DATA_DIR / "secret_key"
    if not key_file.exists():
        # O_EXCL: two processes starting at once must not each write their own key.
        try:
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(50))
    return key_file.read_text().strip()


DEBUG = _env_bool("DJANGO_DEBUG")
SECRET_KEY = _secret_key()
ALLOWED_HOSTS = [
    h.strip()
    for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost").split(",")
    if h.strip()
]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_tasks",
    "django_tasks_db",
    "postdesk.tenancy",
    "postdesk.mail",
    "postdesk.audit",
    "postdesk.dns",
    "postdesk.api",
    "ninja",  # serves the API docs' assets locally (no CDN)
    "postdesk.billing",
    "postdesk.dataplane",
    "postdesk.jobs",
    "postdesk.web",
    "postdesk.cli",
    # Login hardening (tenancy.services, web.account_views): lockout, TOTP.
    "axes",
    "django_otp",
    # Kept while tenancy 0004 (moving its plain-hex devices to tenancy.TotpDevice) exists.
    "django_otp.plugins.otp_totp",
]

MIDDLEWARE = [
    # First: the time it measures includes every other middleware's work.
    "postdesk.metrics.RequestDurationMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Static files before anything else touches the request (WhiteNoise's documented place).
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "postdesk.web.security.RequestIdMiddleware",
    "postdesk.web.security.HeadAsGetMiddleware",
    "postdesk.web.security.NoStoreMiddleware",
    "postdesk.web.security.ContentSecurityPolicyMiddleware",
    # Before anything validates the Host header: mta-sts.DOMAIN hosts are not in ALLOWED_HOSTS.
    "postdesk.web.mtasts.MtaStsPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # After the session, auth and messages: its page is the client area's.
    "postdesk.web.errors.BusyDatabaseMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes requires: it answers a locked-out login with the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "postdesk.urls"
WSGI_APPLICATION = "postdesk.wsgi.application"
AUTH_USER_MODEL = "tenancy.User"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
                "postdesk.web.context.account_state",
                "postdesk.web.context.groupware",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{DATA_DIR / 'postdesk.sqlite3'}"),
        # Each request reuses its thread's connection for a minute (checked before reuse):
        # opening one per request costs PostgreSQL a new backend and, with SCRAM, several
        # milliseconds of authentication, more than most of our pages take to render.
        conn_max_age=_env_int("POSTDESK_DB_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
# Each commit of the panel returns only once the primary's synchronous standbys (its
# synchronous_standby_names) have applied it, so the mail hosts reading those replicas know a
# mailbox as soon as the panel says it is created, and never bounce its mail (docs/scale.md).
POSTDESK_DB_SYNC_REPLICAS = _env_bool("POSTDESK_DB_SYNC_REPLICAS")
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES["default"]["OPTIONS"] = {
        # IMMEDIATE: a writer takes the lock when its transaction starts, so two concurrent
        # writers queue up instead of one failing with "database is locked" on upgrade.
        "transaction_mode": "IMMEDIATE",
        # A write waits this long for the lock, then the request answers 503 with
        # Retry-After (web.errors.BusyDatabaseMiddleware, the API's handler), never a 500.
        "timeout": _env_int("POSTDESK_DB_BUSY_SECONDS", 10),
        # WAL lets the mail daemons read the views while the panel writes.
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
        "PRAGMA foreign_keys=ON;",
    }
    # A file, not Django's shared-cache memory database: tests run real concurrent writers,
    # and shared-cache locks fail at once instead of waiting like a real database does.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test-postdesk.sqlite3")}
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # The same bound on PostgreSQL: a statement that waits longer for a lock fails, and the
    # request answers 503 with Retry-After.
    DATABASES["default"].setdefault("OPTIONS", {})["options"] = (
        f"-c lock_timeout={_env_int('POSTDESK_DB_BUSY_SECONDS', 10)}s"
        # The statements the panel prepares run their generic plan, planned once per
        # connection (postdesk.compiled, `prepared`). No other statement is prepared: psycopg
        # prepares only when asked, its threshold out of reach.
        " -c plan_cache_mode=force_generic_plan"
    )
    DATABASES["default"]["OPTIONS"]["prepare_threshold"] = 2**31
    if POSTDESK_DB_SYNC_REPLICAS:
        DATABASES["default"]["OPTIONS"]["options"] += " -c synchronous_commit=remote_apply"
if POSTDESK_DB_SYNC_REPLICAS and DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
    raise ValueError("POSTDESK_DB_SYNC_REPLICAS waits for PostgreSQL replicas: SQLite has none")

# Where the mail daemons (Postfix, Dovecot, OpenDKIM, SOGo's user list) read the dataplane_*
# views: a streaming replica of the panel's PostgreSQL (docs/scale.md). Empty: the panel's own
# database. The panel itself reads and writes DATABASE_URL only (the primary), so a customer
# sees their change at once. SQLite has no replicas: a mistaken setting fails at start-up.
_DATAPLANE_DATABASE_URL = os.environ.get("POSTDESK_DATAPLANE_DATABASE_URL", "").strip()
POSTDESK_DATAPLANE_DATABASE = (
    dj_database_url.parse(_DATAPLANE_DATABASE_URL) if _DATAPLANE_DATABASE_URL else None
)
if POSTDESK_DATAPLANE_DATABASE and {
    DATABASES["default"]["ENGINE"],
    POSTDESK_DATAPLANE_DATABASE["ENGINE"],
} != {"django.db.backends.postgresql"}:
    raise ValueError(
        "POSTDESK_DATAPLANE_DATABASE_URL names a replica of the panel's PostgreSQL: "
        "both it and DATABASE_URL must be postgres:// URLs"
    )

CACHES = {
    # Django's own default: each process's memory.
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    # The address list's rendered rows (web.templatetags.web.address_rows): each process's
    # own, so that a new release, whose templates may differ, starts without them. A row is
    # about 1.7 KB: 5,000 of them, 100 pages, are under 10 MB a process.
    "rows": {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        "LOCATION": "address-rows",
        "TIMEOUT": 24 * 3600,
        "OPTIONS": {"MAX_ENTRIES": 5000},
    },
    # Whole pages of those rows (about 85 KB for 50), the page that was just read read
    # again: one cache read instead of 50. 200 pages, under 20 MB a process.
    "row_pages": {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        "LOCATION": "address-row-pages",
        "TIMEOUT": 24 * 3600,
        "OPTIONS": {"MAX_ENTRIES": 200},
    },
    # Parts of pages rendered once for what they show (web.fragments: the dashboard's DNS
    # cards, usage and groupware card), each process's own for the same reason. The DNS
    # cards are the largest part, 15 to 20 KB: 1,000 parts are under 20 MB a process.
    "fragments": {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        "LOCATION": "page-fragments",
        "TIMEOUT": 24 * 3600,
        "OPTIONS": {"MAX_ENTRIES": 1000},
    },
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]

LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("fr", _("French"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# The client area (postdesk.web): where login sends people, and where they land after it.
LOGIN_URL = "web:login"
LOGIN_REDIRECT_URL = "web:domains"
LOGOUT_REDIRECT_URL = "web:login"
# A form sent with a stale or missing CSRF token: a page in the client-area layout, not Django's.
CSRF_FAILURE_VIEW = "postdesk.web.errors.csrf_failure"
STATIC_ROOT = DATA_DIR / "static"
# Without DEBUG, static files are served by WhiteNoise from STATIC_ROOT under hashed names, with
# far-future cache headers: `postdesk serve` collects them there first. Under DEBUG they come
# from the apps' folders, unhashed, as they are edited.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# django-tasks-db's backend, also accepting each mail host's queue, `host-NAME`: a host's
# worker runs the tasks that touch its disk and daemons (dataplane/queues.py).
TASKS = {"default": {"BACKEND": "postdesk.dataplane.queues.HostQueuesBackend"}}

# POSTDESK_LOG_FORMAT=json: one JSON object a line (python-json-logger), with the request's id.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "postdesk.request_id.RequestIdFilter"}},
    "formatters": {
        "text": {"format": "%(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "filters": ["request_id"],
            "formatter": "json" if os.environ.get("POSTDESK_LOG_FORMAT") == "json" else "text",
        }
    },
    "root": {"handlers": ["console"], "level": os.environ.get("POSTDESK_LOG_LEVEL", "WARNING")},
}

if not DEBUG:
    SESSION_COOKIE_SECURE = _env_bool("POSTDESK_SECURE_COOKIES", True)
    CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE

# --- Product settings -------------------------------------------------------------------------

# How long a removed alias stays reserved before any mailbox may take it: mail servers cache
# lookups, so an address reused at once could still be routed to its previous owner.
POSTDESK_ALIAS_REUSE_DELAY = timedelta(minutes=_env_int("POSTDESK_ALIAS_REUSE_DELAY_MINUTES", 15))
# The most destinations one forwarding list may hold.
POSTDESK_MAX_DESTINATIONS = _env_int("POSTDESK_MAX_DESTINATIONS", 50)
# The most aliases one mailbox may have: a business needs a few dozen at most (roles, old
# names, spellings); the bound keeps any change of a mailbox short for the database.
POSTDESK_MAX_ALIASES = _env_int("POSTDESK_MAX_ALIASES", 100)
# The largest per-mailbox disk space limit accepted, in MiB (default 10 TiB).
POSTDESK_MAX_QUOTA_MB = _env_int("POSTDESK_MAX_QUOTA_MB", 10 * 1024 * 1024)
# Argon2id cost for mailbox password hashes. Dovecot verifies these with libsodium, which
# only accepts parallelism 1; memory in KiB.
POSTDESK_ARGON2_MEMORY_KIB = _env_int("POSTDESK_ARGON2_MEMORY_KIB", 65536)
POSTDESK_ARGON2_TIME_COST = _env_int("POSTDESK_ARGON2_TIME_COST", 3)
# The address list's page size.
POSTDESK_PAGE_SIZE = _env_int("POSTDESK_PAGE_SIZE", 50)

# --- DNS health -------------------------------------------------------------------------------

# Nameservers to ask, comma-separated "host" or "host:port"; empty: the system's resolvers.
POSTDESK_DNS_NAMESERVERS = [
    n.strip() for n in os.environ.get("POSTDESK_DNS_NAMESERVERS", "").split(",") if n.strip()
]
# Seconds to wait for one DNS answer before calling the result unknown (retried later).
POSTDESK_DNS_TIMEOUT = float(os.environ.get("POSTDESK_DNS_TIMEOUT", "5"))
# The SPF mechanism that authorizes our outgoing servers, as the customer must publish it.
POSTDESK_SPF_MECHANISM = os.environ.get("POSTDESK_SPF_MECHANISM", "include:spf.postdesk.example")
# Our outgoing servers' IP addresses, comma-separated (IPv4 and IPv6): SPF is "configured" only
# when receivers' evaluation passes every one. The default is a documentation address (RFC 5737)
# that no real server sends from, so a demo can never authorize or blame a real host.
# A typo fails at start-up (ValueError naming the entry), not in every later SPF check.
POSTDESK_SENDING_IPS = [
    str(ipaddress.ip_address(ip.strip()))
    for ip in os.environ.get("POSTDESK_SENDING_IPS", "192.0.2.1").split(",")
    if ip.strip()
]
# The name our outgoing servers give in HELO/EHLO: what an SPF record's %{h} macro expands to.
POSTDESK_SENDING_HELO = os.environ.get("POSTDESK_SENDING_HELO", "mail.postdesk.example")
# DNS blocklists our sending IPs are checked against (`postdesk dns hosts`), comma-separated.
# Spamhaus refuses queries that come through public resolvers (8.8.8.8, 1.1.1.1…): ask it
# through a resolver of your own (POSTDESK_DNS_NAMESERVERS), or its answers read "refused".
POSTDESK_DNSBL_ZONES = [
    z.strip().strip(".").lower()
    for z in os.environ.get("POSTDESK_DNSBL_ZONES", "zen.spamhaus.org").split(",")
    if z.strip()
]
# The deliverability self-test (docs/dns.md): the provider's probe mailbox its messages go to
# (empty: no self-test), the submission port the panel sends them through ("host:port",
# STARTTLS, the certificate checked for that host), and how long to wait for one to arrive.
POSTDESK_PROBE_ADDRESS = os.environ.get("POSTDESK_PROBE_ADDRESS", "").strip().lower()
POSTDESK_PROBE_SUBMISSION = os.environ.get(
    "POSTDESK_PROBE_SUBMISSION", f"{POSTDESK_SENDING_HELO}:587"
)
POSTDESK_PROBE_TIMEOUT = _env_int("POSTDESK_PROBE_TIMEOUT", 120)
# The DKIM selector of new keys: the record lives at SELECTOR._domainkey.DOMAIN.
POSTDESK_DKIM_SELECTOR = os.environ.get("POSTDESK_DKIM_SELECTOR", "mail")
# Our inbound mail servers, comma-separated, in order of preference.
POSTDESK_MX_HOSTS = [
    h.strip().rstrip(".").lower()
    for h in os.environ.get("POSTDESK_MX_HOSTS", "mx1.postdesk.example,mx2.postdesk.example").split(
        ","
    )
    if h.strip()
]


# Mail hosts (`postdesk host`): a client pinned here gets its new mailboxes' homes on these
# backends only (the least loaded of them that is active); unlisted clients use them all.
POSTDESK_CLIENT_HOSTS = _env_client_hosts("POSTDESK_CLIENT_HOSTS")
# The CA (a PEM file) that signed the backends' certificates: set, a proxy verifies the home it
# forwards a login to against it; empty, it takes any certificate (docs/scale.md).
POSTDESK_FLEET_CA_FILE = os.environ.get("POSTDESK_FLEET_CA_FILE", "").strip()
# The web front the customers' mta-sts.DOMAIN names point to (a CNAME to this host): it holds
# the certificate for each mta-sts.DOMAIN and forwards the Host header to the panel, which
# answers /.well-known/mta-sts.txt for it (web/mtasts.py).
POSTDESK_MTA_STS_TARGET = os.environ.get("POSTDESK_MTA_STS_TARGET", "mta-sts.postdesk.example")
# Where senders send their TLS reports (RFC 8460) for every hosted domain: ours, since they
# describe failures of encryption towards our MX hosts.
POSTDESK_TLS_RPT_ADDRESS = os.environ.get(
    "POSTDESK_TLS_RPT_ADDRESS", "tls-reports@postdesk.example"
).strip()

# --- Mail servers (data plane) ----------------------------------------------------------------

# Dovecot's doveadm HTTP API, to disconnect a mailbox's sessions after a password change.
POSTDESK_DOVEADM_URL = os.environ.get("POSTDESK_DOVEADM_URL", "")
POSTDESK_DOVEADM_API_KEY = os.environ.get("POSTDESK_DOVEADM_API_KEY", "")
# SOGo's memcached ("host:port"; empty: no groupware): SOGo caches a user's password check
# and module access there, which the worker forgets after a change (dataplane/provisioner.py).
POSTDESK_SOGO_MEMCACHED = os.environ.get("POSTDESK_SOGO_MEMCACHED", "")
# The webmail's public address, on the gate's host ("https://mail.example.net/SOGo/"); its
# host is also the server name phones use for ActiveSync. Empty: no groupware, the client
# area shows neither a webmail link nor ActiveSync set-up facts.
POSTDESK_WEBMAIL_URL = os.environ.get("POSTDESK_WEBMAIL_URL", "").strip()

# How often the periodic jobs run (postdesk.jobs): `postdesk jobs run-due` runs those due.
POSTDESK_JOB_DNS_RECHECK = timedelta(minutes=_env_int("POSTDESK_JOB_DNS_RECHECK_MINUTES", 60))
# GET /healthz fails (503) once a task has waited this many seconds to run: no worker runs.
POSTDESK_HEALTH_QUEUE_MAX_WAIT = _env_int("POSTDESK_HEALTH_QUEUE_MAX_WAIT", 600)
# GET /metrics (Prometheus) answers only `Authorization: Bearer <this>`; unset, it is a 404.
POSTDESK_METRICS_TOKEN = os.environ.get("POSTDESK_METRICS_TOKEN", "")
# Each process's counts (postdesk.metrics). prometheus_client reads the variable when it loads,
# and settings load before any module that counts; always under this data directory, so a
# command run with another POSTDESK_DATA_DIR never counts into this one's.
POSTDESK_METRICS_DIR = DATA_DIR / "metrics"
POSTDESK_METRICS_DIR.mkdir(parents=True, exist_ok=True)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(POSTDESK_METRICS_DIR)
POSTDESK_JOB_COLLECT_USAGE = timedelta(minutes=_env_int("POSTDESK_JOB_COLLECT_USAGE_MINUTES", 15))
# Every write appends its change to its domain's counts (mail.models.DomainTotalsChange); this
# job folds them, so a count reads a few rows whatever the domain's size or write rate.
POSTDESK_JOB_COMPACT_TOTALS = timedelta(minutes=_env_int("POSTDESK_JOB_COMPACT_TOTALS_MINUTES", 5))
# A mailbox's move whose worker died leaves it locked: this job ends such a move
# (mail.hosts.mailbox_moves_sweep).
POSTDESK_JOB_SWEEP_MOVES = timedelta(minutes=_env_int("POSTDESK_JOB_SWEEP_MOVES_MINUTES", 5))
# Where Dovecot stores mailboxes (VMAIL/DOMAIN/STORAGE_ID), for removing a deleted mailbox's mail.
POSTDESK_VMAIL_DIR = os.environ.get("POSTDESK_VMAIL_DIR", "")
# The configuration directory of this host's Postfix (`postfix -c`), on an MX: a mailbox's
# move has it drop the routes its processes keep (provisioner.drop_cached_routes).
POSTDESK_POSTFIX_CONFIG_DIR = os.environ.get("POSTDESK_POSTFIX_CONFIG_DIR", "/etc/postfix")

# --- Login hardening and security headers (tenancy.services, web.account_views, web.security) ---

AUTHENTICATION_BACKENDS = [
    # First: refuses a locked-out username and IP address before any password is checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# After this many failed logins from one IP address for one username, that pair is locked out
# for the cool-off time; a successful login resets the count.
AXES_FAILURE_LIMIT = _env_int("POSTDESK_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=_env_int("POSTDESK_LOGIN_LOCKOUT_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# The login form's field (axes would otherwise look for the user model's "email").
AXES_USERNAME_FORM_FIELD = "username"
# Logins ignore case: the lockout counts "Owner@…" and "owner@…" as one username.
AXES_USERNAME_CALLABLE = "postdesk.tenancy.access.lockout_username"
AXES_LOCKOUT_TEMPLATE = "web/lockout.html"
AXES_VERBOSE = False
# Behind a TLS-terminating proxy that sets X-Forwarded-Proto (and REMOTE_ADDR to the client's
# address, e.g. nginx's real_ip: the lockout and the audit log read REMOTE_ADDR).
if _env_bool("POSTDESK_BEHIND_PROXY"):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# A web session lasts this long after login, and ends when the browser closes.
SESSION_COOKIE_AGE = _env_int("POSTDESK_SESSION_MINUTES", 8 * 60) * 60
SESSION_EXPIRE_AT_BROWSER_CLOSE = _env_bool("POSTDESK_SESSION_EXPIRE_AT_BROWSER_CLOSE", True)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
# How long the second login step (the TOTP code) may follow the password.
POSTDESK_LOGIN_TOTP_SECONDS = 300
OTP_TOTP_ISSUER = os.environ.get("POSTDESK_TOTP_ISSUER", "Postdesk")

# Headers. Django's SecurityMiddleware sends nosniff, the referrer policy and (over HTTPS) HSTS;
# postdesk.web.security sends the Content-Security-Policy (no inline script, no framing).
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if not DEBUG:
    SECURE_HSTS_SECONDS = _env_int("POSTDESK_HSTS_SECONDS", 365 * 24 * 3600)
# Operators' choices for a public host (README, "Production settings"): every subdomain on
# HTTPS too, the browsers' preload list, and HTTP answered by a redirect to HTTPS. Off by
# default: the demo and the tests serve plain HTTP on loopback.
SECURE_HSTS_INCLUDE_SUBDOMAINS = _env_bool("POSTDESK_HSTS_INCLUDE_SUBDOMAINS")
SECURE_HSTS_PRELOAD = _env_bool("POSTDESK_HSTS_PRELOAD")
SECURE_SSL_REDIRECT = _env_bool("POSTDESK_SSL_REDIRECT")
# Asked over loopback HTTP whatever the public scheme: nginx's auth_request (the gate),
# monitors (/healthz, Prometheus's /metrics), and the front serving mta-sts.DOMAIN over HTTPS
# (web/mtasts.py).
SECURE_REDIRECT_EXEMPT = [
    r"^dataplane/gate/",
    r"^healthz$",
    r"^metrics$",
    r"^\.well-known/mta-sts\.txt$",
]
POSTDESK_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)
# The key nginx presents to the EAS/MAPI gate (`dataplane up` prints it in DIR/stack.json).
POSTDESK_GATE_KEY = os.environ.get("POSTDESK_GATE_KEY", "")
# Wrong passwords at the gate: this many for one mailbox, or from one client address, within
# the window (seconds) get 429 for the window (postdesk.dataplane.gate).
POSTDESK_GATE_FAILURE_LIMIT = _env_int("POSTDESK_GATE_FAILURE_LIMIT", 10)
POSTDESK_GATE_CLIENT_FAILURE_LIMIT = _env_int("POSTDESK_GATE_CLIENT_FAILURE_LIMIT", 30)
POSTDESK_GATE_FAILURE_WINDOW = _env_int("POSTDESK_GATE_FAILURE_WINDOW", 600)
# How long the gate remembers a verified device (ActiveSync phones ask every few minutes).
POSTDESK_GATE_CACHE_SECONDS = _env_int("POSTDESK_GATE_CACHE_SECONDS", 300)

# --- API: failed-token rate limiting (postdesk.api.throttle) ------------------------------------

# After this many invalid API tokens from one IP address within the window (seconds), that
# address gets 429 for the window. Counted in the default cache: with several web processes,
# configure a shared cache (CACHES) or each process counts on its own.
POSTDESK_API_AUTH_FAILURE_LIMIT = _env_int("POSTDESK_API_AUTH_FAILURE_LIMIT", 20)
POSTDESK_API_AUTH_FAILURE_WINDOW = _env_int("POSTDESK_API_AUTH_FAILURE_WINDOW", 600)
# OpenDKIM's directory: the worker writes the private keys under keys/ (OpenDKIM reads which
# domain signs with which key from the dataplane_dkim view).
POSTDESK_OPENDKIM_DIR = os.environ.get("POSTDESK_OPENDKIM_DIR", "")

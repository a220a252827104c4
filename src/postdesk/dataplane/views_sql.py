"""The data-plane contract: the SQL views that Postfix and Dovecot query directly.

Column names are the contract; the tables behind them may change. Each view keeps the
address split into `local_part` and `domain`, so the daemons' lookups (`%u`/`%d`, `%n`/`%d`)
reach the unique (domain, local_part) index instead of scanning a computed address. The same
SQL runs on SQLite and PostgreSQL; a suspended client's domains drop out of every view, so
their mail is refused and their logins fail, with nothing deleted.
"""

VIEWS = {
    "dataplane_domains": """
        SELECT d.name AS domain
        FROM mail_domain d
        JOIN tenancy_client c ON c.id = d.client_id
        WHERE c.suspended_at IS NULL
    """,
    "dataplane_mailboxes": """
        SELECT a.local_part || '@' || d.name AS address,
               a.local_part AS local_part,
               d.name AS domain,
               m.password_hash AS password,
               REPLACE(CAST(m.storage_id AS TEXT), '-', '') AS storage,
               -- The limit Dovecot enforces: the mailbox's own, or with 0 the plan's overall
               -- limit (the plan in force now), or none.
               CASE WHEN m.quota_mb > 0 THEN m.quota_mb ELSE COALESCE((
                   SELECT p.storage_limit_mb
                   FROM billing_clientplan cp
                   JOIN billing_plan p ON p.id = cp.plan_id
                   WHERE cp.client_id = c.id AND cp.starts_at <= CURRENT_TIMESTAMP
                   ORDER BY cp.starts_at DESC
                   LIMIT 1
               ), 0) END AS quota_mb,
               m.eas_enabled AS eas_enabled,
               m.mapi_enabled AS mapi_enabled,
               m.delete_after_forwarding AS delete_after_forwarding,
               m.keep_original_sender AS keep_original_sender,
               -- The backend that stores the mailbox, where a proxy and an MX forward it;
               -- NULL when it has none: the install's single host (dataplane.models).
               h.name AS home_host,
               h.address AS home_address,
               -- Calendar and contact apps (the gate's /SOGo/dav/): the domain's switch.
               d.dav_enabled AS dav_enabled,
               -- Being switched to another home (mail.moves): the MX defers its mail and the
               -- proxy refuses its logins for that moment.
               EXISTS (
                   SELECT 1 FROM mail_mailboxmove mv
                   WHERE mv.mailbox_id = m.id AND mv.state = 'switching'
               ) AS moving
        FROM mail_mailbox m
        JOIN mail_address a ON a.id = m.address_id
        JOIN mail_domain d ON d.id = a.domain_id
        JOIN tenancy_client c ON c.id = d.client_id
        LEFT JOIN dataplane_host h ON h.id = m.home_id
        WHERE c.suspended_at IS NULL
    """,
    # The mailboxes as SOGo's SQL user source reads them (SOGo names these columns itself:
    # c_uid, c_name, c_password, c_cn, mail). SOGo verifies the same {ARGON2ID} hash as
    # Dovecot. `activesync` is what SOGo's ModulesConstraints compare ('1' or '0': SOGo
    # matches the value as a string), so ActiveSync off holds in SOGo too, gate or no gate.
    # On PostgreSQL (SOGo's only database here) c_uid compares without regard to case
    # (migration 0008: a nondeterministic collation), so SOGo takes a login in any case, as
    # Dovecot does; SQLite keeps this portable form.
    "dataplane_sogo_users": """
        SELECT a.local_part || '@' || d.name AS c_uid,
               a.local_part || '@' || d.name AS c_name,
               m.password_hash AS c_password,
               a.local_part || '@' || d.name AS c_cn,
               a.local_part || '@' || d.name AS mail,
               d.name AS domain,
               CASE WHEN m.eas_enabled THEN '1' ELSE '0' END AS activesync
        FROM mail_mailbox m
        JOIN mail_address a ON a.id = m.address_id
        JOIN mail_domain d ON d.id = a.domain_id
        JOIN tenancy_client c ON c.id = d.client_id
        WHERE c.suspended_at IS NULL
    """,
    # Where mail to an address is rerouted: an alias to its mailbox, a standalone forward to
    # each destination (several rows; Postfix joins them).
    "dataplane_aliases": """
        SELECT aa.local_part AS local_part, d.name AS domain,
               ma.local_part || '@' || d.name AS destination
        FROM mail_alias al
        JOIN mail_address aa ON aa.id = al.address_id
        JOIN mail_mailbox m ON m.id = al.mailbox_id
        JOIN mail_address ma ON ma.id = m.address_id
        JOIN mail_domain d ON d.id = aa.domain_id
        JOIN tenancy_client c ON c.id = d.client_id
        WHERE c.suspended_at IS NULL
        UNION ALL
        SELECT fa.local_part AS local_part, d.name AS domain, dest.email AS destination
        FROM mail_forward f
        JOIN mail_address fa ON fa.id = f.address_id
        JOIN mail_destination dest ON dest.address_id = fa.id
        JOIN mail_domain d ON d.id = fa.domain_id
        JOIN tenancy_client c ON c.id = d.client_id
        WHERE c.suspended_at IS NULL
    """,
    # A mailbox's own forwarding list (applied by Sieve at delivery, with its two options).
    "dataplane_mailbox_forwards": """
        SELECT a.local_part AS local_part, d.name AS domain, dest.email AS destination,
               dest.position AS position
        FROM mail_mailbox m
        JOIN mail_address a ON a.id = m.address_id
        JOIN mail_destination dest ON dest.address_id = a.id
        JOIN mail_domain d ON d.id = a.domain_id
        JOIN tenancy_client c ON c.id = d.client_id
        WHERE c.suspended_at IS NULL
    """,
    # The DKIM keys that sign, read by OpenDKIM for each message (its SigningTable by domain,
    # its KeyTable by key_id): "Disable DKIM" holds from the next message. A key signs once
    # the worker has written its file (key_file); the private key stays encrypted in the
    # panel's table.
    "dataplane_dkim": """
        SELECT d.name AS domain, k.selector AS selector, k.id AS key_id,
               k.key_file AS key_file
        FROM dns_dkimkey k
        JOIN mail_domain d ON d.id = k.domain_id
        JOIN tenancy_client c ON c.id = d.client_id
        WHERE k.status = 'signing' AND k.key_file <> '' AND c.suspended_at IS NULL
    """,
    # The deliverability self-test's single-use SMTP logins (Dovecot's second passdb): one
    # mailbox each, until used or expired, and never for a suspended client.
    "dataplane_probe_logins": """
        SELECT a.local_part || '@' || d.name AS address, a.local_part AS local_part,
               d.name AS domain, t.login_hash AS password
        FROM dns_deliverabilitytest t
        JOIN mail_mailbox m ON m.id = t.mailbox_id
        JOIN mail_address a ON a.id = m.address_id
        JOIN mail_domain d ON d.id = a.domain_id
        JOIN tenancy_client c ON c.id = d.client_id
        WHERE c.suspended_at IS NULL AND t.login_hash <> ''
          AND t.login_expires_at > CURRENT_TIMESTAMP
    """,
}


# PostgreSQL only: the daemons' per-address lookups as PL/pgSQL functions over the views.
# Postfix and Dovecot send every lookup as a new, unprepared query; planning a query over the
# views costs 0.3 to 2 ms on PostgreSQL where executing it costs 0.02 to 0.2 ms. A PL/pgSQL function
# keeps its plan for the life of the connection (both daemons hold theirs open), so each lookup
# only executes. The functions read the views, so the views stay the one contract; their
# result columns are declared, not tied to the views' row types, so a later migration can
# still replace a view without dropping them. SQLite plans in microseconds and queries the
# views directly.
PG_FUNCTIONS = {
    "dataplane_mailbox": """
        CREATE OR REPLACE FUNCTION dataplane_mailbox(p_local_part text, p_domain text)
        RETURNS TABLE (address text, local_part text, domain text, password text,
                       storage text, quota_mb bigint, home_host text, home_address text,
                       moving boolean)
        LANGUAGE plpgsql STABLE AS $$
        #variable_conflict use_column
        BEGIN
            RETURN QUERY
            SELECT v.address::text, v.local_part::text, v.domain::text, v.password::text,
                   v.storage::text, v.quota_mb::bigint, v.home_host::text,
                   v.home_address::text, v.moving::boolean
            FROM dataplane_mailboxes v
            WHERE v.local_part = p_local_part AND v.domain = p_domain;
        END
        $$
    """,
    "dataplane_alias_destinations": """
        CREATE OR REPLACE FUNCTION dataplane_alias_destinations(p_local_part text, p_domain text)
        RETURNS TABLE (destination text)
        LANGUAGE plpgsql STABLE AS $$
        #variable_conflict use_column
        BEGIN
            RETURN QUERY
            SELECT v.destination::text
            FROM dataplane_aliases v
            WHERE v.local_part = p_local_part AND v.domain = p_domain;
        END
        $$
    """,
}


def create_functions_sql() -> list[str]:
    return [sql.strip() for sql in PG_FUNCTIONS.values()]


def drop_functions_sql() -> list[str]:
    return [f"DROP FUNCTION IF EXISTS {name}(text, text)" for name in reversed(PG_FUNCTIONS)]


def create_sql() -> list[str]:
    return [f"CREATE VIEW {name} AS {sql.strip()}" for name, sql in VIEWS.items()]


def drop_sql() -> list[str]:
    return [f"DROP VIEW IF EXISTS {name}" for name in reversed(VIEWS)]

"""dataplane_mailboxes.moving: true while a move switches the mailbox to another home
(mail.moves, docs/scale.md), read by the MX's transport (its mail deferred) and the proxy's
passdb (its logins refused for that moment). On PostgreSQL the `dataplane_mailbox()` lookup
function returns it too; its result type changes, so it is dropped and created again.

The SQL is written out here, as the view and the function were at this migration.
"""

from django.db import migrations

OLD_VIEW = """SELECT a.local_part || '@' || d.name AS address,
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
               d.dav_enabled AS dav_enabled
        FROM mail_mailbox m
        JOIN mail_address a ON a.id = m.address_id
        JOIN mail_domain d ON d.id = a.domain_id
        JOIN tenancy_client c ON c.id = d.client_id
        LEFT JOIN dataplane_host h ON h.id = m.home_id
        WHERE c.suspended_at IS NULL"""

NEW_VIEW = """SELECT a.local_part || '@' || d.name AS address,
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
        WHERE c.suspended_at IS NULL"""

OLD_FUNCTION = """CREATE OR REPLACE FUNCTION dataplane_mailbox(p_local_part text, p_domain text)
        RETURNS TABLE (address text, local_part text, domain text, password text,
                       storage text, quota_mb bigint, home_host text, home_address text)
        LANGUAGE plpgsql STABLE AS $$
        #variable_conflict use_column
        BEGIN
            RETURN QUERY
            SELECT v.address::text, v.local_part::text, v.domain::text, v.password::text,
                   v.storage::text, v.quota_mb::bigint, v.home_host::text,
                   v.home_address::text
            FROM dataplane_mailboxes v
            WHERE v.local_part = p_local_part AND v.domain = p_domain;
        END
        $$"""

NEW_FUNCTION = """CREATE OR REPLACE FUNCTION dataplane_mailbox(p_local_part text, p_domain text)
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
        $$"""

DROP_FUNCTION = "DROP FUNCTION IF EXISTS dataplane_mailbox(text, text)"


def _replace(view: str, function: str):
    def run(apps, schema_editor):
        postgresql = schema_editor.connection.vendor == "postgresql"
        if postgresql:
            schema_editor.execute(DROP_FUNCTION)
        schema_editor.execute("DROP VIEW dataplane_mailboxes")
        schema_editor.execute(f"CREATE VIEW dataplane_mailboxes AS {view}")
        if postgresql:
            schema_editor.execute(function)

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("dataplane", "0011_mailboxes_dav"),
        ("mail", "0011_mailbox_move"),
    ]

    operations = [
        migrations.RunPython(_replace(NEW_VIEW, NEW_FUNCTION), _replace(OLD_VIEW, OLD_FUNCTION))
    ]
